// matmul on the CUDA backend: out[i, j] = sum_l w[l, i] * x[l, j].
//
// Decode (m <= kMaxVecColumns columns): matrix-vector kernels that dequantize the weight in
// registers and accumulate in f32 (matmul_vec_*.cu); activations stay f32. Except for one
// column (m = 1, every decode step) on large Q4_0, Q4_K and Q6_K matrices (takes_q8): there x
// is rounded to its q8 form (blocks of 32 int8 and a scale; rms_norm writes it in the same
// launch where the op begins with one) and the integer kernels take the products
// (matmul_vec_q8.cu). STRATA_CUDA_MATVEC=f32 keeps f32 activations there too.
// Prefill (m > kMaxVecColumns): cuBLAS GEMM on the tensor cores with f32 accumulation
// (CUBLAS_COMPUTE_32F), f16 operands: the activations are rounded to f16 (saturating at
// +-65504, a range Llama-family activations stay within) and the weight is dequantized to
// f16, a tile of rows at a time, into a scratch buffer (F16 weights are used in place).
// f16 keeps 11 significant bits, as TF32 does, and is the faster of the two on the tensor
// cores (docs/benchmarks.md). STRATA_CUDA_GEMM=tf32 selects the TF32 path
// instead (gemm(): f32 tiles, CUBLAS_COMPUTE_32F_FAST_TF32, f32's range for activations), and
// STRATA_CUDA_GEMM=f32 the same with plain f32 products (no tensor cores: slower, but no
// operand rounding, so that prefill computes what cpu_ref computes to f32 precision).
#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <utility>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {
namespace {

constexpr size_t kGemmScratchBytes = size_t(64) << 20;  // dequantized weight rows per GEMM tile

// Which weights the integer kernels take (takes_q8): matrices of 2^23 weights or more, and
// rows longer than 2048 (kMaxF32FoldedRow). Smaller matrices of shorter rows stay f32: there
// x's q8 form would cost a launch of its own where the op does not start with a norm, or
// where it does, the launch that the f32 kernels save by folding rms_norm into their own
// (VecNorm, rows up to 2048), more than the integer kernels save on so few weights. Per
// matrix, so that a fused op and the ops it stands for take the same kernels and give the
// same bits. 2^23 puts TinyLlama's gate, up, down (11.5 M weights) and output projection on
// the integer kernels and keeps its q, k, v and o (4 M weights and less) on f32: the fastest
// of the bounds measured (docs/benchmarks.md, "which matrices take the integer kernels").
constexpr int64_t kMinQ8Weights = int64_t(1) << 23;
// Rows longer than the f32 kernels fold rms_norm into (kMaxNormColumn, norm.cuh) take the
// integer kernels at any size: where a norm comes first, x's q8 form is made by the rms_norm
// launch that those rows need anyway, and matrices that share x share a launch (Llama-3-8B's
// k and v, 4 M weights each, join q's launch instead of taking launches of their own on the
// f32 kernels; docs/benchmarks.md).
constexpr int64_t kMaxF32FoldedRow = 2048;

}  // namespace

// The stride in floats between consecutive flat rows of an f32 tensor, if they are evenly
// spaced (true of every packed tensor and of row slices of one).
std::optional<int64_t> even_column_stride(const Tensor& t) {
  const int64_t s1 = int64_t(t.nb(1));
  const bool even = (t.ne(2) == 1 || int64_t(t.nb(2)) == s1 * t.ne(1)) &&
                    (t.ne(3) == 1 || int64_t(t.nb(3)) == int64_t(t.nb(2)) * t.ne(2));
  if (!even || s1 % int64_t(sizeof(float)) != 0) return std::nullopt;
  return t.n_rows() > 1 ? s1 / int64_t(sizeof(float)) : t.ne(0);
}

// The same, which must exist.
int64_t column_stride(std::string_view op, std::string_view role, const Tensor& t) {
  const std::optional<int64_t> stride = even_column_stride(t);
  if (!stride) fail("{}: {} {}: its rows are not evenly spaced, as the cuda matmul needs", op, role, t.describe());
  return *stride;
}

void check_in_device_memory(std::string_view op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  for (const auto& [role, t] : tensors) {
    if (!t->is_device() && t->n_elements() > 0) fail("{}: {} {} is in host memory", op, role, t->describe());
  }
}

// x as the fused decode ops hand it to the fast matrix-vector kernels: m <= kMaxVecColumns
// columns, 16-byte aligned, evenly spaced; nullopt where they take the ops instead (which
// pack x, or multiply it by the GEMM path, as matmul does).
std::optional<VecInput> vec_input(const Tensor& x) {
  const int64_t m = x.n_rows();
  if (m < 1 || m > cuda::kMaxVecColumns || x.ne(0) == 0) return std::nullopt;
  const std::optional<int64_t> stride = even_column_stride(x);
  const auto* xd = reinterpret_cast<const float*>(x.data());
  if (!stride || (reinterpret_cast<uintptr_t>(xd) & 15) != 0 || (m > 1 && *stride % 4 != 0)) return std::nullopt;
  return VecInput{xd, *stride, int(m)};
}

// The fused kernels' job for w and out (and acc), or nullopt where matmul would refuse w or
// out or not take the fast kernels.
std::optional<cuda::VecJob> vec_job(const Tensor& w, Tensor& out, Tensor* acc) {
  if (w.nb(0) != w.traits().type_size) return std::nullopt;
  const std::optional<int64_t> out_stride = even_column_stride(out);
  std::optional<int64_t> acc_stride = int64_t(0);
  if (acc != nullptr) acc_stride = even_column_stride(*acc);
  if (!out_stride || !acc_stride) return std::nullopt;
  return cuda::VecJob{w.data(),    w.nb(1),
                      w.ne(1),     reinterpret_cast<float*>(out.mutable_data()),
                      *out_stride, acc != nullptr ? reinterpret_cast<float*>(acc->mutable_data()) : nullptr,
                      *acc_stride};
}

void check_matvec_supported(std::string_view op, std::string_view role, const Tensor& t) {
  if (!cuda::matvec_supported(t.dtype())) {
    fail("{}: {} {}: type {} is not supported by the cuda backend", op, role, t.describe(), t.traits().name);
  }
}

// rms_norm folded into the first matrix-vector launch (cuda::VecNorm: single-column x): its
// CTAs normalize x themselves with the rms_norm kernel's arithmetic and CTA 0 writes normed;
// a second launch (another weight type among q, k, v) reads normed. Where the fast kernels
// do not take it: rms_norm, then the op.
std::optional<cuda::VecNorm> vec_norm(std::string_view op, const Tensor& x, const Tensor& weight, float eps,
                                      Tensor& normed) {
  check_rms_norm_args(x, weight, normed, check_packed_f32);
  check_in_device_memory(op, {{"x", &x}, {"norm weight", &weight}, {"normed", &normed}});
  if (x.n_rows() != 1) return std::nullopt;
  return cuda::VecNorm{reinterpret_cast<const float*>(weight.data()), eps,
                       reinterpret_cast<float*>(normed.mutable_data())};
}

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
    if (takes_q8(std::array{&w}, m)) {
      const cuda::XQ8 q8 = quantized_x(xd, k, nullptr);
      const cuda::VecJob job{w.data(), w.nb(1), n, od, out_stride, nullptr, 0};
      cuda::ProfileScope scope(profiler_, stream_,
                               profiler_.enabled() ? fmt::format("matmul {} q8", w.traits().name) : std::string());
      const cudaError_t status = cuda::launch_matvec_q8_jobs(weight_type(w), &job, 1, k, q8, stream_);
      if (status != cudaErrorNotSupported) {
        STRATA_CUDA_CHECK(status);
        return;
      }
    }
    cuda::ProfileScope scope(profiler_, stream_,
                             profiler_.enabled() ? fmt::format("matmul {} vec", w.traits().name) : std::string());
    STRATA_CUDA_CHECK(
        cuda::launch_matvec(weight_type(w), w.data(), w.nb(1), k, n, xd, x_stride, od, out_stride, int(m), stream_));
    return;
  }
  if (options_.gemm == CudaOptions::Gemm::f16) {
    gemm_f16(w, xd, x_stride, od, out_stride, m);
  } else {
    gemm(w, xd, x_stride, od, out_stride, m);
  }
}

bool CudaBackend::takes_q8(std::span<const Tensor* const> ws, int64_t m) const {
  if (options_.matvec != CudaOptions::Matvec::q8 || m != 1 || ws.empty()) return false;
  return std::ranges::all_of(ws, [](const Tensor* w) {
    const int64_t k = w->ne(0);
    return (k * w->ne(1) >= kMinQ8Weights || k > kMaxF32FoldedRow) && cuda::matvec_q8_supported(w->dtype(), k);
  });
}

cuda::XQ8 CudaBackend::quantized_x(const float* x, int64_t k, const cuda::VecNorm* norm) {
  const cuda::XQ8 q8 = cuda::x_q8_view(scratch(x_q8_, x_q8_capacity_, cuda::x_q8_bytes(k), "q8 activations"), k);
  cuda::ProfileScope scope(profiler_, stream_, norm != nullptr ? "rms_norm q8" : "quantize x q8");
  STRATA_CUDA_CHECK(norm != nullptr ? cuda::launch_rms_norm_q8(x, norm->weight, norm->eps, norm->normed, k, q8, stream_)
                                    : cuda::launch_quantize_x_q8(x, k, q8, stream_));
  return q8;
}

// out (n x m, column stride out_stride) = W^T x via cuBLAS, W dequantized in tiles of rows.
// cuBLAS is column-major: W's rows are the columns of a k x n matrix (ld = row stride), so
// C = op_T(A) * B with A = W, B = x (k x m, ld = x_stride).
void CudaBackend::gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  const float one = 1.0f, zero = 0.0f;
  const bool tf32 = options_.gemm == CudaOptions::Gemm::tf32;
  auto multiply = [&](const float* a, int64_t lda, int64_t rows, int64_t first) {
    cuda::ProfileScope scope(profiler_, stream_, tf32 ? "gemm tf32 cublas" : "gemm f32 cublas");
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_32F,
                                     int(lda), x, CUDA_R_32F, int(x_stride), &zero, out + first, CUDA_R_32F,
                                     int(out_stride), tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
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
          cuda::launch_rows_to_f32(weight_type(w), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
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
    STRATA_CUDA_CHECK(cuda::launch_rows_to_f16({DType::F32}, x, lx, sizeof(float), nullptr, k, m, x16, k, stream_));
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
          cuda::launch_rows_to_f16(weight_type(w), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    }
    cuda::ProfileScope scope(profiler_, stream_, "gemm f16 cublas");
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_16F,
                                     int(lda), x16, CUDA_R_16F, int(k), &zero, out + first, CUDA_R_32F, int(out_stride),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace strata
