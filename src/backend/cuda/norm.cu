// Row-wise reductions: rms_norm. One block per row (rows strided over the
// grid), except a single row's rms_norm (NormPath::Split); sums in f32 via warp shuffles;
// rms_norm reads 16-byte words where it can.
#include "backend/cuda/norm.cuh"
#include "backend/cuda/quantize_x.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

// How a row is normalized. Shared: rows of 16-byte words up to kMaxNormColumn floats take
// the arithmetic of norm.cuh, kNormRowThreads threads per row, which the matrix-vector
// kernels that normalize their own input repeat bit for bit. Split: a single row of 16-byte
// words (decode, where the latency is what counts), the same arithmetic by
// ceil(n / 4 / kNormRowThreads) blocks: each sums the squares of the whole row and normalizes
// one word per thread. SinglePass: longer rows of 16-byte words, up to kSinglePassThreads * 4 *
// kSinglePassWords floats, are read once into registers by kSinglePassThreads threads. Loop:
// the rest, element by element, kThreads threads. A single row takes Split rather than one
// block, since several blocks finish it sooner: decode waits for it (docs/benchmarks.md).
enum class NormPath { Shared, Split, SinglePass, Loop };
constexpr int kSinglePassThreads = 1024;
constexpr int kSinglePassWords = 2;

// q8.q != nullptr (one row, n % 32 == 0, path Split): out's q8 form is
// written too (every lane of a warp takes part, in whole blocks: quantize_x.cuh).
__global__ void __launch_bounds__(kSinglePassThreads)
    rms_norm_kernel(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo, int64_t n,
                    int64_t rows, NormPath path, XQ8 q8) {
  __shared__ float scratch[kWarp];
  const auto* w4 = reinterpret_cast<const float4*>(weight);
  float4 wv[kSinglePassWords];         // SinglePass: the thread's weight words, read before the wait
  if (path == NormPath::SinglePass) {  // (the weight is no kernel's output): off the critical path
#pragma unroll
    for (int j = 0; j < kSinglePassWords; ++j) {
      const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
      wv[j] = i < n / 4 ? w4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
  if (path == NormPath::Split) {  // one row: this block's word of it per thread
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const bool valid = i < n / 4;
    const float4 w = valid ? w4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    start_after_previous_kernel();
    const auto* x4 = static_cast<const float4*>(x);
    const float inv_rms = inverse_rms(row_sum_squares(x4, n / 4, scratch), n, eps);
    const float4 v = valid ? normalize4(x4[i], inv_rms, w) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (valid) static_cast<float4*>(out)[i] = v;
    if (q8.q != nullptr) quantize_word_q8(v, i, valid, q8);
    return;
  }
  start_after_previous_kernel();
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = row_ptr<float>(x, lx, r);
    float* orow = row_ptr<float>(out, lo, r);
    const auto* x4 = reinterpret_cast<const float4*>(xr);
    auto* o4 = reinterpret_cast<float4*>(orow);
    if (path == NormPath::Shared) {
      const float inv_rms = inverse_rms(row_sum_squares(x4, n / 4, scratch), n, eps);
      for (int64_t base = 0; base < n / 4; base += blockDim.x) {
        const int64_t i = base + threadIdx.x;
        const bool valid = i < n / 4;
        const float4 v = valid ? normalize4(x4[i], inv_rms, w4[i]) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (valid) o4[i] = v;
      }
    } else if (path == NormPath::SinglePass) {
      float4 v[kSinglePassWords];
      float sum_sq = 0.0f;
#pragma unroll
      for (int j = 0; j < kSinglePassWords; ++j) {
        const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
        v[j] = i < n / 4 ? x4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        sum_sq += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
      }
      const float inv_rms = inverse_rms(block_reduce<false>(sum_sq, scratch), n, eps);
#pragma unroll
      for (int j = 0; j < kSinglePassWords; ++j) {
        const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
        const bool valid = i < n / 4;
        const float4 o = valid ? normalize4(v[j], inv_rms, wv[j]) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (valid) o4[i] = o;
      }
    } else {
      float sum_sq = 0.0f;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum_sq += xr[i] * xr[i];
      const float inv_rms = inverse_rms(block_reduce<false>(sum_sq, scratch), n, eps);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) orow[i] = xr[i] * inv_rms * weight[i];
    }
  }
}

bool aligned16(const void* p, const RowLayout& l) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && l.nb1 % 16 == 0 && l.nb2 % 16 == 0 && l.nb3 % 16 == 0;
}

NormPath norm_path(const void* x, const RowLayout& lx, const float* weight, const void* out, const RowLayout& lo,
                   int64_t n, int64_t rows) {
  const bool words =
      n % 4 == 0 && aligned16(x, lx) && aligned16(out, lo) && (reinterpret_cast<uintptr_t>(weight) & 15) == 0;
  return !words                                                    ? NormPath::Loop
         : rows == 1                                               ? NormPath::Split
         : n <= kMaxNormColumn                                     ? NormPath::Shared
         : n <= int64_t(4) * kSinglePassThreads * kSinglePassWords ? NormPath::SinglePass
                                                                   : NormPath::Loop;
}

int threads_for(NormPath path) {
  return path == NormPath::Shared || path == NormPath::Split ? kNormRowThreads
         : path == NormPath::SinglePass                      ? kSinglePassThreads
                                                             : kThreads;
}

unsigned blocks_for(int64_t rows) {
  return unsigned(rows < kMaxBlocks ? rows : kMaxBlocks);
}

unsigned norm_blocks(NormPath path, int64_t n, int64_t rows) {
  return path == NormPath::Split ? unsigned(ceil_div(n / 4, kNormRowThreads)) : blocks_for(rows);
}

}  // namespace

cudaError_t launch_rms_norm(const void* x, RowLayout lx, const float* weight, float eps, void* out, RowLayout lo,
                            int64_t n, int64_t rows, cudaStream_t stream) {
  if (n == 0 || rows == 0) return cudaSuccess;
  const NormPath path = norm_path(x, lx, weight, out, lo, n, rows);
  return launch(rms_norm_kernel, norm_blocks(path, n, rows), threads_for(path), 0, stream, x, lx, weight, eps, out, lo,
                n, rows, path, XQ8{nullptr, nullptr});
}

cudaError_t launch_rms_norm_q8(const float* x, const float* weight, float eps, float* normed, int64_t n, XQ8 out,
                               cudaStream_t stream) {
  if (n % kQ8Block != 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const RowLayout row{1, 1, n * int64_t(sizeof(float)), 0, 0};
  const NormPath path = norm_path(x, row, weight, normed, row, n, 1);
  if (path == NormPath::Loop) {
    const cudaError_t status = launch_rms_norm(x, row, weight, eps, normed, row, n, 1, stream);
    return status != cudaSuccess ? status : launch_quantize_x_q8(normed, n, out, stream);
  }
  return launch(rms_norm_kernel, norm_blocks(path, n, 1), threads_for(path), 0, stream, x, row, weight, eps, normed,
                row, n, int64_t(1), path, out);
}

}  // namespace strata::cuda
