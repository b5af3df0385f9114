// Prompt-processing (prefill) attention on tensor cores, flash-attention style, for f16
// caches and head_dim 64 or 128 (launch_attention keeps the other cases and decode).
//
// Same contract as launch_attention (backend.h): out[:, h, t] = softmax over cache rows
// 0..n_past+t of scale * q[:, h, t] . k[:, h / group, s], weighting v[:, h / group, s].
//
// Work split: one block of 4 warps per (query head, tile of 64 consecutive tokens); warp w
// owns the tile's queries 16 w .. 16 w + 15. Blocks of the last (longest, causal) token
// tiles start first. The block streams the visible keys in tiles of 64 through shared
// memory (K and V double-buffered with cp.async, the next tile loading while this one is
// computed), and for each tile every warp does
//   S = Q K^T        [16 queries, 64 keys]   mma.sync m16n8k16, f16 x f16 -> f32
//   online softmax   running max m and sum l per query row, in f32 (base-2 exponentials
//                    of S * scale * log2 e), causal mask on the diagonal tile
//   O = O * c + P V  [16 queries, head_dim]  mma.sync, f32 accumulators
// and finally writes O / l as f32. Tiles wholly after a warp's last query are skipped.
//
// Precision: q is rounded to f16 once (k and v are f16 already), and the probabilities P
// (in [0, 1], after subtracting the running max) are rounded to f16 for the P V product,
// as flash-attention implementations do; l sums those same rounded values, so the weights
// still add up to one. Every sum (dot products, the softmax, O) accumulates in f32: f16
// accumulation is never used. The backend suite holds the result to the attention threshold
// (kNmseAttention, tests/backend/op_cases_basic.h) against a double-precision expectation.
//
// Shared memory rows are padded by 16 bytes (8 halves), which makes the ldmatrix reads of
// 8 rows land in distinct banks.
#include <cstdlib>
#include <cstring>

#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kTileQ = 64;  // queries per block
constexpr int kTileK = 64;  // keys per shared-memory tile
constexpr int kWarpsQ = 4;  // warps per block, 16 queries each
constexpr int kThreads = kWarpsQ * kWarp;
constexpr int kPad = 8;  // halves of padding per shared-memory row
constexpr float kLog2e = 1.4426950408889634f;

// ---- PTX wrappers -------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; `bytes` 0 fills the 16 bytes with zeros.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8x8 f16 matrices from shared memory; lane l gives the row address of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c[16x8] += a[16x16] b[16x8]; f16 operands, f32 accumulators. Fragments (g = lane / 4,
// i = lane % 4): a = {(g, 2i..), (g+8, 2i..), (g, 2i+8..), (g+8, 2i+8..)}; b = {(2i.., g),
// (2i+8.., g)}; c = {(g, 2i), (g, 2i+1), (g+8, 2i), (g+8, 2i+1)}.
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t half2_bits(__half2 h) {
  return *reinterpret_cast<const uint32_t*>(&h);
}

// ---- the kernel ---------------------------------------------------------------------------

struct PrefillArgs {
  const void* q;
  RowLayout lq;
  const char* k;  // row (kv head, position s) at kv_head * k_nb1 + s * k_nb2
  const char* v;
  int64_t k_nb1, k_nb2, v_nb1, v_nb2;
  void* out;
  RowLayout lo;
  int n_heads, group, n_tokens, n_past;
  float scale_log2;  // scale * log2(e)
};

// Keys kb .. kb + kTileK - 1 of one kv head into a [kTileK][D + kPad] tile; rows at or past
// n_kv (not stored yet) are zero-filled, so that 0-weight products stay 0.
template <int D>
__device__ __forceinline__ void load_kv_tile(__half* dst, const char* base, int64_t nb2, int kb, int n_kv) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < kTileK * kChunks; c += kThreads) {
    const int row = c / kChunks, col = (c % kChunks) * 8;
    const int s = kb + row;
    const bool valid = s < n_kv;
    const char* src = base + (valid ? int64_t(s) * nb2 : 0) + col * 2;
    cp_async_16(dst + row * (D + kPad) + col, src, valid ? 16 : 0);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) attention_prefill_kernel(PrefillArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kRow = D + kPad;                      // halves per shared-memory row
  __half* q_s = reinterpret_cast<__half*>(smem_raw);  // [kTileQ][kRow]
  __half* k_s = q_s + kTileQ * kRow;                  // [2][kTileK][kRow]
  __half* v_s = k_s + 2 * kTileK * kRow;              // [2][kTileK][kRow]

  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int g = lane / 4, i4 = lane % 4;
  const int h = blockIdx.x, kv_head = h / a.group;
  const int t0 = (gridDim.y - 1 - blockIdx.y) * kTileQ;  // longest tiles first
  const int t_last = min(t0 + kTileQ, a.n_tokens) - 1;
  const int n_kv = a.n_past + t_last + 1;  // keys this block sees
  const int n_tiles = (n_kv + kTileK - 1) / kTileK;
  const char* kbase = a.k + kv_head * a.k_nb1;
  const char* vbase = a.v + kv_head * a.v_nb1;

  load_kv_tile<D>(k_s, kbase, a.k_nb2, 0, n_kv);
  load_kv_tile<D>(v_s, vbase, a.v_nb2, 0, n_kv);
  cp_async_commit();

  // q rows t0.. (f32) -> q_s (f16, rounded once); rows past n_tokens are zero.
  for (int c = threadIdx.x; c < kTileQ * (D / 4); c += kThreads) {
    const int row = c / (D / 4), col = (c % (D / 4)) * 4;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t0 + row < a.n_tokens) {
      x = *reinterpret_cast<const float4*>(row_ptr<float>(a.q, a.lq, h + int64_t(t0 + row) * a.n_heads) + col);
    }
    __half2* dst = reinterpret_cast<__half2*>(q_s + row * kRow + col);
    dst[0] = __floats2half2_rn(x.x, x.y);
    dst[1] = __floats2half2_rn(x.z, x.w);
  }
  __syncthreads();

  // This warp's q fragments: rows 16 warp .. +15, all of head_dim.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int row = warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8, col = kk * 16 + (lane / 16) * 8;
    ldmatrix_x4(qf[kk], q_s + row * kRow + col);
  }

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;       // rows g and g + 8
  const int pos0 = a.n_past + t0 + warp * 16 + g, pos1 = pos0 + 8;  // positions of those rows
  const int warp_first = a.n_past + t0 + warp * 16, warp_last = warp_first + 15;
  const bool warp_active = t0 + warp * 16 < a.n_tokens;

  for (int j = 0; j < n_tiles; ++j) {
    const int kb = j * kTileK;
    if (j + 1 < n_tiles) {  // prefetch the next tile into the other buffer
      const int nb = (j + 1) % 2;
      load_kv_tile<D>(k_s + nb * kTileK * kRow, kbase, a.k_nb2, kb + kTileK, n_kv);
      load_kv_tile<D>(v_s + nb * kTileK * kRow, vbase, a.v_nb2, kb + kTileK, n_kv);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const __half* kt = k_s + (j % 2) * kTileK * kRow;
    const __half* vt = v_s + (j % 2) * kTileK * kRow;

    if (warp_active && kb <= warp_last) {
      // S = Q K^T: s[n] holds keys kb + 8 n .. kb + 8 n + 7.
      float s[kTileK / 8][4];
#pragma unroll
      for (int n = 0; n < kTileK / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < kTileK / 16; ++np) {
          uint32_t b[4];
          const int key = np * 16 + (lane % 8) + (lane / 16) * 8, col = kk * 16 + ((lane / 8) % 2) * 8;
          ldmatrix_x4(b, kt + key * kRow + col);
          mma_16816(s[2 * np], qf[kk], b[0], b[1]);
          mma_16816(s[2 * np + 1], qf[kk], b[2], b[3]);
        }
      }

      // Scale to base 2, mask keys after each row's position (only near the diagonal).
      const bool diagonal = kb + kTileK - 1 > warp_first;
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int n = 0; n < kTileK / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = kb + n * 8 + 2 * i4 + (e % 2);
          float x = s[n][e] * a.scale_log2;
          if (diagonal && key > (e < 2 ? pos0 : pos1)) x = -INFINITY;
          s[n][e] = x;
        }
        mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
        mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
      }
      // The quad (lanes 4g .. 4g + 3) shares rows g and g + 8.
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      // Finite: key 0 is visible to every row, and it is in the first tile.
      const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
      const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);
      m0 = mn0, m1 = mn1;

      // P = exp2(S - m) rounded to f16, as mma A fragments (16 keys per k-step).
      uint32_t pf[kTileK / 16][4];
      float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
      for (int n = 0; n < kTileK / 8; ++n) {
        const __half2 p_lo = __floats2half2_rn(exp2f(s[n][0] - mn0), exp2f(s[n][1] - mn0));
        const __half2 p_hi = __floats2half2_rn(exp2f(s[n][2] - mn1), exp2f(s[n][3] - mn1));
        const float2 f_lo = __half22float2(p_lo), f_hi = __half22float2(p_hi);
        sum0 += f_lo.x + f_lo.y;
        sum1 += f_hi.x + f_hi.y;
        pf[n / 2][(n % 2) * 2] = half2_bits(p_lo);
        pf[n / 2][(n % 2) * 2 + 1] = half2_bits(p_hi);
      }
      l0 = l0 * c0 + sum0;  // per-lane partial sums; the quad is summed at the end
      l1 = l1 * c1 + sum1;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        o[n][0] *= c0, o[n][1] *= c0, o[n][2] *= c1, o[n][3] *= c1;
      }

      // O += P V: o[n] holds dims 8 n .. 8 n + 7.
#pragma unroll
      for (int kk = 0; kk < kTileK / 16; ++kk) {
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t b[4];
          const int key = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8, col = dp * 16 + (lane / 16) * 8;
          ldmatrix_x4_trans(b, vt + key * kRow + col);
          mma_16816(o[2 * dp], pf[kk], b[0], b[1]);
          mma_16816(o[2 * dp + 1], pf[kk], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
  }

  if (!warp_active) return;
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  const int ta = t0 + warp * 16 + g, tb = ta + 8;
  float* out_a = ta < a.n_tokens ? row_ptr<float>(a.out, a.lo, h + int64_t(ta) * a.n_heads) : nullptr;
  float* out_b = tb < a.n_tokens ? row_ptr<float>(a.out, a.lo, h + int64_t(tb) * a.n_heads) : nullptr;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int d = n * 8 + 2 * i4;
    if (out_a != nullptr) *reinterpret_cast<float2*>(out_a + d) = make_float2(o[n][0] * inv0, o[n][1] * inv0);
    if (out_b != nullptr) *reinterpret_cast<float2*>(out_b + d) = make_float2(o[n][2] * inv1, o[n][3] * inv1);
  }
}

template <int D>
constexpr size_t smem_bytes() {
  return size_t(kTileQ + 4 * kTileK) * (D + kPad) * sizeof(__half);
}

template <int D>
cudaError_t launch_for(const PrefillArgs& a, int64_t n_tokens, cudaStream_t stream) {
  static const cudaError_t attr = cudaFuncSetAttribute(
      attention_prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes<D>()));
  if (attr != cudaSuccess) return attr;
  const dim3 grid(unsigned(a.n_heads), unsigned(ceil_div(n_tokens, kTileQ)));
  attention_prefill_kernel<D><<<grid, kThreads, smem_bytes<D>(), stream>>>(a);
  return cudaGetLastError();
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// STRATA_CUDA_ATTENTION=scalar turns the prefill kernel off (for comparisons).
bool prefill_disabled_by_env() {
  static const bool off = [] {
    const char* e = bench_switch("STRATA_CUDA_ATTENTION");
    return e != nullptr && std::strcmp(e, "scalar") == 0;
  }();
  return off;
}

}  // namespace

bool attention_prefill_applies(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                               bool cache_f16, const void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                               int64_t n_kv_heads, int64_t n_tokens, int64_t n_past) {
  if (!cache_f16 || (head_dim != 64 && head_dim != 128) || n_tokens < kAttentionPrefillMinTokens) return false;
  if (prefill_disabled_by_env()) return false;
  // int indices in the kernel; the cache rows are addressed as kv_head * nb1 + s * nb2.
  if (n_past + n_tokens > INT32_MAX || n_heads > INT32_MAX || n_kv_heads == 0 || lk.ne1 != n_kv_heads ||
      lv.ne1 != n_kv_heads || n_tokens / kTileQ >= 65535) {
    return false;
  }
  // 16-byte loads of cache and q rows, 8-byte stores of out rows.
  const bool k_ok = aligned16(k) && lk.nb1 % 16 == 0 && lk.nb2 % 16 == 0;
  const bool v_ok = aligned16(v) && lv.nb1 % 16 == 0 && lv.nb2 % 16 == 0;
  const bool q_ok = aligned16(q) && lq.nb1 % 16 == 0 && lq.nb2 % 16 == 0 && lq.nb3 % 16 == 0;
  const bool o_ok = aligned16(out) && lo.nb1 % 16 == 0 && lo.nb2 % 16 == 0 && lo.nb3 % 16 == 0;
  return k_ok && v_ok && q_ok && o_ok;
}

cudaError_t launch_attention_prefill(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v,
                                     RowLayout lv, void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                                     int64_t n_kv_heads, int64_t n_tokens, int64_t n_past, float scale,
                                     cudaStream_t stream) {
  if (n_heads == 0 || n_tokens == 0) return cudaSuccess;
  if (n_kv_heads == 0 || n_heads % n_kv_heads != 0) return cudaErrorInvalidValue;
  const PrefillArgs a{.q = q,
                      .lq = lq,
                      .k = static_cast<const char*>(k),
                      .v = static_cast<const char*>(v),
                      .k_nb1 = lk.nb1,
                      .k_nb2 = lk.nb2,
                      .v_nb1 = lv.nb1,
                      .v_nb2 = lv.nb2,
                      .out = out,
                      .lo = lo,
                      .n_heads = int(n_heads),
                      .group = int(n_heads / n_kv_heads),
                      .n_tokens = int(n_tokens),
                      .n_past = int(n_past),
                      .scale_log2 = scale * kLog2e};
  switch (head_dim) {
    case 64:
      return launch_for<64>(a, n_tokens, stream);
    case 128:
      return launch_for<128>(a, n_tokens, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace strata::cuda
