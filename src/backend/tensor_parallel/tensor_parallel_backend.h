// A backend over K part backends (cpu_ref, cpu, or one CUDA device each) that splits a model
// Megatron-style (issue 21): the weights the model marks as split (Placement) are cut into K
// equal parts, one per part backend; every other tensor is whole on each. Ops run on every part:
//   - a matmul by a column-split weight makes K parts of its output (q, k, v; gate, up; logits);
//   - a matmul by a row-split weight multiplies each part of its input (attention output, the
//     feed-forward's activation) and sums the partial products over the parts with the
//     communicator's all-reduce, before anything is added to them (the residual);
//   - attention and store_kv work on the KV heads of each part (the cache is split by heads),
//     rope, norms of heads, bias adds and gated activations on the parts they are given;
//   - anything else (norms of the residual stream, its adds, embeddings) is whole on every part.
// A row-split weight whose parts would cut its quantized blocks stays whole (weight_bytes
// tells). An activation is held whole, as parts, or both: an op that needs it the other way converts
// it (whole -> parts: each part takes its range; parts -> whole: all-gather). to_host_f32 of a
// split tensor assembles its parts, so taps and `strata verify` see whole tensors.
//
// The parts of a split tensor are the ranges r * n / K .. of its split dim (shard_layout.h);
// one thread queues every part's ops, part 0 first.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "backend/tensor_parallel/communicator.h"

namespace strata {

class TensorParallelBackend : public Backend {
public:
  // `parts`: K >= 1 backends, one per device; `comm`: K ranks whose buffers those backends make.
  TensorParallelBackend(std::vector<std::unique_ptr<Backend>> parts, std::unique_ptr<Communicator> comm);
  ~TensorParallelBackend() override;

  std::string_view name() const override { return name_; }
  int n_parts() const { return int(parts_.size()); }
  Backend& part(int r) const { return *parts_.at(size_t(r)); }
  const Communicator& communicator() const { return *comm_; }

  // Bytes of the weights (upload_placed) each part holds: its ranges of split weights and its
  // copies of whole ones; the same on every part.
  struct WeightBytes {
    size_t split = 0;
    size_t whole = 0;
  };
  WeightBytes weight_bytes() const { return weight_bytes_; }

  Tensor alloc(DType type, ShapeRef ne, std::string name) override;
  Tensor alloc_placed(DType type, ShapeRef ne, std::string name, const Placement& placement) override;
  Tensor upload(const Tensor& host) override;
  Tensor upload_placed(const Tensor& host, const Placement& placement) override;
  Tensor to_host_f32(const Tensor& t) override;
  // Each part prepares its tensor of w (its range, or its whole copy); the bytes of all parts.
  size_t prepare_matmul_weight(const Tensor& w) override;
  void synchronize() override;
  std::string device_name() const override;
  std::optional<size_t> device_free_memory() const override;

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
  // On each part as its own fused op where the jobs' weights are all whole (everything whole),
  // all split by columns (x whole, outputs in parts: q/k/v with their stores, gate/up with the
  // gated pair), or one split by rows (x in parts, or the attention prologue on the parts' heads;
  // the products all-reduced, then the residual added); otherwise as the plain ops.
  void matmul_fused(const FusedMatmul& op) override;
  // The mixture-of-experts ops: whole on every part (tensor_parallel_experts.cpp).
  void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) override;
  void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) override;
  void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) override;
  void read_i32(const Tensor& t, std::span<int32_t> out) override;

  struct Held;  // what a tensor of this backend is on the parts (tensor_parallel_backend.cpp)

private:
  struct Operand;
  enum class Mode { whole, parts };

  Held& held(const Tensor& t, std::string_view op) const;
  Operand operand(const Tensor& t, std::string_view op) const;
  Tensor make(std::shared_ptr<Held> h);
  // Makes `h` valid whole / as parts, converting (all-gather / taking ranges) where needed.
  void ensure_whole(Held& h);
  void ensure_parts(Held& h);
  // Part r's tensor of operand `o` in `mode` (made valid that way first).
  Tensor on_part(Operand& o, Mode mode, int r);
  // Before an op writes `out` in `mode`: keeps the rest of a partly written tensor; after: marks it.
  void before_write(Operand& out, Mode mode);
  void after_write(Operand& out, Mode mode);
  // Parts when an input is held only as parts (or is split for good) and every operand maps
  // onto the parts (with dim 0 whole where `rows_whole`); else whole.
  Mode elementwise_mode(std::initializer_list<Operand*> inputs, std::initializer_list<Operand*> outputs,
                        bool rows_whole) const;
  enum class FusedSplit { whole, columns, rows };
  bool fused_on_parts(const FusedMatmul& op, FusedSplit split);
  Tensor& scratch(int r, int64_t n_elements);
  template <typename F>
  void each_part(F&& f);

  std::vector<std::unique_ptr<Backend>> parts_;
  std::unique_ptr<Communicator> comm_;
  std::string name_;
  std::unordered_map<const void*, std::weak_ptr<Held>> held_;
  size_t made_since_purge_ = 0;
  std::vector<Tensor> scratch_;  // per part: the all-gather's receive buffer
  WeightBytes weight_bytes_;
};

// K parts of `make_part()` over an in-process communicator: the CPU simulation of tensor
// parallelism (parts cpu_ref or cpu).
std::unique_ptr<TensorParallelBackend> make_in_process_tensor_parallel(
    int k, const std::function<std::unique_ptr<Backend>()>& make_part);

}  // namespace strata
