// Launchers of the CUDA kernels, one function per kernel family (defined in the .cu file of
// that family). This header is plain C++ as well as CUDA, so the host code of the backend
// (compiled by the C++ compiler, with Strata's headers) calls the kernels without including
// any device code. Each launcher queues work on `stream` and returns cudaGetLastError().
//
// Pointers are device addresses. Tensors are described by a base address and a RowLayout:
// "flat row" r = i1 + ne1 * (i2 + ne2 * i3) starts at byte offset i1*nb1 + i2*nb2 + i3*nb3
// (as Tensor's strides; ne0 elements of each row are packed).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace strata::cuda {

struct RowLayout {
  int64_t ne1 = 1, ne2 = 1;           // rows per step of dims 2 and 3
  int64_t nb1 = 0, nb2 = 0, nb3 = 0;  // byte strides of dims 1..3
};

// How a weight's rows lie in device memory; the backend picks it at upload (device_format).
// blocks: as in the file, a row is its blocks in order. grouped8 (Q4_0 and Q6_K rows of whole
// runs of 8 blocks): each run of 8 blocks is stored part by part, every part of the 8 blocks
// together (Q4_0: their 8 f16 scales, then their 8 x 16 bytes of nibbles; Q6_K: 8 x 128 bytes
// of low bits, 8 x 64 of high bits, 8 x 16 scales, 8 f16 d), as many bytes as in the file (rows
// keep their length), so that a lane reads a block's quantized values in aligned 8- or 16-byte
// loads and a warp's loads are contiguous. quant_decode.cuh has the offsets.
enum class RowFormat : uint8_t { blocks, grouped8 };
struct WeightType {
  DType type;
  RowFormat format = RowFormat::blocks;
  bool operator==(const WeightType&) const = default;
};
// Elements of a run of 8 blocks of the types that upload regroups (0: none).
inline int64_t group_elems(DType type) {
  return type == DType::Q4_0 ? 8 * 32 : type == DType::Q6_K ? 8 * 256 : 0;
}
// The format upload gives rows of ne0 elements of `type`.
inline RowFormat device_format(DType type, int64_t ne0) {
  const int64_t run = group_elems(type);
  return run > 0 && ne0 > 0 && ne0 % run == 0 ? RowFormat::grouped8 : RowFormat::blocks;
}

// ---- elementwise.cu: x, out [n, rows] f32 ---------------------------------------------
// out = a + b; b is [n, rows] or one row [n] (broadcast). out may be a.
cudaError_t launch_add(const void* a, RowLayout la, const void* b, RowLayout lb, bool broadcast, void* out,
                       RowLayout lo, int64_t n, int64_t rows, cudaStream_t stream);
// out = silu(gate) * up
cudaError_t launch_swiglu(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                          int64_t n, int64_t rows, cudaStream_t stream);
// out = gelu_tanh(gate) * up
cudaError_t launch_geglu(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                         int64_t n, int64_t rows, cudaStream_t stream);
// out = s * x; out may be x.
cudaError_t launch_scale(const void* x, RowLayout lx, float s, void* out, RowLayout lo, int64_t n, int64_t rows,
                         cudaStream_t stream);

// ---- norm.cu ----------------------------------------------------------------------------
// out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * weight      weight [n] f32
cudaError_t launch_rms_norm(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo,
                            int64_t n, int64_t rows, cudaStream_t stream);

// ---- rope.cu: x [head_dim, n_heads, n_tokens] f32, in place ----------------------------
// Pair i of head h of token t turns by positions[t] * theta_scale[i] (double, [n_rot/2]).
cudaError_t launch_rope(void* x, RowLayout lx, int64_t n_heads, int64_t n_tokens, const int32_t* positions,
                        const double* theta_scale, int n_rot, bool neox, cudaStream_t stream);

// rope of q [head_dim, n_heads, n_tokens] and k [head_dim, n_kv_heads, n_tokens] in place,
// then k and v stored at cache row `pos` (as launch_store_kv), in one launch.
struct RopeStoreKv {
  void* q;
  RowLayout lq;
  void* k;
  RowLayout lk;
  const void* v;
  RowLayout lv;
  void* k_cache;
  RowLayout lkc;
  void* v_cache;
  RowLayout lvc;
  bool cache_f16;
  int64_t head_dim, n_heads, n_kv_heads, n_tokens, pos;
  const double* theta_scale;
  int n_rot;
  bool neox;
};
// positions [n_tokens] on the device; pos_dev: read pos from the device (a recorded step).
cudaError_t launch_rope_store_kv(const RopeStoreKv& args, const int32_t* positions, const int32_t* pos_dev,
                                 cudaStream_t stream);

// ---- the q8 form of activations (quantize_x.cu; read by matmul_vec_q8.cu) ----------------
// x [k] f32 (k % 32 == 0) as k / 32 blocks of 32: q = round(x * 127 / amax) as int8 and
// ds = {d, d * sum of the block's q} with d = amax / 127, amax = max |x| over the block (a
// block of zeros: q = 0, d = 0). Products with it are taken on the integer units (dp4a):
// sum_i w_i x_i ~ sum over blocks of d_w d (sum_i q_w,i q_i), exact integer sums, f32 above.
struct XQ8 {
  int8_t* q;   // [k]
  float2* ds;  // [k / 32]
};

// ---- attention.cu -------------------------------------------------------------------------
// cache[:, :, pos + t] = src[:, :, t]     src [head_dim, n_kv, n_tokens] f32; cache f32 or f16
// pos_dev: read the position from the device instead of pos (a recorded step).
cudaError_t launch_store_kv(const void* src, RowLayout ls, void* cache, RowLayout lc, bool cache_f16, int64_t head_dim,
                            int64_t n_kv_heads, int64_t n_tokens, int64_t pos, const int32_t* pos_dev,
                            cudaStream_t stream);
// Paged store (backend.h: KvLayout): cache row rows[t] (on the device) = src[:, :, t].
cudaError_t launch_store_kv_rows(const void* src, RowLayout ls, void* cache, RowLayout lc, bool cache_f16,
                                 int64_t head_dim, int64_t n_kv_heads, int64_t n_tokens, const int32_t* rows,
                                 cudaStream_t stream);
// Causal GQA attention (backend.h), with a sliding window where window > 0; q, out
// [head_dim, n_heads, n_tokens] f32; caches [head_dim, n_kv_heads, n_ctx] f32 or f16.
// head_dim <= kMaxHeadDim. n_past_dev: read n_past from the device (a recorded step).
inline constexpr int64_t kMaxHeadDim = 256;
cudaError_t launch_attention(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                             bool cache_f16, void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                             int64_t n_kv_heads, int64_t n_tokens, int64_t n_past, const int32_t* n_past_dev,
                             int64_t window, float scale, cudaStream_t stream);

// The same over a paged cache (backend.h: KvLayout), its arrays on the device: token t sees
// positions 0..positions[t] of sequence seq[t] (the last `window` where window > 0), whose blocks
// are block_table[seq[t] * max_blocks ...].
cudaError_t launch_attention_paged(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                   RowLayout lv, bool cache_f16, void* out, RowLayout lo, int64_t head_dim,
                                   int64_t n_heads, int64_t n_kv_heads, int64_t n_tokens, const int32_t* positions,
                                   const int32_t* seq, const int32_t* block_table, int64_t max_blocks,
                                   int64_t block_tokens, int64_t window, float scale, cudaStream_t stream);

// ---- attention_prefill.cu: the same on tensor cores, for prompts ----------------------------
// Whether launch_attention_prefill takes these arguments: f16 caches, head_dim 64 or 128,
// n_tokens >= kAttentionPrefillMinTokens, 16-byte aligned rows; STRATA_CUDA_ATTENTION=scalar
// in the environment says no (launch_attention then runs, for comparisons).
inline constexpr int64_t kAttentionPrefillMinTokens = 16;
bool attention_prefill_applies(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                               bool cache_f16, const void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                               int64_t n_kv_heads, int64_t n_tokens, int64_t n_past);
cudaError_t launch_attention_prefill(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                     RowLayout lv, void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                                     int64_t n_kv_heads, int64_t n_tokens, int64_t n_past, float scale,
                                     cudaStream_t stream);

// Attention of one query token (decode), split over the keys (split-K): q, out
// [head_dim, n_heads, 1]; caches of n_ctx rows per kv head; n_past_dev: read n_past from the
// device instead (a recorded step: the launch then covers the whole context). keys_settled:
// the previous kernel on the stream wrote no cache row before n_past (the keys before it are
// then loaded before waiting for that kernel; where head_dim is 64 or 128). partials: device
// scratch of attention_decode_partial_floats(n_heads, head_dim, n_ctx) floats; done: n_heads
// counters (device) that are 0 before the first launch and that every launch leaves 0.
// q8.q != nullptr: out's q8 form is written too (x = out as [head_dim * n_heads], packed;
// f16 caches, head_dim 64 or 128, 16-byte aligned rows; else cudaErrorNotSupported, nothing
// launched).
size_t attention_decode_partial_floats(int64_t n_heads, int64_t head_dim, int64_t n_ctx);
cudaError_t launch_attention_decode(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                    RowLayout lv, bool cache_f16, void* out, RowLayout lo, int64_t head_dim,
                                    int64_t n_heads, int64_t n_kv_heads, int64_t n_ctx, int64_t n_past,
                                    const int32_t* n_past_dev, bool keys_settled, float scale, float* partials,
                                    unsigned* done, XQ8 q8, cudaStream_t stream);

// ---- step.cu: the step-dependent values of a recorded decode step -------------------------
// values[0] = token, values[1] = pos (device int32[2], read by the recorded kernels).
cudaError_t launch_set_step(int32_t* values, int32_t token, int32_t pos, cudaStream_t stream);

// ---- convert.cu: rows of any supported type to f32 ---------------------------------------
// dst row r (dst + r * dst_stride floats) = src row ids[r] (ids == nullptr: flat row r) of
// `type`, ne0 elements; plain types may have an element stride nb0.
bool convert_supported(DType type);
cudaError_t launch_rows_to_f32(WeightType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids,
                               int64_t ne0, int64_t n_rows, float* dst, int64_t dst_stride, cudaStream_t stream);
// The same with f16 output (dst: __half), saturating at +-65504.
cudaError_t launch_rows_to_f16(WeightType type, const void* src, RowLayout ls, size_t nb0, const int32_t* ids,
                               int64_t ne0, int64_t n_rows, void* dst, int64_t dst_stride, cudaStream_t stream);

// n_rows rows of `type` (Q4_0 or Q6_K) of ne0 elements (a multiple of group_elems) in the
// file's format (src) in the grouped8 format (dst, 16-byte aligned; rows row_bytes apart in
// both, a multiple of 16). src and dst must not overlap.
cudaError_t launch_group_rows(DType type, const void* src, void* dst, int64_t ne0, int64_t n_rows, size_t row_bytes,
                              cudaStream_t stream);

// ---- matmul_vec_*.cu: out[i, j] = sum_l w[l, i] * x[l, j] for m <= kMaxVecColumns ----------
// w: n rows of row_bytes; x, out: columns at x + j * x_stride, out + j * out_stride floats.
// For the quantized types x must be 16-byte aligned and x_stride a multiple of 4.
inline constexpr int kMaxVecColumns = 8;
bool matvec_supported(DType type);
cudaError_t launch_matvec(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                          int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream);
// launch_matvec tries launch_matvec_fast (matmul_vec_fast.cu: Q4_0, Q8_0, Q4_K, Q6_K, F16,
// bank-conflict-free loads of x, several rows per CTA), which answers cudaErrorNotSupported
// for other types and for alignments it does not take, then launch_matvec_generic (one warp
// per row, every type; kept as the fallback and as the baseline of bench/cuda_matvec_bench).
cudaError_t launch_matvec_fast(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                               int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream);
// The fused decode ops' launches (the fast kernels only; cudaErrorNotSupported, nothing
// launched, where launch_matvec_fast would answer so for any job). A job: out = w x over n rows
// of row_bytes, and with acc also acc += out (acc[j * acc_stride + row], as launch_add).
// The q, k and v jobs of rms_norm_qkv_rope_store_kv (m = 1) also rope and store (VecRope):
// rope: out is q, turned in place as launch_rope turns it (the pairs (2i, 2i + 1) of each
// head's first n_rot rows: neox = false); rope_store_k: the same, and out stored at cache row
// pos of k_cache (as launch_store_kv); store_v: out stored at row pos of v_cache.
enum class VecRole : uint8_t { plain, rope, rope_store_k, store_v };
struct VecJob {
  const void* w;
  size_t row_bytes;
  int64_t n;
  float* out;
  int64_t out_stride;
  float* acc;  // nullptr: no add
  int64_t acc_stride;
  int first_cta = 0;              // the launch's first CTA of this job: the launcher sets it
  VecRole role = VecRole::plain;  // not plain: no acc
};
// The rope and the caches of the jobs with a role: angle positions[0] * theta_scale[i] for
// pair i; the caches are [head_dim, n / head_dim, n_ctx], the row of head h at position
// p = (pos_dev ? *pos_dev : pos) at h * nb1 + p * nb2 (roles_valid checks the layout).
// positions, pos_dev and theta_scale are read before the launch waits for the previous kernel
// (matmul_vec_fast.cuh: rope_inputs): they must not be outputs of the kernel launched just
// before (the backend writes them by copies, and the decode step's values by a kernel that
// precedes the recorded step).
struct VecRope {
  const int32_t* positions = nullptr;  // [1], device
  const int32_t* pos_dev = nullptr;
  int64_t pos = 0;
  const double* theta_scale = nullptr;  // [n_rot / 2], device
  int n_rot = 0;
  int64_t head_dim = 0;
  void* k_cache = nullptr;
  RowLayout lkc;
  void* v_cache = nullptr;
  RowLayout lvc;
  bool cache_f16 = false;
};
inline constexpr int kMaxVecJobs = 4;
// rms_norm of x folded into the launches below (m = 1; weight and normed 16-byte aligned,
// k % 4 == 0, k <= 2048 (matmul_vec_fast.cu says why); else cudaErrorNotSupported): x is
// rms_norm's input, the product is taken with normed = x * inv_rms * weight, written to
// normed with launch_rms_norm's bits.
struct VecNorm {
  const float* weight = nullptr;
  float eps = 0.0f;
  float* normed = nullptr;
};
// Up to kMaxVecJobs jobs of one type and k on the same x, in one launch; each row's sum has
// the bits launch_matvec_fast gives it.
// rope: the jobs' roles' arguments (a job with a role needs m = 1).
cudaError_t launch_matvec_fast_jobs(WeightType type, const VecJob* jobs, int n_jobs, int64_t k, const float* x,
                                    int64_t x_stride, int m, cudaStream_t stream, const VecNorm* norm = nullptr,
                                    const VecRope* rope = nullptr);
// gate and up (same n and row_bytes, no acc) in one launch, and act = silu(gate) * up (as
// launch_swiglu), act's column j at act + j * act_stride.
cudaError_t launch_matvec_fast_swiglu(WeightType type, const VecJob& gate, const VecJob& up, float* act,
                                      int64_t act_stride, int64_t k, const float* x, int64_t x_stride, int m,
                                      cudaStream_t stream, const VecNorm* norm = nullptr);
// ---- integer decode kernels: x quantized to 8 bits (quantize_x.cu, matmul_vec_fast.cu) ----
// Device bytes of the q8 form of k values, and its layout in such a buffer (16-byte aligned).
size_t x_q8_bytes(int64_t k);
XQ8 x_q8_view(void* buffer, int64_t k);
// out = the q8 form of x (16-byte aligned, k % 32 == 0).
cudaError_t launch_quantize_x_q8(const float* x, int64_t k, XQ8 out, cudaStream_t stream);
// rms_norm of one row x [n] (launch_rms_norm's bits in normed) and normed's q8 form, in one
// launch where n <= 8192 (two otherwise); x, weight, normed 16-byte aligned, n % 32 == 0.
cudaError_t launch_rms_norm_q8(const float* x, const float* weight, float eps, float* normed, int64_t n, XQ8 out,
                               cudaStream_t stream);
// The types and row lengths the integer kernels take (m = 1): Q4_0, Q4_K, Q6_K.
bool matvec_q8_supported(DType type, int64_t k);
// launch_matvec_fast_jobs and launch_matvec_fast_swiglu (m = 1) on the q8 form of x;
// cudaErrorNotSupported (nothing launched) where matvec_q8_supported says no or a row is
// not 2-byte (Q4_K and grouped rows: 16-byte) aligned. A row's sum does not depend on the launch it is in.
cudaError_t launch_matvec_q8_jobs(WeightType type, const VecJob* jobs, int n_jobs, int64_t k, XQ8 x,
                                  cudaStream_t stream, const VecRope* rope = nullptr);
// Jobs of two weight types in one launch: jobs[0 .. n_a - 1] of type a, the others of type b,
// where matvec_q8_pair_supported(a, b) (Q4_K rows as in the file and Q6_K rows grouped8: a
// Q4_K_M file's q, k and v); each row's sum has the bits of its type's own launch.
bool matvec_q8_pair_supported(WeightType a, WeightType b);
cudaError_t launch_matvec_q8_jobs_pair(WeightType a, WeightType b, const VecJob* jobs, int n_a, int n_jobs, int64_t k,
                                       XQ8 x, cudaStream_t stream, const VecRope* rope = nullptr);
cudaError_t launch_matvec_q8_swiglu(WeightType type, const VecJob& gate, const VecJob& up, float* act, int64_t k, XQ8 x,
                                    cudaStream_t stream);
cudaError_t launch_matvec_generic(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n,
                                  const float* x, int64_t x_stride, float* out, int64_t out_stride, int m,
                                  cudaStream_t stream);
// The parts of launch_matvec_generic by type family (matmul_vec_plain.cu: F32, F16, BF16;
// matmul_vec_legacy.cu: the 32-element block types; matmul_vec_k.cu: the 256-element ones);
// each returns cudaErrorInvalidValue for a type not its own.
cudaError_t launch_matvec_plain(DType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                                int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream);
cudaError_t launch_matvec_legacy(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                                 int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream);
cudaError_t launch_matvec_k(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                            int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream);

// A trivial kernel's attributes: fails with cudaErrorNoKernelImageForDevice (or
// cudaErrorInvalidDeviceFunction) when this build has no code for the device.
cudaError_t probe_kernel_image();

// ---- experts.cu: mixture of experts ------------------------------------------------------
// Each token t of logits [n_expert, m] (column stride logits_stride floats): ids[t * n_used + s]
// the n_used largest logits (ties: lower index first), weights (stride weights_stride) their
// softmax, as Backend::route_top_k.
cudaError_t launch_route_top_k(const float* logits, int64_t logits_stride, int64_t n_expert, int32_t* ids,
                               float* weights, int64_t weights_stride, int64_t n_used, int64_t m, cudaStream_t stream);
// Whether matmul_experts takes weights of `type` (plain, or a quantized type decode_quant has).
bool experts_supported(WeightType type);
// out [n, n_used, m] packed: column s + t * n_used = expert ids[s + t * n_used] of w (n_expert
// matrices of n rows of row_bytes, one after the other) times x column t * x_slots + (s or 0)
// (stride x_stride floats); ids out of range give zero columns.
cudaError_t launch_matmul_experts(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n,
                                  int64_t n_expert, const float* x, int64_t x_stride, int64_t x_slots,
                                  const int32_t* ids, int64_t n_used, int64_t m, float* out, cudaStream_t stream);
// out [n, m] = sum over s of weights [n_used, m] times y [n, n_used, m] (all packed).
cudaError_t launch_sum_experts(const float* y, const float* weights, float* out, int64_t n, int64_t n_used, int64_t m,
                               cudaStream_t stream);

}  // namespace strata::cuda
