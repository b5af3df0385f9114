// Row-wise reductions: rms_norm and softmax. One block per row (rows strided over the
// grid), sums in f32 via warp shuffles. rms_norm takes a whole row in one pass of 16-byte
// loads where it can: decode normalizes a single row, whose latency is what counts.
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// A row of up to kNormThreads * 4 * kNormVecs floats is read once, 16 bytes per load, into
// registers; longer or unaligned rows loop over their elements.
constexpr int kNormThreads = 1024;
constexpr int kNormVecs = 2;

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo, int64_t n,
                    int64_t rows, bool vec) {
  start_after_previous_kernel();
  __shared__ float scratch[kWarp];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = row_ptr<float>(x, lx, r);
    float* orow = row_ptr<float>(out, lo, r);
    if (vec) {
      float4 v[kNormVecs];
      float sum_sq = 0.0f;
#pragma unroll
      for (int j = 0; j < kNormVecs; ++j) {
        const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
        v[j] = i < n / 4 ? reinterpret_cast<const float4*>(xr)[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        sum_sq += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
      }
      sum_sq = block_reduce<false>(sum_sq, scratch);
      const float inv_rms = 1.0f / sqrtf(sum_sq / float(n) + eps);
#pragma unroll
      for (int j = 0; j < kNormVecs; ++j) {
        const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
        if (i >= n / 4) break;
        const float4 w = reinterpret_cast<const float4*>(weight)[i];
        reinterpret_cast<float4*>(orow)[i] = make_float4(v[j].x * inv_rms * w.x, v[j].y * inv_rms * w.y,
                                                         v[j].z * inv_rms * w.z, v[j].w * inv_rms * w.w);
      }
      continue;
    }
    float sum_sq = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum_sq += xr[i] * xr[i];
    sum_sq = block_reduce<false>(sum_sq, scratch);
    const float inv_rms = 1.0f / sqrtf(sum_sq / float(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) orow[i] = xr[i] * inv_rms * weight[i];
  }
}

bool aligned16(const void* p, const RowLayout& l) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && l.nb1 % 16 == 0 && l.nb2 % 16 == 0 && l.nb3 % 16 == 0;
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
  const bool vec = n % 4 == 0 && n <= int64_t(4) * kNormThreads * kNormVecs && aligned16(x, lx) &&
                   aligned16(out, lo) && (reinterpret_cast<uintptr_t>(weight) & 15) == 0;
  return launch(rms_norm_kernel, blocks_for(rows), kNormThreads, 0, stream, x, lx, weight, eps, out, lo, n, rows, vec);
}

cudaError_t launch_softmax(void* x, RowLayout lx, int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(softmax_kernel, blocks_for(rows), kThreads, 0, stream, x, lx, n, rows);
}

}  // namespace strata::cuda
