// The op interface every backend implements (design principle 1): the model is written
// once against it, and nothing here knows what a transformer is.
//
// Shapes are ne0-first as in GGUF: a matrix [k, n] has n rows of k contiguous elements.
// Activations are f32 tensors made by the backend (alloc); weights may be of any type the
// backend supports. Outputs are preallocated by the caller and must not alias inputs
// unless an op says so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace strata {

// Rotary position embedding of one model.
struct RopeConfig {
  int n_rot = 0;                    // dimensions rotated in each head (even, <= head_dim)
  float freq_base = 10000.0f;       // theta_i = pos * freq_scale * freq_base^(-2i/n_rot) / factor_i
  float freq_scale = 1.0f;          // 1 / linear scaling factor
  bool neox = false;                // rotate pairs (i, i + n_rot/2) (NEOX, qwen2) instead of (2i, 2i+1) (llama)
  std::vector<float> freq_factors;  // [n_rot/2] per-pair divisors (Llama 3 rope scaling); empty = none
};

// What a backend keeps of one recorded decode step between run_step calls (a CUDA graph).
// Owned by the caller; dropping it drops the recording.
struct StepRecording {
  std::shared_ptr<void> state;
};

// Where the keys and values of a batch's tokens live in a paged KV cache, and what each token
// attends to. A cache [head_dim, n_kv_heads, n_rows] is cut into blocks of block_tokens rows;
// position p of sequence s lives in row
//   block_table[s * max_blocks + p / block_tokens] * block_tokens + p % block_tokens.
// Token t of the batch is at position positions[t] of sequence seq[t]; store_kv writes its key
// or value there, and attention lets it see positions 0..positions[t] of its sequence (causal),
// which must all be stored by then (earlier tokens of the same sequence may be in the batch).
// One sequence in a dense cache is one block of n_ctx rows: block_table {0}, rows = positions.
struct KvLayout {
  std::span<const int32_t> positions;    // [n_tokens] position of each token in its sequence
  std::span<const int32_t> seq;          // [n_tokens] its sequence: a row of block_table
  std::span<const int32_t> block_table;  // [n_seqs * max_blocks] block numbers
  int64_t max_blocks = 0;                // block_table entries per sequence
  int64_t block_tokens = 0;              // rows per block

  // The cache row of position `pos` of sequence `s` (unchecked).
  int64_t row(int64_t s, int64_t pos) const {
    return int64_t(block_table[size_t(s * max_blocks + pos / block_tokens)]) * block_tokens + pos % block_tokens;
  }
  int64_t n_tokens() const { return int64_t(positions.size()); }
};

// The KvLayout of one sequence in a dense cache of n_ctx rows (one block), for n_tokens tokens
// at positions pos, pos+1, ...: what a single-sequence caller passes. Owns its arrays, so it
// is neither copied nor moved.
class DenseKvLayout {
public:
  DenseKvLayout(int64_t pos, int64_t n_tokens, int64_t n_ctx);
  DenseKvLayout(const DenseKvLayout&) = delete;
  DenseKvLayout& operator=(const DenseKvLayout&) = delete;
  operator const KvLayout&() const { return kv_; }
  const KvLayout& get() const { return kv_; }

private:
  std::vector<int32_t> positions_, seq_;
  int32_t block_ = 0;
  KvLayout kv_;
};

// One projection of a FusedMatmul and its epilogue, applied in this order:
//   out = w x;  out += bias;  rope(out seen as heads);  store_kv(out seen as heads, store, pos);
//   residual += out.
// Each step is optional (null / false); out keeps its value after the epilogue (roped when rope).
struct MatmulJob {
  const Tensor* w = nullptr;     // [k, n] any type the backend's matmul takes
  Tensor* out = nullptr;         // [n, m] f32
  const Tensor* bias = nullptr;  // [n] f32, added to every column
  bool rope = false;             // rotate out's heads at FusedMatmul::positions
  Tensor* store = nullptr;     // a KV cache [head_dim, n_heads, n_rows]: out's heads stored where FusedMatmul::kv says
  Tensor* residual = nullptr;  // [n, m] f32: residual += out (out keeps the product)
};

// A matmul of one input x [k, m] by several weights, with a prologue that makes x and a gated
// pair after the jobs:
//   prologue:  none       x is given
//              rms_norm   x = rms_norm(norm_input, norm_weight, norm_eps)
//              attention  x = attention(q, k_cache, v_cache, *kv, scale, window), x seen as heads
//   jobs:      each MatmulJob on x, in order
//   gate:      none       -
//              swiglu     gated = silu(jobs[0].out) * jobs[1].out
//              geglu      gated = gelu_tanh(jobs[0].out) * jobs[1].out
// Rope and store use head_dim-sized heads of a job's output, positions (one per column of x,
// for rope) and kv (where each column's heads are stored, for store).
struct FusedMatmul {
  enum class Prologue { none, rms_norm, attention };
  enum class Gate { none, swiglu, geglu };

  Tensor* x = nullptr;  // [k, m] f32: the input, written by the prologue when there is one
  Prologue prologue = Prologue::none;
  // rms_norm prologue
  const Tensor* norm_input = nullptr;   // [k, m] f32
  const Tensor* norm_weight = nullptr;  // [k] f32
  float norm_eps = 0.0f;
  // attention prologue (x [head_dim * n_heads, m] holds its output)
  const Tensor* q = nullptr;  // [head_dim, n_heads, m] f32
  const Tensor* k_cache = nullptr;
  const Tensor* v_cache = nullptr;
  const KvLayout* kv = nullptr;  // also where the store epilogues write
  float scale = 1.0f;
  int64_t window = 0;  // sliding window (Backend::attention); 0 = none

  std::span<const MatmulJob> jobs = {};

  Gate gate = Gate::none;
  Tensor* gated = nullptr;  // [n, m] f32 with n that of jobs[0] and jobs[1]

  // rope and store epilogues
  int64_t head_dim = 0;
  const RopeConfig* rope = nullptr;
  std::span<const int32_t> positions = {};
};

// What a tensor is to a backend that splits tensors over several devices (tensor parallel,
// backend/tensor_parallel/); every other backend ignores it. Parts are K equal ranges, each a
// multiple of `unit` elements (head_dim for attention heads, so that heads stay whole).
struct Placement {
  enum class Kind {
    replicated,  // a whole copy on every device (norms, embeddings, what is not said otherwise)
    columns,     // outputs split: rows of a matrix [k, n] (dim 1), elements of a bias [n]
    rows,        // inputs split: dim 0 of a matrix [k, n] (each part's product is a partial sum)
    kv_heads,    // a KV cache [head_dim, n_kv_heads, n_ctx] split by heads (dim 1)
    vocab,       // the output matrix: columns where n divides evenly, else replicated
  };
  Kind kind = Kind::replicated;
  int64_t unit = 1;
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- memory ------------------------------------------------------------------------
  // A new zero-filled tensor on the backend's device.
  virtual Tensor alloc(DType type, ShapeRef ne, std::string name) = 0;
  // The backend's copy of a host tensor, in its stored type (weights stay quantized): CPU
  // backends return the (mmapped) view itself; device backends (CUDA) return a new, writable
  // device tensor holding one copy. Tests also upload activations this way and then let ops
  // change them in place (rope), so the result of uploading a writable host tensor
  // is writable on every backend.
  virtual Tensor upload(const Tensor& host) = 0;
  // alloc and upload with what the tensor is (Placement): where the model makes weights and the
  // KV cache. A backend on one device ignores the placement (these defaults).
  virtual Tensor alloc_placed(DType type, ShapeRef ne, std::string name, const Placement& placement) {
    (void)placement;
    return alloc(type, ne, std::move(name));
  }
  virtual Tensor upload_placed(const Tensor& host, const Placement& placement) {
    (void)placement;
    return upload(host);
  }
  // The values of a backend tensor as a host f32 tensor (for taps, logits, verification).
  virtual Tensor to_host_f32(const Tensor& t) = 0;
  // The values of a packed f32 backend tensor copied into `out` (out.size() == its elements),
  // without allocating: what a decode loop reads every token.
  virtual void read_f32(const Tensor& t, std::span<float> out);
  // Says that w, a matrix this backend returned from upload, is the weight of matmuls from
  // now on: the backend may keep a copy in a layout its kernels read faster (the cpu backend
  // interleaves rows) and read that instead of w, with results of the same accuracy. w stays
  // valid for every op. Returns the bytes of memory the copy takes (0: no copy made).
  virtual size_t prepare_matmul_weight(const Tensor& /*w*/) { return 0; }
  // Waits for queued work (no-op on CPU).
  virtual void synchronize() {}
  // Makes the backend's device the calling thread's current one before it queues ops, for a
  // caller that drives several devices from one thread (CUDA: cudaSetDevice; no-op on CPU).
  virtual void make_current() {}
  // The device the backend computes on, for reports ("CPU", "NVIDIA H100 80GB HBM3").
  virtual std::string device_name() const { return "CPU"; }
  // Free memory of the device in bytes, for planning allocations before making them; nullopt
  // for a backend that computes in host memory (the caller asks the host).
  virtual std::optional<size_t> device_free_memory() const { return std::nullopt; }

  // ---- ops ---------------------------------------------------------------------------
  // out[:, i] = table[:, ids[i]]                table [n_embd, n_vocab] any type; out [n_embd, n_ids] f32
  virtual void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) = 0;
  // out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * weight     x, out [n, rows]; weight [n]
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // out[i, j] = sum_l w[l, i] * x[l, j]          w [k, n] any type; x [k, m] f32; out [n, m] f32
  virtual void matmul(const Tensor& w, const Tensor& x, Tensor& out) = 0;
  // out = a + b; b has the shape of a, or one row [n] broadcast over a's rows. out may alias a.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = silu(gate) * up                        gate, up, out [n, rows]
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out = gelu(gate) * up with the tanh GELU:    gate, up, out [n, rows]
  //   gelu(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
  virtual void geglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out = s * x                                  x, out [n, rows]; out may alias x.
  virtual void scale(const Tensor& x, float s, Tensor& out) = 0;
  // Rotates x in place; token t is at position positions[t].   x [head_dim, n_heads, n_tokens]
  virtual void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) = 0;
  // cache[:, :, kv.row(kv.seq[t], kv.positions[t])] = src[:, :, t]
  //                                   src [head_dim, n_kv_heads, n_tokens] f32;
  //                                   cache [head_dim, n_kv_heads, n_rows] f32 or f16
  virtual void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) = 0;
  // Causal attention of a batch's queries over the cached entries of their sequences (KvLayout),
  // with grouped KV heads (n_heads % n_kv_heads == 0): for token t of sequence s = kv.seq[t]
  // at position pt = kv.positions[t],
  //   out[:, h, t] = sum_p softmax_p(scale * q[:, h, t] . k[:, h / g, row(s, p)]) v[:, h / g, row(s, p)]
  // over the positions p the query sees: p <= pt, and pt - p < window where window > 0
  // (sliding-window attention); window 0: every p <= pt.
  // q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_rows]
  virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                         int64_t window, Tensor& out) = 0;

  // ---- mixture of experts ----------------------------------------------------------------
  // Routing of m tokens to n_used of n_expert experts each, on the device:
  //   ids[:, t]     = the n_used largest of logits[:, t], largest first (ties: lower index first)
  //   weights[s, t] = exp(logits[ids[s, t], t]) / sum_r exp(logits[ids[r, t], t])
  // (the softmax over all experts renormalised over the chosen ones).
  // logits [n_expert, m] f32; ids [n_used, m] i32 packed; weights [n_used, m] f32; n_used <= n_expert
  virtual void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights);
  // The expert-indexed matmul: slot s of token t multiplies by expert ids[s, t]:
  //   out[:, s, t] = w[:, :, ids[s, t]] x[:, s', t]     s' = s where x has n_used slots, else 0
  // w [k, n, n_expert] any type (one 3-D tensor); x [k, 1 or n_used, m] f32; ids [n_used, m] i32
  // from route_top_k (ids out of 0..n_expert-1 are refused where the backend can read them, or
  // give zero outputs); out [n, n_used, m] f32.
  virtual void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out);
  // out[:, t] = sum_s weights[s, t] y[:, s, t], summed in slot order.
  // y [n, n_used, m] f32; weights [n_used, m] f32; out [n, m] f32
  virtual void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out);
  // The values of a packed i32 backend tensor (expert ids) copied into `out`.
  virtual void read_i32(const Tensor& t, std::span<int32_t> out);

  // ---- the fused matmul ------------------------------------------------------------------
  // Several projections of one input with what comes right before and after them
  // (FusedMatmul). The default runs the plain ops it stands for, in the order its comment
  // gives; a backend overrides it to do the same in fewer passes over memory, with the same
  // results to the op thresholds of the test suite. Every tensor the op writes (the prologue's
  // output, each job's output after its epilogue, the gated output) holds its value when the
  // op returns, so a tap observes the fused path itself.
  virtual void matmul_fused(const FusedMatmul& op);

  // ---- decode steps --------------------------------------------------------------------
  // Queues one decode step: `queue` queues the ops of a forward pass of the single token
  // `token` at position `pos`, whose only step-dependent arguments are get_rows ids {token},
  // rope positions {pos} and the KvLayout's positions {pos} (store_kv, attention and the same
  // in the fused ops; its sequence and block table stay the same). A backend may
  // record what `queue` queues and, for later steps with the same `recording`, replay it with
  // the new token and position instead of calling `queue` (CUDA graphs: one launch per token).
  // So `queue` must queue the same ops on the same tensors every time, and nothing else.
  virtual void run_step(StepRecording& recording, int32_t token, int64_t pos, const std::function<void()>& queue) {
    (void)recording, (void)token, (void)pos;
    queue();
  }
};

// t [head_dim * heads, n] as [head_dim, heads, n] (a view); fails where head_dim does not
// divide t's rows.
Tensor split_heads(const Tensor& t, int64_t head_dim);

}  // namespace strata
