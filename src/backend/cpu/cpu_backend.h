// The fast CPU backend ("cpu"): the ops of backend.h on one ISA path (isa.h), threaded over
// one persistent thread pool. The reference it is tested against is cpu_ref (design
// principle 3): the same contracts and argument checks, results within each op's NMSE bar,
// and identical results for any thread count.
//
// Tensors live in host memory as with cpu_ref: alloc makes an owned zero-filled tensor,
// upload returns the (mmapped) host view itself (weights are not copied), to_host_f32 makes
// an f32 copy.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backend/backend.h"
#include "backend/cpu/isa.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "core/thread_pool.h"

namespace strata {

class CpuBackend : public Backend {
public:
  // n_threads >= 1; isa: a path this CPU has (cpu::available_isas(); fails naming them
  // otherwise); f32_activations: matmul multiplies f32 activations instead of 8-bit ones.
  // Otherwise 8-bit activations in two terms (x ~ q + q_residual, about 15 significant bits,
  // matmul.h MatmulConfig::two_term): as exact as f32 activations to the perplexity bar, the
  // kernels called twice per tile; one_term_q8: one 8-bit term (faster, ~1e-4 NMSE per matmul).
  CpuBackend(int n_threads, cpu::Isa isa, bool f32_activations = false, bool one_term_q8 = false);

  std::string_view name() const override { return "cpu"; }
  // The CPU's model name and the backend's settings: "AMD EPYC (avx512-vnni, 2 threads)".
  std::string device_name() const override;
  // The backend and its settings for the model line: "cpu (avx512-vnni, 2 threads)".
  std::string describe() const;

  cpu::Isa isa() const { return isa_; }
  bool f32_activations() const { return f32_activations_; }
  bool one_term_q8() const { return one_term_q8_ && !f32_activations_; }
  int n_threads() const { return pool_.n_threads(); }

  Tensor alloc(DType type, ShapeRef ne, std::string name) override;
  Tensor upload(const Tensor& host) override;
  Tensor to_host_f32(const Tensor& t) override;
  // With 8-bit activations, a matrix of a type with interleaved kernels on the backend's path
  // (cpu/interleaved.h) is copied into that layout, which matmul and matmul_fused then read.
  size_t prepare_matmul_weight(const Tensor& w) override;

  void get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void matmul(const Tensor& w, const Tensor& x, Tensor& out) override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void geglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void scale(const Tensor& x, float s, Tensor& out) override;
  void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config) override;
  void store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) override;
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv, float scale,
                 int64_t window, Tensor& out) override;
  void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) override;
  void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) override;
  void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) override;
  // The jobs in one run of the pool after the prologue, x converted once per activation
  // form, each epilogue applied by the task that computed its rows (fused.cpp).
  void matmul_fused(const FusedMatmul& op) override;

private:
  std::string settings() const;  // "avx512-vnni, 2 threads"
  cpu::MatmulConfig matmul_config() const { return {isa_, f32_activations_, !one_term_q8_}; }
  // The interleaved copy of w (the same tensor prepare_matmul_weight saw), or nullptr.
  const cpu::InterleavedWeight* interleaved(const Tensor& w) const;

  cpu::Isa isa_;
  bool f32_activations_;
  bool one_term_q8_;
  ThreadPool pool_;
  cpu::OpContext ctx_;
  cpu::RopeTable rope_table_;
  std::unordered_map<const void*, std::unique_ptr<cpu::InterleavedWeight>> interleaved_;  // by the source's data
};

}  // namespace strata
