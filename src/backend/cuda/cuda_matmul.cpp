// matmul on the CUDA backend: out[i, j] = sum_l w[l, i] * x[l, j].
//
// Decode (m <= kMaxVecColumns columns): matrix-vector kernels that dequantize the weight in
// registers and accumulate in f32 (matmul_vec_*.cu); activations stay f32.
// Prefill (m > kMaxVecColumns): cuBLAS GEMM on the tensor cores with f32 accumulation
// (CUBLAS_COMPUTE_32F), f16 operands: the activations are rounded to f16 (saturating at
// +-65504, a range Llama-family activations stay within) and the weight is dequantized to
// f16, a tile of rows at a time, into a scratch buffer (F16 weights are used in place).
// f16 keeps 11 significant bits, as TF32 does; measured on an H100 this path is 1.1 to 1.5x
// faster than TF32 (docs/benchmarks.md). STRATA_CUDA_GEMM=tf32 selects the TF32 path
// instead (gemm(): f32 tiles, CUBLAS_COMPUTE_32F_FAST_TF32, f32's range for activations).
#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
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

void check_matvec_supported(std::string_view op, std::string_view role, const Tensor& t) {
  if (!cuda::matvec_supported(t.dtype())) {
    fail("{}: {} {}: type {} is not supported by the cuda backend", op, role, t.describe(), t.traits().name);
  }
}

}  // namespace

void CudaBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  constexpr std::string_view op = "matmul";
  check_matmul_args(w, x, out, check_matvec_supported);
  const int64_t k = w.ne(0), n = w.ne(1);
  for (const auto& [role, t] : {std::pair<const char*, const Tensor*>{"weight", &w}, {"x", &x}, {"out", &out}}) {
    if (!t->is_device() && t->n_elements() > 0) fail("{}: {} {} is in host memory", op, role, t->describe());
  }
  if (w.nb(0) != w.traits().type_size) fail("{}: weight {} has strided elements", op, w.describe());
  const int64_t m = x.n_rows();
  if (n == 0 || m == 0) return;
  int64_t x_stride = column_stride(op, "x", x);
  const int64_t out_stride = column_stride(op, "out", out);
  const auto* xd = reinterpret_cast<const float*>(x.data());
  auto* od = reinterpret_cast<float*>(out.mutable_data());
  if (k == 0) {
    fail("{}: weight {} has no columns", op, w.describe());
  }
  if (m <= cuda::kMaxVecColumns) {
    const bool aligned = (reinterpret_cast<uintptr_t>(xd) & 15) == 0 && (x_stride % 4 == 0 || m == 1);
    if (w.traits().is_quantized && !aligned) {  // the quantized kernels read x 16 bytes at a time
      auto* packed =
          static_cast<float*>(scratch(gemm_x_, gemm_x_capacity_, size_t(k * m) * sizeof(float), "aligned activations"));
      STRATA_CUDA_CHECK(cudaMemcpy2DAsync(packed, size_t(k) * sizeof(float), xd, size_t(x_stride) * sizeof(float),
                                          size_t(k) * sizeof(float), size_t(m), cudaMemcpyDeviceToDevice, stream_));
      xd = packed;
      x_stride = k;
    }
    cuda::ProfileScope scope(profiler_, stream_,
                             profiler_.enabled() ? fmt::format("matmul {} vec", w.traits().name) : std::string());
    STRATA_CUDA_CHECK(
        cuda::launch_matvec(w.dtype(), w.data(), w.nb(1), k, n, xd, x_stride, od, out_stride, int(m), stream_));
    return;
  }
  if (gemm_mode_ != GemmMode::tf32) {
    gemm_f16(w, xd, x_stride, od, out_stride, m);
  } else {
    gemm(w, xd, x_stride, od, out_stride, m);
  }
}

// out (n x m, column stride out_stride) = W^T x via cuBLAS, W dequantized in tiles of rows.
// cuBLAS is column-major: W's rows are the columns of a k x n matrix (ld = row stride), so
// C = op_T(A) * B with A = W, B = x (k x m, ld = x_stride).
void CudaBackend::gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  const float one = 1.0f, zero = 0.0f;
  auto multiply = [&](const float* a, int64_t lda, int64_t rows, int64_t first) {
    cuda::ProfileScope scope(profiler_, stream_, "gemm tf32 cublas");
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
    {
      cuda::ProfileScope scope(
          profiler_, stream_,
          profiler_.enabled() ? fmt::format("gemm dequant {} f32", w.traits().name) : std::string());
      STRATA_CUDA_CHECK(
          cuda::launch_rows_to_f32(w.dtype(), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    }
    multiply(buffer, k, rows, first);
  }
}

// As gemm(), with f16 operands: x and each weight tile rounded to f16 (saturating), products
// accumulated in f32 (CUBLAS_COMPUTE_32F).
void CudaBackend::gemm_f16(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride,
                           int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  if (std::max({k, n, m, x_stride, out_stride}) > int64_t(INT32_MAX)) fail("matmul: sizes exceed cuBLAS's int range");
  const float one = 1.0f, zero = 0.0f;
  void* x16 = scratch(gemm_x_, gemm_x_capacity_, size_t(k * m) * 2, "f16 activations");
  {
    cuda::ProfileScope scope(profiler_, stream_, "gemm x to f16");
    const cuda::RowLayout lx{m, 1, x_stride * int64_t(sizeof(float)), 0, 0};
    STRATA_CUDA_CHECK(cuda::launch_rows_to_f16(DType::F32, x, lx, sizeof(float), nullptr, k, m, x16, k, stream_));
  }
  const int64_t tile = std::clamp<int64_t>(int64_t(kGemmScratchBytes / 2) / k, 1, n);
  void* buffer = scratch(gemm_, gemm_capacity_, size_t(tile * k) * 2, "dequantized weight tile");
  cuda::RowLayout layout = row_layout(w);
  for (int64_t first = 0; first < n; first += tile) {
    const int64_t rows = std::min(tile, n - first);
    const void* a = buffer;
    int64_t lda = k;
    if (w.dtype() == DType::F16) {
      a = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
      lda = int64_t(w.nb(1) / 2);
    } else {
      cuda::ProfileScope scope(
          profiler_, stream_,
          profiler_.enabled() ? fmt::format("gemm dequant {} f16", w.traits().name) : std::string());
      layout.ne1 = rows;
      const auto* src = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
      STRATA_CUDA_CHECK(
          cuda::launch_rows_to_f16(w.dtype(), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    }
    cuda::ProfileScope scope(profiler_, stream_, "gemm f16 cublas");
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_16F,
                                     int(lda), x16, CUDA_R_16F, int(k), &zero, out + first, CUDA_R_32F, int(out_stride),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace strata
