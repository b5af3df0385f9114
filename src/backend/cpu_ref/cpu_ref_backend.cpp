#include "backend/cpu_ref/cpu_ref_backend.h"

#include <algorithm>

#include "backend/cpu_ref/ops.h"

namespace strata {

CpuRefBackend::CpuRefBackend(Accumulation accumulation, int n_threads)
    : accumulation_(accumulation), n_threads_(std::max(n_threads, 1)) {}

std::string_view CpuRefBackend::name() const {
  return accumulation_ == Accumulation::f64 ? "cpu_ref64" : "cpu_ref";
}

// ---- memory ----------------------------------------------------------------------------

Tensor CpuRefBackend::alloc(DType type, ShapeRef ne, std::string name) {
  return Tensor::empty(type, ne, std::move(name));
}

Tensor CpuRefBackend::upload(const Tensor& host) {
  return host;  // host memory is the device memory: no copy
}

Tensor CpuRefBackend::to_host_f32(const Tensor& t) {
  return t.to_f32();
}

// ---- ops -------------------------------------------------------------------------------

void CpuRefBackend::get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  cpu_ref::get_rows(table, ids, out);
}

void CpuRefBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  cpu_ref::rms_norm(x, weight, eps, out, accumulation_);
}

void CpuRefBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  cpu_ref::matmul(w, x, out, accumulation_, n_threads_);
}

void CpuRefBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  cpu_ref::add(a, b, out, accumulation_);
}

void CpuRefBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cpu_ref::swiglu(gate, up, out, accumulation_);
}

void CpuRefBackend::geglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cpu_ref::geglu(gate, up, out, accumulation_);
}

void CpuRefBackend::scale(const Tensor& x, float s, Tensor& out) {
  cpu_ref::scale(x, s, out);
}

void CpuRefBackend::rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) {
  cpu_ref::rope(x, positions, config, accumulation_);
}

void CpuRefBackend::store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  cpu_ref::store_kv(src, cache, kv);
}

void CpuRefBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                              float scale, int64_t window, Tensor& out) {
  cpu_ref::attention(q, k_cache, v_cache, kv, scale, window, out, accumulation_);
}

void CpuRefBackend::route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) {
  cpu_ref::route_top_k(logits, ids, weights, accumulation_);
}

void CpuRefBackend::matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) {
  cpu_ref::matmul_experts(w, x, ids, out, accumulation_, n_threads_);
}

void CpuRefBackend::sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) {
  cpu_ref::sum_experts(y, weights, out, accumulation_);
}

}  // namespace strata
