// Decode matmul for the 256-element super-block types (Q2_K..Q6_K, Q8_K, IQ4_XS).
#include "backend/cuda/matmul_vec.cuh"

namespace strata::cuda {

cudaError_t launch_matvec_k(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                            int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  const bool known = quant::dispatch_blocks256(type, [&](auto tag) {
    launch_matvec_quant<typename decltype(tag)::type>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  });
  if (!known) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace strata::cuda
