// The rms_norm arithmetic shared by the rms_norm kernel (norm.cu) and the matrix-vector
// kernels that normalize their input themselves (matmul_vec_fast.cu), so that both give the
// same bits: a block of kNormRowThreads threads sums the squares of a row of 16-byte words in
// one fixed order, and each element becomes x * inv_rms * weight.
#pragma once

#include "backend/cuda/common.cuh"

namespace strata::cuda {

inline constexpr int kNormRowThreads = 128;
// The longest row normalized this way (and by the matrix-vector kernels; matmul_vec_fast.cu
// says why no longer).
inline constexpr int64_t kMaxNormColumn = 2048;

// sum_i x_i^2 over n4 float4 words at x (16-byte aligned), by the kNormRowThreads threads of
// the block (thread t takes words t, t + kNormRowThreads, ...); every thread gets the sum.
// `scratch` holds >= 32 floats.
__device__ __forceinline__ float row_sum_squares(const float4* x, int64_t n4, float* scratch) {
  float sum = 0.0f;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < n4; i += kNormRowThreads) {
    const float4 v = x[i];
    sum += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
  }
  return block_reduce<false>(sum, scratch);
}

__device__ __forceinline__ float inverse_rms(float sum_squares, int64_t n, float eps) {
  return 1.0f / sqrtf(sum_squares / float(n) + eps);
}

__device__ __forceinline__ float4 normalize4(float4 v, float inv_rms, float4 w) {
  return make_float4(v.x * inv_rms * w.x, v.y * inv_rms * w.y, v.z * inv_rms * w.z, v.w * inv_rms * w.w);
}

}  // namespace strata::cuda
