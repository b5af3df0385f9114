// matmul on the CUDA backend: out[i, j] = sum_l w[l, i] * x[l, j].
//
// Decode (m <= kMaxVecColumns columns): matrix-vector kernels that dequantize the weight in
// registers and accumulate in f32 (matmul_vec_*.cu); activations stay f32.
// Prefill (m > kMaxVecColumns): the weight is dequantized to f32, a tile of rows at a time,
// into a scratch buffer, and multiplied by cuBLAS (cublasGemmEx) on the tensor cores in TF32
// with f32 accumulation (CUBLAS_COMPUTE_32F_FAST_TF32): operands keep 10 mantissa bits, like
// f16, but f32's range, so no activation can overflow. f32 weights are used in place.
#include <algorithm>

#include "backend/cpu_ref/checks.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace strata {
namespace {

constexpr size_t kGemmScratchBytes = size_t(64) << 20;  // dequantized weight rows per GEMM tile

// The stride in floats between consecutive flat rows of an f32 tensor, which must be evenly
// spaced (true of every packed tensor and of row slices of one).
int64_t column_stride(std::string_view op, std::string_view role, const Tensor& t) {
  const int64_t s1 = int64_t(t.nb(1));
  const bool even = (t.ne(2) == 1 || int64_t(t.nb(2)) == s1 * t.ne(1)) &&
                    (t.ne(3) == 1 || int64_t(t.nb(3)) == int64_t(t.nb(2)) * t.ne(2));
  if (!even || s1 % int64_t(sizeof(float)) != 0) {
    fail("{}: {} {}: its rows are not evenly spaced, as the cuda matmul needs", op, role, t.describe());
  }
  return t.n_rows() > 1 ? s1 / int64_t(sizeof(float)) : t.ne(0);
}

}  // namespace

void CudaBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  constexpr std::string_view op = "matmul";
  if (!cuda::matvec_supported(w.dtype())) {
    fail("{}: weight {}: type {} is not supported by the cuda backend", op, w.describe(), w.traits().name);
  }
  cpu_ref::check_max_dims(op, "weight", w, 2);
  cpu_ref::check_f32(op, "x", x);
  cpu_ref::check_f32_output(op, "out", out);
  const int64_t k = w.ne(0), n = w.ne(1);
  if (x.ne(0) != k) {
    fail("{}: weight {} has k = {} elements per row but x {} has {}", op, w.describe(), k, x.describe(), x.ne(0));
  }
  cpu_ref::check_shape(op, "out", out, {n, x.ne(1), x.ne(2), x.ne(3)});
  cpu_ref::check_no_alias(op, "out", out, "x", x);
  cpu_ref::check_no_alias(op, "out", out, "weight", w);
  for (const auto& [role, t] : {std::pair<const char*, const Tensor*>{"weight", &w}, {"x", &x}, {"out", &out}}) {
    if (!t->is_device() && t->n_elements() > 0) fail("{}: {} {} is in host memory", op, role, t->describe());
  }
  if (w.nb(0) != w.traits().type_size) fail("{}: weight {} has strided elements", op, w.describe());
  const int64_t m = x.n_rows();
  if (n == 0 || m == 0) return;
  const int64_t x_stride = column_stride(op, "x", x);
  const int64_t out_stride = column_stride(op, "out", out);
  const auto* xd = reinterpret_cast<const float*>(x.data());
  auto* od = reinterpret_cast<float*>(out.mutable_data());
  if (k == 0) {
    fail("{}: weight {} has no columns", op, w.describe());
  }
  if (m <= cuda::kMaxVecColumns) {
    STRATA_CUDA_CHECK(
        cuda::launch_matvec(w.dtype(), w.data(), w.nb(1), k, n, xd, x_stride, od, out_stride, int(m), stream_));
    return;
  }
  gemm(w, xd, x_stride, od, out_stride, m);
}

// out (n x m, column stride out_stride) = W^T x via cuBLAS, W dequantized in tiles of rows.
// cuBLAS is column-major: W's rows are the columns of a k x n matrix (ld = row stride), so
// C = op_T(A) * B with A = W, B = x (k x m, ld = x_stride).
void CudaBackend::gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  const float one = 1.0f, zero = 0.0f;
  auto multiply = [&](const float* a, int64_t lda, int64_t rows, int64_t first) {
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_32F,
                                     int(lda), x, CUDA_R_32F, int(x_stride), &zero, out + first, CUDA_R_32F,
                                     int(out_stride), CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
  };
  if (std::max({k, n, m, x_stride, out_stride}) > int64_t(INT32_MAX)) fail("matmul: sizes exceed cuBLAS's int range");
  if (w.dtype() == DType::F32) {
    multiply(reinterpret_cast<const float*>(w.data()), int64_t(w.nb(1) / sizeof(float)), n, 0);
    return;
  }
  const int64_t tile = std::clamp<int64_t>(int64_t(kGemmScratchBytes / sizeof(float)) / k, 1, n);
  auto* buffer =
      static_cast<float*>(scratch(gemm_, gemm_capacity_, size_t(tile * k) * sizeof(float), "dequantized weight tile"));
  cuda::RowLayout layout = row_layout(w);
  for (int64_t first = 0; first < n; first += tile) {
    const int64_t rows = std::min(tile, n - first);
    const auto* src = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
    layout.ne1 = rows;
    STRATA_CUDA_CHECK(cuda::launch_rows_to_f32(w.dtype(), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    multiply(buffer, k, rows, first);
  }
}

}  // namespace strata
