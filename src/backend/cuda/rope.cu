// rope: rotary position embedding in place (see cpu_ref/rope.cpp for the definition).
// Angles are formed and turned into cos/sin in double, as the reference does, then the
// rotation itself is done in f32.
#include "backend/cuda/common.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 64;
constexpr int64_t kMaxGridY = 65535;

// grid.x: heads; grid.y: tokens (strided); threads: pairs.
__global__ void rope_kernel(void* x, RowLayout lx, int64_t n_heads, int64_t n_tokens, const int32_t* positions,
                            const double* theta_scale, int n_rot, bool neox) {
  start_after_previous_kernel();
  const int64_t h = blockIdx.x;
  const int half = n_rot / 2;
  for (int64_t t = blockIdx.y; t < n_tokens; t += gridDim.y) {
    float* r = row_ptr<float>(x, lx, h + t * n_heads);
    const double pos = double(positions[t]);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      double s, c;
      sincos(pos * theta_scale[i], &s, &c);
      const float cos_t = float(c), sin_t = float(s);
      const int a = neox ? i : 2 * i;
      const int b = neox ? i + half : 2 * i + 1;
      const float x0 = r[a], x1 = r[b];
      r[a] = __fsub_rn(__fmul_rn(x0, cos_t), __fmul_rn(x1, sin_t));
      r[b] = __fadd_rn(__fmul_rn(x0, sin_t), __fmul_rn(x1, cos_t));
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

}  // namespace strata::cuda
