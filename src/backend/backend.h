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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace strata {

// Rotary position embedding of one model.
struct RopeConfig {
  int n_rot = 0;               // dimensions rotated in each head (even, <= head_dim)
  float freq_base = 10000.0f;  // theta_i = pos * freq_scale * freq_base^(-2i/n_rot) / factor_i
  float freq_scale = 1.0f;     // 1 / linear scaling factor
  bool neox = false;           // rotate pairs (i, i + n_rot/2) (NEOX, qwen2) instead of (2i, 2i+1) (llama)
  std::vector<float> freq_factors;  // [n_rot/2] per-pair divisors (Llama 3 rope scaling); empty = none
};

// What a backend keeps of one recorded decode step between run_step calls (a CUDA graph).
// Owned by the caller; dropping it drops the recording.
struct StepRecording {
  std::shared_ptr<void> state;
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
  // change them in place (softmax, rope), so the result of uploading a writable host tensor
  // is writable on every backend.
  virtual Tensor upload(const Tensor& host) = 0;
  // The values of a backend tensor as a host f32 tensor (for taps, logits, verification).
  virtual Tensor to_host_f32(const Tensor& t) = 0;
  // The values of a packed f32 backend tensor copied into `out` (out.size() == its elements),
  // without allocating: what a decode loop reads every token.
  virtual void read_f32(const Tensor& t, std::span<float> out);
  // Waits for queued work (no-op on CPU).
  virtual void synchronize() {}
  // The device the backend computes on, for reports ("CPU", "NVIDIA H100 80GB HBM3").
  virtual std::string device_name() const { return "CPU"; }

  // ---- ops ---------------------------------------------------------------------------
  // out[:, i] = table[:, ids[i]]                table [n_embd, n_vocab] any type; out [n_embd, n_ids] f32
  virtual void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) = 0;
  // out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * weight     x, out [n, rows]; weight [n]
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // out[i, j] = sum_l w[l, i] * x[l, j]          w [k, n] any type; x [k, m] f32; out [n, m] f32
  virtual void matmul(const Tensor& w, const Tensor& x, Tensor& out) = 0;
  // out = a + b; b has the shape of a, or one row [n] broadcast over a's rows. out may alias a.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // out = x * s. out may alias x.
  virtual void scale(const Tensor& x, float s, Tensor& out) = 0;
  // out = silu(gate) * up                        gate, up, out [n, rows]
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // Row-wise softmax in place.                   x [n, rows]
  virtual void softmax(Tensor& x) = 0;
  // Rotates x in place; token t is at position positions[t].   x [head_dim, n_heads, n_tokens]
  virtual void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) = 0;
  // cache[:, :, pos + t] = src[:, :, t]          src [head_dim, n_kv_heads, n_tokens] f32;
  //                                              cache [head_dim, n_kv_heads, n_ctx] f32 or f16
  virtual void store_kv(const Tensor& src, Tensor& cache, int64_t pos) = 0;
  // Causal attention of n_tokens new queries at positions n_past.. over cache entries
  // 0..n_past+n_tokens-1 (already stored), with grouped KV heads (n_heads % n_kv_heads == 0):
  //   out[:, h, t] = sum_s softmax_s(scale * q[:, h, t] . k[:, h / g, s]) v[:, h / g, s]
  // q, out [head_dim, n_heads, n_tokens] f32; k_cache, v_cache [head_dim, n_kv_heads, n_ctx]
  virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
                         Tensor& out) = 0;

  // ---- fused ops: the same results as the ops they stand for ---------------------------
  // rope(q), rope(k), store_kv(k, k_cache, pos), store_kv(v, v_cache, pos).
  virtual void rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, std::span<const int32_t> positions,
                             const RopeConfig& config, Tensor& k_cache, Tensor& v_cache, int64_t pos) {
    rope(q, positions, config);
    rope(k, positions, config);
    store_kv(k, k_cache, pos);
    store_kv(v, v_cache, pos);
  }
  // product = w x; acc += product (a projection and its residual add). acc has product's
  // shape and overlaps none of the others.
  virtual void matmul_add(const Tensor& w, const Tensor& x, Tensor& product, Tensor& acc) {
    matmul(w, x, product);
    add(acc, product, acc);
  }
  // gate = w_gate x; up = w_up x; out = silu(gate) * up (a SwiGLU feed-forward's first half).
  virtual void matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, const Tensor& x, Tensor& gate, Tensor& up,
                             Tensor& out) {
    matmul(w_gate, x, gate);
    matmul(w_up, x, up);
    swiglu(gate, up, out);
  }
  // out = w x for every job (several projections of one input: q, k, v). Outputs are separate.
  struct MatmulJob {
    const Tensor* w;
    Tensor* out;
  };
  virtual void matmul_batch(const Tensor& x, std::span<const MatmulJob> jobs) {
    for (const MatmulJob& job : jobs) matmul(*job.w, x, *job.out);
  }
  // normed = rms_norm(x, norm_weight, eps), then matmul_batch(normed, jobs) (a block's input
  // norm and its q, k, v projections).
  virtual void rms_norm_matmul_batch(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                     std::span<const MatmulJob> jobs) {
    rms_norm(x, norm_weight, eps, normed);
    matmul_batch(normed, jobs);
  }
  // A block's attention input: rms_norm_matmul_batch(x, ..., {wq -> q, wk -> k, wv -> v}),
  // then rope_store_kv of q, k and v seen as [head_dim, heads, n_tokens] (head_dim =
  // k_cache.ne(0)): q and k turned in place, k and v stored at cache row pos.
  virtual void rms_norm_qkv_rope_store_kv(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                          const Tensor& wq, const Tensor& wk, const Tensor& wv, Tensor& q, Tensor& k,
                                          Tensor& v, std::span<const int32_t> positions, const RopeConfig& config,
                                          Tensor& k_cache, Tensor& v_cache, int64_t pos);
  // A block's attention and output projection: attention(q, k_cache, v_cache, n_past, scale,
  // out), then matmul_add(w, out seen as [head_dim * n_heads, n_tokens], product, acc).
  virtual void attention_matmul_add(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                    float scale, Tensor& out, const Tensor& w, Tensor& product, Tensor& acc);
  // normed = rms_norm(x, norm_weight, eps), then matmul_swiglu(w_gate, w_up, normed, ...).
  virtual void rms_norm_matmul_swiglu(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                      const Tensor& w_gate, const Tensor& w_up, Tensor& gate, Tensor& up, Tensor& out) {
    rms_norm(x, norm_weight, eps, normed);
    matmul_swiglu(w_gate, w_up, normed, gate, up, out);
  }

  // ---- decode steps --------------------------------------------------------------------
  // Queues one decode step: `queue` queues the ops of a forward pass of the single token
  // `token` at position `pos`, whose only step-dependent arguments are get_rows ids {token},
  // rope positions {pos}, store_kv at pos and attention with n_past = pos (and the same in
  // the fused ops). A backend may
  // record what `queue` queues and, for later steps with the same `recording`, replay it with
  // the new token and position instead of calling `queue` (CUDA graphs: one launch per token).
  // So `queue` must queue the same ops on the same tensors every time, and nothing else.
  virtual void run_step(StepRecording& recording, int32_t token, int64_t pos, const std::function<void()>& queue) {
    (void)recording, (void)token, (void)pos;
    queue();
  }

protected:
  // t [head_dim * heads, n] as [head_dim, heads, n] (a view); fails where head_dim does not
  // divide t's rows.
  static Tensor heads(const Tensor& t, int64_t head_dim);
};

}  // namespace strata
