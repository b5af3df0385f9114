// TensorParallelBackend::matmul_fused: a fused matmul on each part as its own fused op where
// the split allows, else the plain ops it stands for.
#include "backend/op_checks.h"
#include "backend/tensor_parallel/tensor_parallel_held.h"
#include "core/error.h"

namespace strata {

// ---- the fused matmul ------------------------------------------------------------------------

namespace {

void any_type(std::string_view, std::string_view, const Tensor&) {}

}  // namespace

void TensorParallelBackend::matmul_fused(const FusedMatmul& op) {
  check_matmul_fused_args(op, any_type, any_type);
  bool whole = true, columns = true;
  for (const MatmulJob& job : op.jobs) {
    const Operand w = operand(*job.w, "matmul_fused");
    whole = whole && !w.h->split_for_good;
    columns = columns && w.h->split_for_good && w.whole_view && w.h->split_dim == 1;
  }
  bool rows = false;
  if (op.jobs.size() == 1) {
    const Operand w = operand(*op.jobs[0].w, "matmul_fused");
    rows = w.h->split_for_good && w.whole_view && w.h->split_dim == 0;
  }
  const FusedSplit split = whole ? FusedSplit::whole : columns ? FusedSplit::columns : FusedSplit::rows;
  if ((whole || columns || rows) && fused_on_parts(op, split)) return;
  Backend::matmul_fused(op);
}

bool TensorParallelBackend::fused_on_parts(const FusedMatmul& op, FusedSplit split) {
  using Prologue = FusedMatmul::Prologue;
  const Mode x_mode = split == FusedSplit::rows ? Mode::parts : Mode::whole;
  const Mode out_mode = split == FusedSplit::columns ? Mode::parts : Mode::whole;
  auto maybe = [&](const Tensor* t) { return t ? std::optional<Operand>(operand(*t, "matmul_fused")) : std::nullopt; };
  // In `mode`, an operand must map onto the parts with `dim` divided (or be whole).
  auto fits = [](const std::optional<Operand>& o, Mode mode, int dim) {
    if (!o) return true;
    if (mode == Mode::whole) return !o->h->split_for_good;
    return o->divided_dim == dim;
  };
  std::optional<Operand> x = maybe(op.x), norm_input = maybe(op.norm_input), norm_weight = maybe(op.norm_weight),
                         q = maybe(op.q), k_cache = maybe(op.k_cache), v_cache = maybe(op.v_cache),
                         gated = maybe(op.gated);
  if (!fits(x, x_mode, 0) || !fits(norm_weight, Mode::whole, 0) || !fits(gated, out_mode, 0)) return false;
  if (op.prologue == Prologue::rms_norm && (x_mode != Mode::whole || !fits(norm_input, Mode::whole, 0))) return false;
  if (op.prologue == Prologue::attention &&
      !(x_mode == Mode::whole
            ? fits(q, Mode::whole, 0) && fits(k_cache, Mode::whole, 0) && fits(v_cache, Mode::whole, 0)
            : fits(q, Mode::parts, 1) && fits(k_cache, Mode::parts, 1) && fits(v_cache, Mode::parts, 1))) {
    return false;
  }
  if (split == FusedSplit::rows &&
      (op.gate != FusedMatmul::Gate::none || op.jobs[0].bias != nullptr || op.jobs[0].rope ||
       op.jobs[0].store != nullptr || !op.jobs[0].out->is_contiguous())) {
    return false;
  }
  struct JobOperands {
    Operand w;
    std::optional<Operand> out, bias, store, residual;
  };
  std::vector<JobOperands> jobs;
  for (const MatmulJob& job : op.jobs) {
    JobOperands j{operand(*job.w, "matmul_fused"), maybe(job.out), maybe(job.bias), maybe(job.store),
                  maybe(job.residual)};
    const Mode store_mode = split == FusedSplit::columns ? Mode::parts : Mode::whole;
    if (!fits(j.out, out_mode, 0) || !fits(j.bias, out_mode, 0) || !fits(j.store, store_mode, 1)) return false;
    if (j.residual && (split == FusedSplit::columns || !fits(j.residual, Mode::whole, 0))) return false;
    jobs.push_back(std::move(j));
  }

  // Inputs in their modes; outputs prepared (what they do not cover kept).
  auto ensure = [&](std::optional<Operand>& o, Mode mode) {
    if (o) mode == Mode::whole ? ensure_whole(*o->h) : ensure_parts(*o->h);
  };
  if (op.prologue == Prologue::none) ensure(x, x_mode);
  ensure(norm_input, Mode::whole);
  ensure(norm_weight, Mode::whole);
  ensure(q, x_mode);
  ensure(k_cache, x_mode);
  ensure(v_cache, x_mode);
  for (JobOperands& j : jobs) {
    ensure(j.bias, out_mode);
    ensure(j.store, split == FusedSplit::columns ? Mode::parts : Mode::whole);  // written in part: kept
    if (split != FusedSplit::rows) ensure(j.residual, Mode::whole);             // read and written
  }
  if (op.prologue != Prologue::none) before_write(*x, x_mode);
  for (JobOperands& j : jobs) before_write(*j.out, out_mode);
  if (gated) before_write(*gated, out_mode);

  std::vector<Tensor> partial;  // rows: each part's product
  each_part([&](int r, Backend& p) {
    auto part_of = [&](std::optional<Operand>& o, Mode mode) { return o ? on_part(*o, mode, r) : Tensor(); };
    auto ptr = [](std::optional<Operand>& o, Tensor& t) -> Tensor* { return o ? &t : nullptr; };
    Tensor x_r = part_of(x, x_mode), ni_r = part_of(norm_input, Mode::whole), nw_r = part_of(norm_weight, Mode::whole);
    Tensor q_r = part_of(q, x_mode), k_r = part_of(k_cache, x_mode), v_r = part_of(v_cache, x_mode);
    Tensor gated_r = part_of(gated, out_mode);
    std::vector<Tensor> held(jobs.size() * 5);  // w, out, bias, store, residual of each job
    std::vector<MatmulJob> jobs_r;
    for (size_t i = 0; i < jobs.size(); ++i) {
      JobOperands& j = jobs[i];
      Tensor* t = &held[i * 5];
      t[0] = on_part(j.w, split == FusedSplit::whole ? Mode::whole : Mode::parts, r);
      t[1] = part_of(j.out, out_mode);
      t[2] = part_of(j.bias, out_mode);
      t[3] = part_of(j.store, split == FusedSplit::columns ? Mode::parts : Mode::whole);
      t[4] = split == FusedSplit::rows ? Tensor() : part_of(j.residual, Mode::whole);
      jobs_r.push_back({.w = &t[0],
                        .out = &t[1],
                        .bias = ptr(j.bias, t[2]),
                        .rope = op.jobs[i].rope,
                        .store = ptr(j.store, t[3]),
                        .residual = split == FusedSplit::rows ? nullptr : ptr(j.residual, t[4])});
    }
    FusedMatmul op_r = op;
    op_r.x = &x_r;
    op_r.norm_input = ptr(norm_input, ni_r);
    op_r.norm_weight = ptr(norm_weight, nw_r);
    op_r.q = ptr(q, q_r);
    op_r.k_cache = ptr(k_cache, k_r);
    op_r.v_cache = ptr(v_cache, v_r);
    op_r.jobs = jobs_r;
    op_r.gated = ptr(gated, gated_r);
    p.matmul_fused(op_r);
    if (split == FusedSplit::rows) partial.push_back(held[1]);
  });

  if (op.prologue != Prologue::none) after_write(*x, x_mode);
  for (JobOperands& j : jobs) {
    after_write(*j.out, out_mode);
    if (j.store && split != FusedSplit::columns) after_write(*j.store, Mode::whole);
    if (j.residual && split != FusedSplit::rows) after_write(*j.residual, Mode::whole);
  }
  if (gated) after_write(*gated, out_mode);
  if (split == FusedSplit::rows) {  // the partial products summed, then the residual added
    comm_->all_reduce_sum(partial);
    if (op.jobs[0].residual != nullptr) add(*op.jobs[0].residual, *op.jobs[0].out, *op.jobs[0].residual);
  }
  return true;
}

}  // namespace strata
