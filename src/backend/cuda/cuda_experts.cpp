// The mixture-of-experts ops of the CUDA backend (experts.cu): the ids stay on the device, so a
// recorded decode step routes on the GPU. Argument checks are those of op_checks.h, plus: every
// tensor on this device, the experts' weight of a type the kernel decodes, y, out and the
// matmul's output packed.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {
namespace {

void check_experts_type(std::string_view op, std::string_view role, const Tensor& t) {
  if (!cuda::experts_supported(weight_type(t))) {
    fail("{}: {} {}: type {} is not supported by the cuda backend's expert matmul", op, role, t.describe(),
         t.traits().name);
  }
}

void check_packed(std::string_view op, std::string_view role, const Tensor& t) {
  if (!t.is_contiguous()) fail("{}: {} {} must be packed on the cuda backend", op, role, t.describe());
}

}  // namespace

void CudaBackend::route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) {
  constexpr std::string_view op = "route_top_k";
  check_route_top_k_args(logits, ids, weights);
  check_in_device_memory(op, {{"logits", &logits}, {"ids", &ids}, {"weights", &weights}});
  cuda::ProfileScope scope(profiler_, stream_, "route_top_k");
  STRATA_CUDA_CHECK(cuda::launch_route_top_k(
      reinterpret_cast<const float*>(logits.data()), column_stride(op, "logits", logits), logits.ne(0),
      reinterpret_cast<int32_t*>(ids.mutable_data()), reinterpret_cast<float*>(weights.mutable_data()),
      column_stride(op, "weights", weights), ids.ne(0), ids.ne(1), stream_));
}

void CudaBackend::matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) {
  constexpr std::string_view op = "matmul_experts";
  check_matmul_experts_args(w, x, ids, out, check_experts_type);
  check_in_device_memory(op, {{"weight", &w}, {"x", &x}, {"ids", &ids}, {"out", &out}});
  check_packed(op, "weight", w);
  check_packed(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "matmul_experts");
  STRATA_CUDA_CHECK(cuda::launch_matmul_experts(weight_type(w), w.data(), w.nb(1), w.ne(0), w.ne(1), w.ne(2),
                                                reinterpret_cast<const float*>(x.data()), column_stride(op, "x", x),
                                                x.ne(1), reinterpret_cast<const int32_t*>(ids.data()), ids.ne(0),
                                                ids.ne(1), reinterpret_cast<float*>(out.mutable_data()), stream_));
}

void CudaBackend::sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) {
  constexpr std::string_view op = "sum_experts";
  check_sum_experts_args(y, weights, out);
  check_in_device_memory(op, {{"y", &y}, {"weights", &weights}, {"out", &out}});
  check_packed(op, "y", y);
  check_packed(op, "weights", weights);
  check_packed(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "sum_experts");
  STRATA_CUDA_CHECK(
      cuda::launch_sum_experts(reinterpret_cast<const float*>(y.data()), reinterpret_cast<const float*>(weights.data()),
                               reinterpret_cast<float*>(out.mutable_data()), y.ne(0), y.ne(1), y.ne(2), stream_));
}

void CudaBackend::read_i32(const Tensor& t, std::span<int32_t> out) {
  if (!t.is_device()) {
    Backend::read_i32(t, out);
    return;
  }
  check_i32_ids("read_i32", "t", t);
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_i32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  STRATA_CUDA_CHECK(cudaMemcpyAsync(out.data(), t.data(), out.size_bytes(), cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

}  // namespace strata
