// The reference CPU backend: the oracle every faster backend is compared to (design
// principle 3). Plain loops that read like the formulas in backend.h; every sum (dot
// products, the norms' mean of squares, softmax denominators, attention's weighted sums)
// is accumulated in f32, or in f64 with Accumulation::f64 (what `strata verify` compares
// against until a second backend exists).
//
// Tensors live in host memory: alloc makes an owned zero-filled tensor, upload returns the
// (mmapped) host view itself, to_host_f32 makes an f32 copy. Activations and outputs are
// f32 with packed rows (nb0 == 4; rows may be strided); weights may be of any type whose
// reference dequantize exists in the type table.
#pragma once

#include <string_view>

#include "backend/backend.h"
#include "backend/cpu_ref/accumulation.h"

namespace strata {

class CpuRefBackend : public Backend {
public:
  // `n_threads` > 1 splits matmul over output rows; each output element is still computed
  // by one thread in the same order, so results do not depend on the thread count.
  explicit CpuRefBackend(Accumulation accumulation = Accumulation::f32, int n_threads = 1);

  std::string_view name() const override;  // "cpu_ref" or "cpu_ref64" (f64 accumulation)
  Accumulation accumulation() const { return accumulation_; }
  int n_threads() const { return n_threads_; }

  Tensor alloc(DType type, ShapeRef ne, std::string name) override;
  Tensor upload(const Tensor& host) override;
  Tensor to_host_f32(const Tensor& t) override;

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

private:
  Accumulation accumulation_;
  int n_threads_;
};

}  // namespace strata
