// Decode matmul for the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL), and
// the dispatcher of launch_matvec over the type families.
#include "backend/cuda/matmul_vec.cuh"

namespace strata::cuda {

cudaError_t launch_matvec_legacy(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                                 int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  const bool known = quant::dispatch_blocks32(type, [&](auto tag) {
    launch_matvec_quant<typename decltype(tag)::type>(w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  });
  if (!known) return cudaErrorInvalidValue;
  return cudaGetLastError();
}

bool matvec_supported(DType type) {
  return convert_supported(type);  // every type that dequantizes has a matvec kernel
}

cudaError_t launch_matvec(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                          int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  if (n == 0 || m == 0) return cudaSuccess;
  if (m > kMaxVecColumns) return cudaErrorInvalidValue;
  const cudaError_t fast = launch_matvec_fast(type, w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  if (fast != cudaErrorNotSupported) return fast;
  return launch_matvec_generic(type, w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
}

cudaError_t launch_matvec_generic(WeightType type, const void* w, size_t row_bytes, int64_t k, int64_t n, const float* x,
                                  int64_t x_stride, float* out, int64_t out_stride, int m, cudaStream_t stream) {
  if (n == 0 || m == 0) return cudaSuccess;
  if (m > kMaxVecColumns) return cudaErrorInvalidValue;
  if (type.type == DType::F32 || type.type == DType::F16 || type.type == DType::BF16) {
    return launch_matvec_plain(type.type, w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  }
  const cudaError_t status = launch_matvec_legacy(type, w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
  if (status != cudaErrorInvalidValue) return status;
  return launch_matvec_k(type, w, row_bytes, k, n, x, x_stride, out, out_stride, m, stream);
}

}  // namespace strata::cuda
