// Row-wise reductions: rms_norm and softmax. One block per row (rows strided over the
// grid), sums in f32 via warp shuffles.
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

__global__ void rms_norm_kernel(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo,
                                int64_t n, int64_t rows) {
  start_after_previous_kernel();
  __shared__ float scratch[kWarp];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = row_ptr<float>(x, lx, r);
    float sum_sq = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum_sq += xr[i] * xr[i];
    sum_sq = block_reduce<false>(sum_sq, scratch);
    const float inv_rms = 1.0f / sqrtf(sum_sq / float(n) + eps);
    float* orow = row_ptr<float>(out, lo, r);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) orow[i] = xr[i] * inv_rms * weight[i];
  }
}

__global__ void softmax_kernel(void* x, RowLayout lx, int64_t n, int64_t rows) {
  start_after_previous_kernel();
  __shared__ float scratch[kWarp];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* xr = row_ptr<float>(x, lx, r);
    float max = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) max = fmaxf(max, xr[i]);
    max = block_reduce<true>(max, scratch);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += expf(xr[i] - max);
    sum = block_reduce<false>(sum, scratch);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = expf(xr[i] - max) / sum;
  }
}

unsigned blocks_for(int64_t rows) {
  return unsigned(rows < kMaxBlocks ? rows : kMaxBlocks);
}

}  // namespace

cudaError_t launch_rms_norm(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo,
                            int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(rms_norm_kernel, blocks_for(rows), kThreads, 0, stream, x, lx, weight, eps, out, lo, n, rows);
}

cudaError_t launch_softmax(void* x, RowLayout lx, int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(softmax_kernel, blocks_for(rows), kThreads, 0, stream, x, lx, n, rows);
}

}  // namespace strata::cuda
