// CpuBackend::matmul_fused: the fused matmul of backend.h in one pass over the weights.
//
//  1. The prologue (rms_norm or attention) writes x, as the plain op does (on the calling
//     thread when it is small, as the plain ops decide).
//  2. x is converted once into each activation form its jobs' kernels read, and every job
//     is computed in one run of the pool (matmul_groups): one task computes a block of rows
//     of one job, or of both jobs of the swiglu gate, and then applies the epilogue to the
//     outputs it has just written while they are in its cache: bias, rope and store of the
//     whole heads in its rows (blocks of such jobs start at head boundaries), the residual
//     add, silu(gate) * up.
// Each output element goes through the same arithmetic as the plain ops (matmul, add, rope,
// store_kv, swiglu on the same path), so the fused op equals the composition of the plain
// ops bit for bit, for any thread count.
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu_ref/checks.h"
#include "backend/op_checks.h"

namespace strata {
namespace {

// A job's epilogue as plain pointers: column c of out at out_cols[c].
struct JobEpilogue {
  std::vector<float*> out_cols;          // m columns of [n]
  std::vector<float> bias_f32;           // [n] the bias dequantized when it is not f32
  const float* bias = nullptr;           // [n] or nullptr
  bool rope = false;                     //
  uint8_t* store = nullptr;              // the cache's data, or nullptr
  size_t store_head = 0, store_pos = 0;  // the cache's bytes per head and per position
  bool store_f16 = false;
  std::vector<float*> residual_cols;  // m columns of [n], or empty
};

JobEpilogue epilogue_of(const MatmulJob& job) {
  JobEpilogue e;
  e.out_cols = cpu_ref::mutable_f32_rows(*job.out);
  if (job.bias != nullptr) {
    if (job.bias->dtype() == DType::F32 && job.bias->nb(0) == sizeof(float)) {
      e.bias = reinterpret_cast<const float*>(job.bias->data());
    } else {
      e.bias_f32.resize(size_t(job.bias->ne(0)));
      job.bias->dequantize_row(e.bias_f32.data(), 0);
      e.bias = e.bias_f32.data();
    }
  }
  e.rope = job.rope;
  if (job.store != nullptr) {
    e.store = job.store->mutable_data();
    e.store_head = job.store->nb(1);
    e.store_pos = job.store->nb(2);
    e.store_f16 = job.store->dtype() == DType::F16;
  }
  if (job.residual != nullptr) e.residual_cols = cpu_ref::mutable_f32_rows(*job.residual);
  return e;
}

}  // namespace

void CpuBackend::matmul_fused(const FusedMatmul& op) {
  if (op.gate == FusedMatmul::Gate::geglu) {  // the plain ops (geglu has no task epilogue yet)
    Backend::matmul_fused(op);
    return;
  }
  check_matmul_fused_args(op, cpu::check_dequantizable, cpu::check_dequantizable);
  Tensor& x = *op.x;
  switch (op.prologue) {
    case FusedMatmul::Prologue::none:
      break;
    case FusedMatmul::Prologue::rms_norm:
      cpu::rms_norm(ctx_, *op.norm_input, *op.norm_weight, op.norm_eps, x);
      break;
    case FusedMatmul::Prologue::attention: {
      Tensor att = x.reshape(op.q->ne());  // [head_dim, n_heads, m]
      cpu::attention(ctx_, *op.q, *op.k_cache, *op.v_cache, *op.kv, op.scale, op.window, att);
      break;
    }
  }
  if (op.jobs.empty()) return;

  // Groups: the gate's two jobs together (their rows side by side), every other job alone.
  const bool gated = op.gate == FusedMatmul::Gate::swiglu;
  std::vector<cpu::MatmulGroup> groups;
  std::vector<std::vector<size_t>> group_jobs;
  for (size_t j = 0; j < op.jobs.size(); ++j) {
    const MatmulJob& job = op.jobs[j];
    if (gated && j == 1) {
      groups[0].products.push_back({job.w, job.out, interleaved(*job.w)});
      if (job.rope || job.store != nullptr) groups[0].row_align = op.head_dim;
      group_jobs[0].push_back(j);
      continue;
    }
    groups.push_back({{{job.w, job.out, interleaved(*job.w)}}, job.rope || job.store != nullptr ? op.head_dim : 1});
    group_jobs.push_back({j});
  }
  std::vector<JobEpilogue> epilogues;
  bool any_epilogue = gated, any_rope = false;
  for (const MatmulJob& job : op.jobs) {
    epilogues.push_back(epilogue_of(job));
    any_epilogue = any_epilogue || job.bias != nullptr || job.rope || job.store != nullptr || job.residual != nullptr;
    any_rope = any_rope || job.rope;
  }
  const float* cos_sin = any_rope ? rope_table_.cos_sin(op.positions, *op.rope) : nullptr;  // [m][half] (cos, sin)
  const int64_t half = any_rope ? op.rope->n_rot / 2 : 0;
  const std::vector<float*> gated_cols = gated ? cpu_ref::mutable_f32_rows(*op.gated) : std::vector<float*>{};
  const cpu::OpKernels& k = *ctx_.k;

  // Heads [h0, h1) of column c of a job's output o: roped, then stored.
  auto heads = [&](const JobEpilogue& e, float* o, int64_t c, int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      float* head = o + h * op.head_dim;  // [head_dim]
      if (e.rope) cpu::rotate_head(head, cos_sin + c * half * 2, half, op.rope->neox);
      if (e.store == nullptr) continue;
      const int64_t row = op.kv->row(op.kv->seq[size_t(c)], op.kv->positions[size_t(c)]);  // column c's cache row
      uint8_t* dst = e.store + size_t(h) * e.store_head + size_t(row) * e.store_pos;
      if (e.store_f16) {
        k.f32_to_f16(head, reinterpret_cast<uint16_t*>(dst), op.head_dim);
      } else {
        std::memcpy(dst, head, size_t(op.head_dim) * sizeof(float));
      }
    }
  };
  auto epilogue = [&](const cpu::MatmulTask& t) {
    const int64_t rows = t.r1 - t.r0;
    for (const size_t j : group_jobs[t.group]) {
      const JobEpilogue& e = epilogues[j];
      for (int64_t c = t.c0; c < t.c1; ++c) {
        float* o = e.out_cols[size_t(c)];
        if (e.bias != nullptr) {
          for (int64_t r = t.r0; r < t.r1; ++r) o[r] = o[r] + e.bias[r];
        }
        if (e.rope || e.store != nullptr) heads(e, o, c, t.r0 / op.head_dim, t.r1 / op.head_dim);
        if (!e.residual_cols.empty()) {
          float* res = e.residual_cols[size_t(c)];
          for (int64_t r = t.r0; r < t.r1; ++r) res[r] = res[r] + o[r];
        }
      }
    }
    if (gated && t.group == 0) {
      for (int64_t c = t.c0; c < t.c1; ++c) {
        k.silu_mul(epilogues[0].out_cols[size_t(c)] + t.r0, epilogues[1].out_cols[size_t(c)] + t.r0,
                   gated_cols[size_t(c)] + t.r0, rows);
      }
    }
  };
  cpu::matmul_groups(groups, x, matmul_config(), pool_,
                     any_epilogue ? cpu::MatmulEpilogue(epilogue) : cpu::MatmulEpilogue());
}

}  // namespace strata
