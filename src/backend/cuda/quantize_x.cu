// x to its q8 form (XQ8, kernels.h) for the integer decode kernels: one thread per 16-byte
// word, 8 lanes per block of 32 values (quantize_x.cuh).
#include "backend/cuda/quantize_x.cuh"

namespace strata::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) quantize_x_q8_kernel(const float* x, int64_t n_words, XQ8 out) {
  start_after_previous_kernel();
  const int64_t word = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const bool valid = word < n_words;
  const float4 v = valid ? reinterpret_cast<const float4*>(x)[word] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  quantize_word_q8(v, word, valid, out);
}

}  // namespace

size_t x_q8_bytes(int64_t k) {
  const size_t q_bytes = (size_t(k) + 15) / 16 * 16;
  return q_bytes + size_t(k / kQ8Block) * sizeof(float2);
}

XQ8 x_q8_view(void* buffer, int64_t k) {
  auto* q = static_cast<int8_t*>(buffer);
  return {q, reinterpret_cast<float2*>(q + (size_t(k) + 15) / 16 * 16)};
}

cudaError_t launch_quantize_x_q8(const float* x, int64_t k, XQ8 out, cudaStream_t stream) {
  if (k % kQ8Block != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0) return cudaErrorInvalidValue;
  if (k == 0) return cudaSuccess;
  const int64_t words = k / 4;
  return launch(quantize_x_q8_kernel, dim3(unsigned(ceil_div(words, kThreads))), dim3(kThreads), 0, stream, x, words,
                out);
}

}  // namespace strata::cuda
