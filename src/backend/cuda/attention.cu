// The KV cache and attention on the device.
//
// store_kv: one thread per element, converting to f16 (round to nearest even) for f16 caches.
// attention: one block per (query head, token); the block's warps take the visible keys in
// turn (warp w: keys w, w + kWarps, ...), each keeping an online softmax (running max m,
// denominator l, weighted sum o) in f32; the warps' partial results are merged at the end.
// A lane holds head_dim / 32 elements of q and o (d = lane + 32 i).
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kWarps = 4;
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

template <bool kF16>
__global__ void __launch_bounds__(kWarps * kWarp) attention_kernel(const void* q, RowLayout lq, const void* k,
                                                                   RowLayout lk, const void* v, RowLayout lv,
                                                                   void* out, RowLayout lo, int64_t head_dim,
                                                                   int64_t n_heads, int64_t group, int64_t n_kv_heads,
                                                                   int64_t n_tokens, int64_t n_past, float scale) {
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_o[kWarps][kMaxHeadDim];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t h = blockIdx.x, kv_head = h / group;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    const float* qr = row_ptr<float>(q, lq, h + t * n_heads);
    float qv[kPerLane], o[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int64_t d = lane + kWarp * i;
      qv[i] = d < head_dim ? qr[d] : 0.0f;
      o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int64_t n_kv = n_past + t + 1;  // causal: positions 0..n_past+t
    for (int64_t s = warp; s < n_kv; s += kWarps) {
      const int64_t r = kv_head + s * n_kv_heads;
      const void* kr = row_ptr<char>(k, lk, r);
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int64_t d = lane + kWarp * i;
        if (d < head_dim) dot += qv[i] * cache_value<kF16>(kr, d);
      }
      const float score = warp_sum(dot) * scale;
      const float m_new = fmaxf(m, score);
      const float correction = expf(m - m_new), p = expf(score - m_new);
      l = l * correction + p;
      const void* vr = row_ptr<char>(v, lv, r);
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int64_t d = lane + kWarp * i;
        if (d < head_dim) o[i] = o[i] * correction + p * cache_value<kF16>(vr, d);
      }
      m = m_new;
    }
    __syncthreads();  // the previous token's merge has read the partial results
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
  if (cache_f16) {
    attention_kernel<true><<<grid, kWarps * kWarp, 0, stream>>>(q, lq, k, lk, v, lv, out, lo, head_dim, n_heads, group,
                                                                n_kv_heads, n_tokens, n_past, scale);
  } else {
    attention_kernel<false><<<grid, kWarps * kWarp, 0, stream>>>(q, lq, k, lk, v, lv, out, lo, head_dim, n_heads,
                                                                 group, n_kv_heads, n_tokens, n_past, scale);
  }
  return cudaGetLastError();
}

}  // namespace strata::cuda
