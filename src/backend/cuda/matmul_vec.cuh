// The decode matmul (m <= kMaxVecColumns activation columns) for the quantized types:
// one warp per weight row; lane l takes the row's 32-element chunks l, l + 32, ...,
// dequantizes each in registers (quant_decode.cuh) and multiplies it with the same 32
// elements of every column, accumulating in f32; the warp then sums its lanes. Consecutive
// lanes read consecutive blocks, so a warp reads a contiguous stretch of the row. The loop
// body has no branch, so the unrolled chunks' loads are issued together. x must be 16-byte
// aligned with x_stride a multiple of 4 (the caller copies it otherwise).
#pragma once

#include "backend/cuda/quant_decode.cuh"

namespace strata::cuda {

inline constexpr int kVecRowsPerBlock = 4;  // warps (rows) per block

// x . v over one 32-element chunk of a column (x 16-byte aligned).
__device__ __forceinline__ float dot32(const float (&v)[32], const float* x) {
  float s = 0.0f;
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    const float4 xv = reinterpret_cast<const float4*>(x)[q];
    s += v[4 * q] * xv.x + v[4 * q + 1] * xv.y + v[4 * q + 2] * xv.z + v[4 * q + 3] * xv.w;
  }
  return s;
}

template <typename T, int M>
__global__ void __launch_bounds__(kVecRowsPerBlock* kWarp)
    matvec_quant_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t n_chunks, int64_t n,
                        const float* __restrict__ x, int64_t x_stride, float* __restrict__ out, int64_t out_stride,
                        int m) {
  start_after_previous_kernel();
  const int lane = threadIdx.x % kWarp;
  const int64_t row = int64_t(blockIdx.x) * kVecRowsPerBlock + threadIdx.x / kWarp;
  if (row >= n) return;
  const uint8_t* wr = w + row * row_bytes;
  float acc[M];
#pragma unroll
  for (int j = 0; j < M; ++j) acc[j] = 0.0f;
    // Unrolled so that the loads of several chunks are in flight at once: a row has only a
    // few chunks per lane, and the kernel is bound by memory latency unless they overlap.
#pragma unroll 4
  for (int64_t c = lane; c < n_chunks; c += kWarp) {
    float v[32];
    T::decode(wr, c, v);
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) acc[j] += dot32(v, x + j * x_stride + c * 32);
    }
  }
#pragma unroll
  for (int j = 0; j < M; ++j) acc[j] = warp_sum(acc[j]);
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < M; ++j) {
      if (j < m) out[j * out_stride + row] = acc[j];
    }
  }
}

template <typename T>
void launch_matvec_quant(const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x, int64_t x_stride,
                         float* out, int64_t out_stride, int m, cudaStream_t stream) {
  const dim3 grid(unsigned(ceil_div(n, kVecRowsPerBlock)));
  const dim3 block(kVecRowsPerBlock * kWarp);
  const auto* wb = static_cast<const uint8_t*>(w);
  const int64_t n_chunks = k / 32;
  if (m <= 1) {
    (void)launch(matvec_quant_kernel<T, 1>, grid, block, 0, stream, wb, row_bytes, n_chunks, n, x, x_stride, out,
                 out_stride, m);
  } else if (m <= 2) {
    (void)launch(matvec_quant_kernel<T, 2>, grid, block, 0, stream, wb, row_bytes, n_chunks, n, x, x_stride, out,
                 out_stride, m);
  } else if (m <= 4) {
    (void)launch(matvec_quant_kernel<T, 4>, grid, block, 0, stream, wb, row_bytes, n_chunks, n, x, x_stride, out,
                 out_stride, m);
  } else {
    (void)launch(matvec_quant_kernel<T, 8>, grid, block, 0, stream, wb, row_bytes, n_chunks, n, x, x_stride, out,
                 out_stride, m);
  }
}

}  // namespace strata::cuda
