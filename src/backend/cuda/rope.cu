// rope: rotary position embedding in place (see cpu_ref/rope.cpp for the definition; the
// rotation itself is rope_turn, rope.cuh).
#include "backend/cuda/rope.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 64;
constexpr int64_t kMaxGridY = 65535;

// Rotates pair i of row r (n_rot / 2 = half pairs) by pos * theta_scale[i].
__device__ __forceinline__ void rotate_pair(float* r, int i, double pos, const double* theta_scale, int half,
                                            bool neox) {
  const int a = neox ? i : 2 * i;
  const int b = neox ? i + half : 2 * i + 1;
  const float2 turned = rope_turn(r[a], r[b], pos, theta_scale[i]);
  r[a] = turned.x;
  r[b] = turned.y;
}

// grid.x: heads; grid.y: tokens (strided); threads: pairs.
__global__ void rope_kernel(void* x, RowLayout lx, int64_t n_heads, int64_t n_tokens, const int32_t* positions,
                            const double* theta_scale, int n_rot, bool neox) {
  start_after_previous_kernel();
  const int64_t h = blockIdx.x;
  const int half = n_rot / 2;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    float* r = row_ptr<float>(x, lx, h + t * n_heads);
    const double pos = double(positions[t]);
    for (int i = threadIdx.x; i < half; i += blockDim.x) rotate_pair(r, i, pos, theta_scale, half, neox);
  }
}

template <bool kF16>
__device__ __forceinline__ void store_row(const float* src, void* dst, int64_t head_dim) {
  __syncthreads();  // the row's rotations are done
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    if constexpr (kF16) {
      static_cast<__half*>(dst)[d] = __float2half_rn(src[d]);
    } else {
      static_cast<float*>(dst)[d] = src[d];
    }
  }
}

// rope of q and k, then k and v stored in the caches, in one launch. grid.x: the q heads,
// then the k heads (rotated, then stored), then the v heads (stored); grid.y: tokens.
template <bool kF16>
__global__ void rope_store_kv_kernel(RopeStoreKv a, const int32_t* positions, const int32_t* pos_dev) {
  start_after_previous_kernel();
  const int64_t b = blockIdx.x;
  const int half = a.n_rot / 2;
  const int64_t first_row = (pos_dev != nullptr ? int64_t(*pos_dev) : a.pos) * a.n_kv_heads;
  for (int64_t t = blockIdx.y; t < a.n_tokens; t += gridDim.y) {
    const double pos = double(positions[t]);
    if (b < a.n_heads + a.n_kv_heads) {
      const bool is_k = b >= a.n_heads;
      const int64_t h = is_k ? b - a.n_heads : b;
      float* r = is_k ? row_ptr<float>(a.k, a.lk, h + t * a.n_kv_heads) : row_ptr<float>(a.q, a.lq, h + t * a.n_heads);
      for (int i = threadIdx.x; i < half; i += blockDim.x) rotate_pair(r, i, pos, a.theta_scale, half, a.neox);
      if (is_k) {
        store_row<kF16>(r, row_ptr<char>(a.k_cache, a.lkc, first_row + h + t * a.n_kv_heads), a.head_dim);
      }
    } else {
      const int64_t h = b - a.n_heads - a.n_kv_heads;
      store_row<kF16>(row_ptr<float>(a.v, a.lv, h + t * a.n_kv_heads),
                      row_ptr<char>(a.v_cache, a.lvc, first_row + h + t * a.n_kv_heads), a.head_dim);
    }
  }
}

}  // namespace

cudaError_t launch_rope(void* x, RowLayout lx, int64_t n_heads, int64_t n_tokens, const int32_t* positions,
                        const double* theta_scale, int n_rot, bool neox, cudaStream_t stream) {
  if (n_heads == 0 || n_tokens == 0) return cudaSuccess;
  const dim3 grid(unsigned(n_heads), unsigned(n_tokens < kMaxGridY ? n_tokens : kMaxGridY));
  return launch(rope_kernel, grid, kThreads, 0, stream, x, lx, n_heads, n_tokens, positions, theta_scale, n_rot, neox);
}

cudaError_t launch_rope_store_kv(const RopeStoreKv& a, const int32_t* positions, const int32_t* pos_dev,
                                 cudaStream_t stream) {
  if (a.n_tokens == 0 || a.head_dim == 0) return cudaSuccess;
  const dim3 grid(unsigned(a.n_heads + 2 * a.n_kv_heads), unsigned(a.n_tokens < kMaxGridY ? a.n_tokens : kMaxGridY));
  return launch(a.cache_f16 ? rope_store_kv_kernel<true> : rope_store_kv_kernel<false>, grid, kThreads, 0, stream, a,
                positions, pos_dev);
}

}  // namespace strata::cuda
