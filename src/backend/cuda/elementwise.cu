// Element-wise ops on f32 rows: add (with one-row broadcast), swiglu, geglu and scale. One thread per
// element of a row (grid.x), rows strided over grid.y.
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;

dim3 grid_for(int64_t n, int64_t rows) {
  return dim3(unsigned(ceil_div(n, kThreads)), unsigned(rows < kMaxGridY ? rows : kMaxGridY));
}

__global__ void add_kernel(const void* a, RowLayout la, const void* b, RowLayout lb, bool broadcast, void* out,
                           RowLayout lo, int64_t n, int64_t rows) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float bv = row_ptr<float>(b, lb, broadcast ? 0 : r)[i];
    row_ptr<float>(out, lo, r)[i] = row_ptr<float>(a, la, r)[i] + bv;
  }
}

__global__ void swiglu_kernel(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                              int64_t n, int64_t rows) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float g = row_ptr<float>(gate, lg, r)[i];
    const float silu = g / (1.0f + expf(-g));
    row_ptr<float>(out, lo, r)[i] = silu * row_ptr<float>(up, lu, r)[i];
  }
}

__global__ void geglu_kernel(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                             int64_t n, int64_t rows) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float g = row_ptr<float>(gate, lg, r)[i];
    const float gelu = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    row_ptr<float>(out, lo, r)[i] = gelu * row_ptr<float>(up, lu, r)[i];
  }
}

__global__ void scale_kernel(const void* x, RowLayout lx, float s, void* out, RowLayout lo, int64_t n, int64_t rows) {
  start_after_previous_kernel();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    row_ptr<float>(out, lo, r)[i] = row_ptr<float>(x, lx, r)[i] * s;
}

}  // namespace

cudaError_t launch_geglu(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                         int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(geglu_kernel, grid_for(n, rows), kThreads, 0, stream, gate, lg, up, lu, out, lo, n, rows);
}

cudaError_t launch_scale(const void* x, RowLayout lx, float s, void* out, RowLayout lo, int64_t n, int64_t rows,
                         cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(scale_kernel, grid_for(n, rows), kThreads, 0, stream, x, lx, s, out, lo, n, rows);
}

cudaError_t launch_add(const void* a, RowLayout la, const void* b, RowLayout lb, bool broadcast, void* out,
                       RowLayout lo, int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(add_kernel, grid_for(n, rows), kThreads, 0, stream, a, la, b, lb, broadcast, out, lo, n, rows);
}

cudaError_t launch_swiglu(const void* gate, RowLayout lg, const void* up, RowLayout lu, void* out, RowLayout lo,
                          int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  return launch(swiglu_kernel, grid_for(n, rows), kThreads, 0, stream, gate, lg, up, lu, out, lo, n, rows);
}

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, swiglu_kernel);
}

}  // namespace strata::cuda
