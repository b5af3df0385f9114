#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <fstream>

#include "backend/cpu/experts.h"
#include "backend/cpu/matmul.h"
#include "core/error.h"

namespace strata {
namespace {

// The ISA paths this CPU has, for messages: "portable, avx2, avx512, avx512-vnni".
std::string available_isa_names() {
  std::string names;
  for (cpu::Isa isa : cpu::available_isas()) names += (names.empty() ? "" : ", ") + std::string(cpu::isa_name(isa));
  return names;
}

cpu::Isa checked_isa(cpu::Isa isa) {
  if (isa > cpu::detected_isa()) {
    fail("CPU path '{}' is not supported by this CPU (it has: {})", cpu::isa_name(isa), available_isa_names());
  }
  return isa;
}

// "model name" of /proc/cpuinfo, or "CPU".
std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos && colon + 2 < line.size()) return line.substr(colon + 2);
  }
  return "CPU";
}

}  // namespace

CpuBackend::CpuBackend(int n_threads, cpu::Isa isa, bool f32_activations, bool one_term_q8)
    : isa_(checked_isa(isa)),
      f32_activations_(f32_activations),
      one_term_q8_(one_term_q8),
      pool_(std::max(n_threads, 1)),
      ctx_{isa_, &cpu::op_kernels(isa_), &pool_} {}

std::string CpuBackend::settings() const {
  const char* act = f32_activations_ ? ", f32 activations" : one_term_q8_ ? ", 8-bit activations" : "";
  return fmt::format("{}{}, {} thread{}", cpu::isa_name(isa_), act, n_threads(), n_threads() == 1 ? "" : "s");
}

std::string CpuBackend::device_name() const {
  static const std::string model = cpu_model_name();
  return fmt::format("{} ({})", model, settings());
}

std::string CpuBackend::describe() const {
  return fmt::format("{} ({})", name(), settings());
}

// ---- memory ----------------------------------------------------------------------------

Tensor CpuBackend::alloc(DType type, ShapeRef ne, std::string name) {
  return Tensor::empty(type, ne, std::move(name));
}

Tensor CpuBackend::upload(const Tensor& host) {
  return host;  // host memory is the device memory: no copy
}

size_t CpuBackend::prepare_matmul_weight(const Tensor& w) {
  if (f32_activations_ || interleaved(w) != nullptr) return 0;
  std::unique_ptr<cpu::InterleavedWeight> copy = cpu::interleave_weight(w, isa_, pool_);
  if (copy == nullptr) return 0;
  const size_t bytes = copy->data->size();
  interleaved_[w.data()] = std::move(copy);
  return bytes;
}

const cpu::InterleavedWeight* CpuBackend::interleaved(const Tensor& w) const {
  const auto it = interleaved_.find(w.data());
  if (it == interleaved_.end()) return nullptr;
  const Tensor& source = it->second->source;
  const bool same = source.dtype() == w.dtype() && source.ne() == w.ne() && source.nb() == w.nb();
  return same ? it->second.get() : nullptr;
}

Tensor CpuBackend::to_host_f32(const Tensor& t) {
  return t.to_f32();
}

// ---- ops -------------------------------------------------------------------------------

void CpuBackend::get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  cpu::get_rows(ctx_, table, ids, out);
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  cpu::rms_norm(ctx_, x, weight, eps, out);
}

void CpuBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  cpu::matmul(w, x, out, matmul_config(), pool_, interleaved(w));
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  cpu::add(ctx_, a, b, out);
}

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cpu::swiglu(ctx_, gate, up, out);
}

void CpuBackend::geglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  cpu::geglu(ctx_, gate, up, out);
}

void CpuBackend::scale(const Tensor& x, float s, Tensor& out) {
  cpu::scale(ctx_, x, s, out);
}

void CpuBackend::rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) {
  cpu::rope(ctx_, rope_table_, x, positions, config);
}

void CpuBackend::store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  cpu::store_kv(ctx_, src, cache, kv);
}

void CpuBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                           float scale, int64_t window, Tensor& out) {
  cpu::attention(ctx_, q, k_cache, v_cache, kv, scale, window, out);
}

void CpuBackend::route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) {
  cpu::route_top_k(ctx_, logits, ids, weights);
}

void CpuBackend::matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) {
  cpu::matmul_experts(w, x, ids, out, matmul_config(), pool_);
}

void CpuBackend::sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) {
  cpu::sum_experts(ctx_, y, weights, out);
}

}  // namespace strata
