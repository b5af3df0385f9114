// The default implementations of Backend's non-pure methods.
#include "backend/backend.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {

void Backend::read_f32(const Tensor& t, std::span<float> out) {
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_f32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  const Tensor host = to_host_f32(t);
  std::memcpy(out.data(), host.data(), out.size_bytes());
}

void Backend::read_i32(const Tensor& t, std::span<int32_t> out) {
  check_i32_ids("read_i32", "t", t);
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_i32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  if (t.is_device()) fail("read_i32: the {} backend does not read device tensor {}", name(), t.describe());
  std::memcpy(out.data(), t.data(), out.size_bytes());
}

void Backend::route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights) {
  (void)logits, (void)ids, (void)weights;
  fail("route_top_k: the {} backend has no mixture-of-experts ops", name());
}

void Backend::matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out) {
  (void)w, (void)x, (void)ids, (void)out;
  fail("matmul_experts: the {} backend has no mixture-of-experts ops", name());
}

void Backend::sum_experts(const Tensor& y, const Tensor& weights, Tensor& out) {
  (void)y, (void)weights, (void)out;
  fail("sum_experts: the {} backend has no mixture-of-experts ops", name());
}

namespace {

// Types are the ops' to check (each backend's own TypeCheck): the fused op checks the rest.
void any_type(std::string_view, std::string_view, const Tensor&) {}

}  // namespace

void Backend::matmul_fused(const FusedMatmul& op) {
  check_matmul_fused_args(op, any_type, any_type);
  Tensor& x = *op.x;
  switch (op.prologue) {
    case FusedMatmul::Prologue::none:
      break;
    case FusedMatmul::Prologue::rms_norm:
      rms_norm(*op.norm_input, *op.norm_weight, op.norm_eps, x);
      break;
    case FusedMatmul::Prologue::attention: {
      Tensor att = x.reshape(op.q->ne());  // [head_dim, n_heads, m]
      attention(*op.q, *op.k_cache, *op.v_cache, *op.kv, op.scale, op.window, att);
      break;
    }
  }
  for (const MatmulJob& job : op.jobs) {
    matmul(*job.w, x, *job.out);
    if (job.bias != nullptr) add(*job.out, *job.bias, *job.out);
    if (job.rope || job.store != nullptr) {
      Tensor h = split_heads(*job.out, op.head_dim);  // [head_dim, n_heads, m]
      if (job.rope) rope(h, op.positions, *op.rope);
      if (job.store != nullptr) store_kv(h, *job.store, *op.kv);
    }
    if (job.residual != nullptr) add(*job.residual, *job.out, *job.residual);
  }
  if (op.gate == FusedMatmul::Gate::swiglu) swiglu(*op.jobs[0].out, *op.jobs[1].out, *op.gated);
  if (op.gate == FusedMatmul::Gate::geglu) geglu(*op.jobs[0].out, *op.jobs[1].out, *op.gated);
}

DenseKvLayout::DenseKvLayout(int64_t pos, int64_t n_tokens, int64_t n_ctx)
    : positions_(size_t(std::max<int64_t>(n_tokens, 0))), seq_(positions_.size(), 0) {
  std::iota(positions_.begin(), positions_.end(), int32_t(pos));
  kv_ = {.positions = positions_,
         .seq = seq_,
         .block_table = {&block_, 1},
         .max_blocks = 1,
         .block_tokens = std::max<int64_t>(n_ctx, 1)};
}

Tensor split_heads(const Tensor& t, int64_t head_dim) {
  if (head_dim <= 0 || t.ne(0) % head_dim != 0 || t.ne(2) != 1 || t.ne(3) != 1) {
    fail("{} cannot be split into heads of {}", t.describe(), head_dim);
  }
  return t.reshape({head_dim, t.ne(0) / head_dim, t.ne(1)});
}

}  // namespace strata
