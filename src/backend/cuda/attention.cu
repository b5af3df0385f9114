// The KV cache and attention on the device.
//
// store_kv: one thread per element, converting to f16 (round to nearest even) for f16 caches.
// attention: one block per (query head, token), q in shared memory. The block's warps take
// tiles of 32 visible keys in turn (warp w: keys 32 w .. 32 w + 31, then 32 (w + kWarps) ...).
// In a tile, lane j computes the whole score of key j (16-byte loads of its row when the
// row allows), the warp updates its online softmax (running max m, denominator l, weighted
// sum o, all f32) once per tile, then adds the 32 values rows weighted by their
// probabilities (lane holds o[d] for d = lane + 32 i; value rows are read coalesced). The
// warps' partial results are merged at the end.
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kPerLane = int(kMaxHeadDim) / kWarp;  // elements of a head per lane, at most
constexpr int64_t kMaxGridY = 65535;

template <bool kF16>
__device__ __forceinline__ float cache_value(const void* row, int64_t d) {
  if constexpr (kF16) {
    return f16_bits_to_f32(static_cast<const uint16_t*>(row)[d]);
  } else {
    return static_cast<const float*>(row)[d];
  }
}

template <bool kF16>
__global__ void store_kv_kernel(const void* src, RowLayout ls, void* cache, RowLayout lc, int64_t head_dim,
                                int64_t n_rows, int64_t first_cache_row) {
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= head_dim) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {  // r = kv_head + t * n_kv_heads
    const float value = row_ptr<float>(src, ls, r)[d];
    if constexpr (kF16) {
      row_ptr<__half>(cache, lc, first_cache_row + r)[d] = __float2half_rn(value);
    } else {
      row_ptr<float>(cache, lc, first_cache_row + r)[d] = value;
    }
  }
}

// q . k over one head: k is a cache row (f32 or f16), q in shared memory (broadcast reads).
template <bool kF16>
__device__ __forceinline__ float dot_row(const float* q, const void* k, int64_t head_dim, bool vec) {
  float dot = 0.0f;
  if (vec) {  // head_dim % 8 == 0 and 16-byte aligned rows
    for (int64_t d = 0; d < head_dim; d += 8) {
      const uint4* p = reinterpret_cast<const uint4*>(static_cast<const char*>(k) + d * (kF16 ? 2 : 4));
      float kv[8];
      if constexpr (kF16) {
        const uint4 u = *p;
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          kv[2 * i] = f16_bits_to_f32(uint16_t(w[i] & 0xffffu));
          kv[2 * i + 1] = f16_bits_to_f32(uint16_t(w[i] >> 16));
        }
      } else {
        const uint4 a = p[0], b = p[1];
        kv[0] = __uint_as_float(a.x), kv[1] = __uint_as_float(a.y), kv[2] = __uint_as_float(a.z);
        kv[3] = __uint_as_float(a.w), kv[4] = __uint_as_float(b.x), kv[5] = __uint_as_float(b.y);
        kv[6] = __uint_as_float(b.z), kv[7] = __uint_as_float(b.w);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += q[d + i] * kv[i];
    }
  } else {
    for (int64_t d = 0; d < head_dim; ++d) dot += q[d] * cache_value<kF16>(k, d);
  }
  return dot;
}

template <bool kF16>
__global__ void __launch_bounds__(kWarps* kWarp)
    attention_kernel(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv, void* out,
                     RowLayout lo, int64_t head_dim, int64_t n_heads, int64_t group, int64_t n_kv_heads,
                     int64_t n_tokens, int64_t n_past, float scale, bool vec) {
  __shared__ __align__(16) float q_s[kMaxHeadDim];
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_o[kWarps][kMaxHeadDim];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t h = blockIdx.x, kv_head = h / group;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    __syncthreads();  // the previous token is done with q_s and the partial results
    const float* qr = row_ptr<float>(q, lq, h + t * n_heads);
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = qr[d];
    __syncthreads();
    float o[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) o[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int64_t n_kv = n_past + t + 1;  // causal: positions 0..n_past+t
    for (int64_t base = int64_t(warp) * kWarp; base < n_kv; base += int64_t(kWarps) * kWarp) {
      const int64_t s = base + lane;
      float score = -INFINITY;
      if (s < n_kv) score = dot_row<kF16>(q_s, row_ptr<char>(k, lk, kv_head + s * n_kv_heads), head_dim, vec) * scale;
      const float m_new = fmaxf(m, warp_max(score));  // finite: key `base` is visible
      const float correction = expf(m - m_new);
      const float p = s < n_kv ? expf(score - m_new) : 0.0f;
      l = l * correction + warp_sum(p);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) o[i] *= correction;
      const int n_valid = int(n_kv - base < kWarp ? n_kv - base : kWarp);  // the same in every lane
#pragma unroll 4
      for (int j = 0; j < n_valid; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        const void* vr = row_ptr<char>(v, lv, kv_head + (base + j) * n_kv_heads);
#pragma unroll
        for (int i = 0; i < kPerLane; ++i) {
          const int64_t d = lane + kWarp * i;
          if (d < head_dim) o[i] += pj * cache_value<kF16>(vr, d);
        }
      }
      m = m_new;
    }
    if (lane == 0) part_m[warp] = m, part_l[warp] = l;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + kWarp * i;
      if (d < head_dim) part_o[warp][d] = o[i];
    }
    __syncthreads();
    float m_all = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, part_m[w]);
    float weight[kWarps], l_all = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      weight[w] = part_l[w] > 0.0f ? expf(part_m[w] - m_all) : 0.0f;  // warps without keys count 0
      l_all += part_l[w] * weight[w];
    }
    float* orow = row_ptr<float>(out, lo, h + t * n_heads);
    for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += part_o[w][d] * weight[w];
      orow[d] = sum / l_all;
    }
  }
}

}  // namespace

cudaError_t launch_store_kv(const void* src, RowLayout ls, void* cache, RowLayout lc, bool cache_f16, int64_t head_dim,
                            int64_t n_kv_heads, int64_t n_tokens, int64_t pos, cudaStream_t stream) {
  const int64_t n_rows = n_kv_heads * n_tokens;
  if (head_dim == 0 || n_rows == 0) return cudaSuccess;
  const dim3 grid(unsigned(ceil_div(head_dim, 128)), unsigned(n_rows < kMaxGridY ? n_rows : kMaxGridY));
  if (cache_f16) {
    store_kv_kernel<true><<<grid, 128, 0, stream>>>(src, ls, cache, lc, head_dim, n_rows, pos * n_kv_heads);
  } else {
    store_kv_kernel<false><<<grid, 128, 0, stream>>>(src, ls, cache, lc, head_dim, n_rows, pos * n_kv_heads);
  }
  return cudaGetLastError();
}

cudaError_t launch_attention(const void* q, RowLayout lq, const void* k, RowLayout lk, const void* v, RowLayout lv,
                             bool cache_f16, void* out, RowLayout lo, int64_t head_dim, int64_t n_heads,
                             int64_t n_kv_heads, int64_t n_tokens, int64_t n_past, float scale, cudaStream_t stream) {
  if (n_heads == 0 || n_tokens == 0 || head_dim == 0) return cudaSuccess;
  if (head_dim > kMaxHeadDim || n_kv_heads == 0) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(n_heads), unsigned(n_tokens < kMaxGridY ? n_tokens : kMaxGridY));
  const int64_t group = n_heads / n_kv_heads;
  // 16-byte loads of key rows: rows of whole 16-byte words at 16-byte aligned addresses.
  const int64_t elem = cache_f16 ? 2 : 4;
  const bool vec = head_dim % 8 == 0 && (reinterpret_cast<uintptr_t>(k) & 15) == 0 && lk.nb1 % 16 == 0 &&
                   lk.nb2 % 16 == 0 && (head_dim * elem) % 16 == 0;
  if (cache_f16) {
    attention_kernel<true><<<grid, kWarps * kWarp, 0, stream>>>(q, lq, k, lk, v, lv, out, lo, head_dim, n_heads, group,
                                                                n_kv_heads, n_tokens, n_past, scale, vec);
  } else {
    attention_kernel<false><<<grid, kWarps * kWarp, 0, stream>>>(q, lq, k, lk, v, lv, out, lo, head_dim, n_heads, group,
                                                                 n_kv_heads, n_tokens, n_past, scale, vec);
  }
  return cudaGetLastError();
}

}  // namespace strata::cuda
