// matmul_fused on the CUDA backend. Decode (x of m <= kMaxVecColumns columns, aligned, on the
// fast kernels' types) takes these shapes of FusedMatmul in one launch of the matrix-vector
// kernels (matmul_vec_fast.cu, matmul_vec_q8.cu), the epilogue done by the launch:
//   rms_norm? + plain jobs               (the norm folded into the first launch)
//   rms_norm + jobs that rope / store    (q, k, v: VecRole; single column, rope pairs (2i, 2i+1))
//   rms_norm? + gate/up + swiglu         (gate, up and the gated output written by one launch)
//   attention? + one job with residual   (the attention kernel writes its output's q8 form)
// Every row's sum has the bits matmul gives it and the epilogues do the f32 operations of the
// add, swiglu, rope and store_kv kernels, so the results equal the ops'. Other shapes, and
// prompts, run the pieces (GEMMs, then the epilogues by their kernels; q/k/v's rope and
// stores in one rope_store_kv launch).
#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {
namespace {

constexpr std::string_view kOp = "matmul_fused";

bool plain(const MatmulJob& j) {
  return j.bias == nullptr && !j.rope && j.store == nullptr && j.residual == nullptr;
}

bool residual_only(const MatmulJob& j) {
  return j.bias == nullptr && !j.rope && j.store == nullptr && j.residual != nullptr;
}

void check_fused_in_device_memory(const FusedMatmul& f) {
  check_in_device_memory(kOp, {{"x", f.x}});
  for (const auto& [role, t] : {std::pair<const char*, const Tensor*>{"norm input", f.norm_input},
                                {"norm weight", f.norm_weight},
                                {"q", f.q},
                                {"k_cache", f.k_cache},
                                {"v_cache", f.v_cache},
                                {"gated", f.gated}}) {
    if (t != nullptr) check_in_device_memory(kOp, {{role, t}});
  }
  for (const MatmulJob& j : f.jobs) {
    check_in_device_memory(kOp, {{"weight", j.w}, {"out", j.out}});
    for (const auto& [role, t] :
         {std::pair<const char*, const Tensor*>{"bias", j.bias}, {"store", j.store}, {"residual", j.residual}}) {
      if (t != nullptr) check_in_device_memory(kOp, {{role, t}});
    }
  }
}

}  // namespace

void CudaBackend::matmul_fused(const FusedMatmul& f) {
  check_matmul_fused_args(f, check_matvec_supported, check_packed_f32);
  check_fused_in_device_memory(f);
  using Prologue = FusedMatmul::Prologue;
  const std::span<const MatmulJob> jobs = f.jobs;
  const NormArgs norm_args{f.norm_input, f.norm_weight, f.norm_eps};
  const NormArgs* norm = f.prologue == Prologue::rms_norm ? &norm_args : nullptr;
  if (f.prologue == Prologue::attention) {
    Tensor att = f.x->reshape(f.q->ne());  // [head_dim, n_heads, m]
    const std::optional<int64_t> n_past = dense_kv_start(*f.kv);
    if (n_past && f.gate == FusedMatmul::Gate::none && f.window == 0 && jobs.size() == 1 && residual_only(jobs[0])) {
      attention_matmul_add(*f.q, *f.k_cache, *f.v_cache, *n_past, f.scale, att, *jobs[0].w, *jobs[0].out,
                           *jobs[0].residual);
      return;
    }
    attention(*f.q, *f.k_cache, *f.v_cache, *f.kv, f.scale, f.window, att);
    FusedMatmul rest = f;
    rest.prologue = Prologue::none;
    matmul_fused(rest);
    return;
  }
  if (f.gate == FusedMatmul::Gate::geglu) {  // the plain ops (no fused geglu launch yet)
    Backend::matmul_fused(f);
    return;
  }
  if (f.gate == FusedMatmul::Gate::swiglu) {
    if (jobs.size() == 2 && plain(jobs[0]) && plain(jobs[1])) {
      matmul_swiglu(*jobs[0].w, *jobs[1].w, *f.x, *jobs[0].out, *jobs[1].out, *f.gated, norm);
    } else {
      Backend::matmul_fused(f);
    }
    return;
  }
  if (jobs.size() == 1 && residual_only(jobs[0])) {
    if (norm != nullptr) rms_norm(*norm->input, *norm->weight, norm->eps, *f.x);
    matmul_add(*jobs[0].w, *f.x, *jobs[0].out, *jobs[0].residual);
    return;
  }
  if (std::ranges::any_of(jobs, [](const MatmulJob& j) { return j.residual != nullptr; })) {
    Backend::matmul_fused(f);
    return;
  }
  if (std::ranges::all_of(jobs, plain)) {
    matmul_batch(*f.x, jobs, norm);
    return;
  }
  const bool bias = std::ranges::any_of(jobs, [](const MatmulJob& j) { return j.bias != nullptr; });
  if (!bias && norm != nullptr && norm_rope_store(f)) return;
  std::vector<MatmulJob> products;  // the jobs without their epilogues
  for (const MatmulJob& j : jobs) products.push_back(MatmulJob{.w = j.w, .out = j.out});
  matmul_batch(*f.x, products, norm);
  job_epilogues(f);
}

void CudaBackend::matmul_add(const Tensor& w, const Tensor& x, Tensor& product, Tensor& acc) {
  const std::optional<VecInput> in = vec_input(x);
  const std::optional<cuda::VecJob> job = vec_job(w, product, &acc);
  const cuda::WeightType type = weight_type(w);
  if (in && job) {
    const bool q8 = takes_q8(std::array{&w}, in->m);
    const cuda::XQ8 xq = q8 ? quantized_x(in->x, w.ne(0), nullptr) : cuda::XQ8{};
    cuda::ProfileScope scope(
        profiler_, stream_,
        profiler_.enabled() ? fmt::format("matmul_add {} {}", w.traits().name, q8 ? "q8" : "vec") : std::string());
    const cudaError_t status =
        q8 ? cuda::launch_matvec_q8_jobs(type, &*job, 1, w.ne(0), xq, stream_)
           : cuda::launch_matvec_fast_jobs(type, &*job, 1, w.ne(0), in->x, in->stride, in->m, stream_);
    if (status != cudaErrorNotSupported) {
      STRATA_CUDA_CHECK(status);
      return;
    }
  }
  matmul(w, x, product);
  add(acc, product, acc);
}

void CudaBackend::attention_matmul_add(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                       float scale, Tensor& out, const Tensor& w, Tensor& product, Tensor& acc) {
  const Tensor x = out.reshape({out.ne(0) * out.ne(1), out.ne(2)});  // [head_dim * n_heads, m]
  check_attention(q, k_cache, v_cache, DenseKvLayout(n_past, q.ne(2), k_cache.ne(2)), 0, out);
  if (q.ne(2) == 1 && takes_q8(std::array{&w}, 1)) {
    const int64_t k = x.ne(0);
    const std::optional<cuda::VecJob> job = vec_job(w, product, &acc);
    const cuda::XQ8 q8 = cuda::x_q8_view(scratch(x_q8_, x_q8_capacity_, cuda::x_q8_bytes(k), "q8 activations"), k);
    const cudaError_t attended =
        job ? attention_decode(q, k_cache, v_cache, n_past, scale, out, q8) : cudaErrorNotSupported;
    if (attended != cudaErrorNotSupported) {  // out and its q8 form written
      STRATA_CUDA_CHECK(attended);
      cuda::ProfileScope scope(profiler_, stream_,
                               profiler_.enabled() ? fmt::format("matmul_add {} q8", w.traits().name) : std::string());
      const cudaError_t status = cuda::launch_matvec_q8_jobs(weight_type(w), &*job, 1, k, q8, stream_);
      if (status != cudaErrorNotSupported) {
        STRATA_CUDA_CHECK(status);
        return;
      }
      matmul_add(w, x, product, acc);
      return;
    }
  }
  attention_dense(q, k_cache, v_cache, n_past, scale, 0, out);
  matmul_add(w, x, product, acc);
}

void CudaBackend::matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, Tensor& x, Tensor& gate, Tensor& up,
                                Tensor& out, const NormArgs* norm) {
  if (norm != nullptr) {
    const std::optional<cuda::VecNorm> folded = vec_norm(kOp, *norm->input, *norm->weight, norm->eps, x);
    if (folded && swiglu_launch(kOp, w_gate, w_up, *norm->input, gate, up, out, &*folded)) return;
    rms_norm(*norm->input, *norm->weight, norm->eps, x);
  }
  if (swiglu_launch(kOp, w_gate, w_up, x, gate, up, out, nullptr)) return;
  matmul(w_gate, x, gate);
  matmul(w_up, x, up);
  swiglu(gate, up, out);
}

void CudaBackend::matmul_batch(Tensor& x, std::span<const MatmulJob> jobs, const NormArgs* norm) {
  if (norm != nullptr) {
    norm_batch(kOp, *norm->input, *norm->weight, norm->eps, x, jobs, nullptr);
    return;
  }
  const std::optional<VecInput> in = vec_input(x);
  if (!in) {
    for (const MatmulJob& j : jobs) matmul(*j.w, x, *j.out);
    return;
  }
  batch_groups(x, jobs, in->x, in->stride, in->m, std::nullopt, nullptr, nullptr);
}

bool CudaBackend::norm_rope_store(const FusedMatmul& f) {
  std::vector<cuda::VecRole> roles;
  Tensor* k_cache = nullptr;  // the cache of the jobs that rope and store
  Tensor* v_cache = nullptr;  // the cache of the jobs that store only
  for (const MatmulJob& j : f.jobs) {
    Tensor*& cache = j.rope ? k_cache : v_cache;
    if (j.store != nullptr && cache != nullptr && cache != j.store) return false;
    if (j.store != nullptr) cache = j.store;
    roles.push_back(j.rope ? (j.store ? cuda::VecRole::rope_store_k : cuda::VecRole::rope)
                           : (j.store ? cuda::VecRole::store_v : cuda::VecRole::plain));
  }
  const RopeConfig* config = f.rope;
  const int64_t head_dim = f.head_dim;
  const bool caches = k_cache != nullptr && v_cache != nullptr && k_cache->dtype() == v_cache->dtype() &&
                      (k_cache->dtype() == DType::F16 || k_cache->dtype() == DType::F32);
  const std::optional<int64_t> dense = f.kv != nullptr ? dense_kv_start(*f.kv) : std::nullopt;
  if (!fused_rope_ || f.x->n_rows() != 1 || config == nullptr || config->neox || head_dim % 2 != 0 ||
      config->n_rot % 2 != 0 || !caches || !dense) {
    return false;
  }
  const int64_t kv_pos = *dense;
  const int32_t p32 = int32_t(kv_pos);
  const cuda::VecRope args{.positions = capture_.active ? step_value(kOp, f.positions, 1)
                                                        : upload_ints(positions_, f.positions, "positions"),
                           .pos_dev = capture_.active ? step_value(kOp, {&p32, 1}, 1) : nullptr,
                           .pos = kv_pos,
                           .theta_scale = rope_table(*config),
                           .n_rot = config->n_rot,
                           .head_dim = head_dim,
                           .k_cache = k_cache->mutable_data(),
                           .lkc = row_layout(*k_cache),
                           .v_cache = v_cache->mutable_data(),
                           .lvc = row_layout(*v_cache),
                           .cache_f16 = k_cache->dtype() == DType::F16};
  const JobRoles job_roles{roles, args, f.positions, config, k_cache, v_cache, kv_pos};
  kv_stored_from_ = kv_pos;  // row kv_pos (the ops' store_kv, where a job falls back to them, says the same)
  norm_batch(kOp, *f.norm_input, *f.norm_weight, f.norm_eps, *f.x, f.jobs, &job_roles);
  return true;
}

void CudaBackend::job_epilogues(const FusedMatmul& f) {
  const std::span<const MatmulJob> jobs = f.jobs;
  for (const MatmulJob& j : jobs) {
    if (j.bias != nullptr) add(*j.out, *j.bias, *j.out);
  }
  const bool qkv = jobs.size() == 3 && jobs[0].rope && jobs[0].store == nullptr && jobs[1].rope &&
                   jobs[1].store != nullptr && !jobs[2].rope && jobs[2].store != nullptr &&
                   jobs[1].store->dtype() == jobs[2].store->dtype();
  const std::optional<int64_t> dense = f.kv != nullptr ? dense_kv_start(*f.kv) : std::nullopt;
  if (qkv && dense) {
    Tensor q = split_heads(*jobs[0].out, f.head_dim), k = split_heads(*jobs[1].out, f.head_dim);
    rope_store_kv(q, k, split_heads(*jobs[2].out, f.head_dim), f.positions, *f.rope, *jobs[1].store, *jobs[2].store,
                  *dense);
    return;
  }
  for (const MatmulJob& j : jobs) {
    if (!j.rope && j.store == nullptr) continue;
    Tensor h = split_heads(*j.out, f.head_dim);  // [head_dim, n_heads, m]
    if (j.rope) rope(h, f.positions, *f.rope);
    if (j.store != nullptr) store_kv(h, *j.store, *f.kv);
  }
}

// The jobs of one weight type and kernel family share a launch (kMaxVecJobs at a time), on
// the integer kernels where takes_q8 says so (x's q8 form: q8, or made here once) and on the
// f32 ones otherwise; Q4_K_M files mix Q4_K and Q6_K among q, k and v, which share one launch
// on the integer kernels (launch_matvec_q8_jobs_pair, where Q4_K comes first). A group the fast kernels do not take
// runs matmul job by job (xd == nullptr: every group). norm: x (normed) is still to be written, xd is rms_norm's input;
// the first launch normalizes (the q8 form's rounding, or the f32 kernels' fold) where it can, else rms_norm runs
// first. roles: the jobs' rope and KV store.
void CudaBackend::batch_groups(const Tensor& x, std::span<const MatmulJob> jobs, const float* xd, int64_t x_stride,
                               int m, std::optional<cuda::XQ8> q8, const PendingNorm* norm, const JobRoles* roles) {
  const int64_t k = x.ne(0);
  bool pending = norm != nullptr;
  auto normalized = [&] {  // from now on the launches read normed
    pending = false;
    xd = reinterpret_cast<const float*>(x.data());
    x_stride = k;
  };
  auto normalize = [&] {
    if (!pending) return;
    rms_norm(*norm->x, *norm->weight, norm->eps, *norm->normed);
    normalized();
  };
  const cuda::VecRope* rope = roles != nullptr ? &roles->args : nullptr;
  std::vector<bool> done(jobs.size(), false);
  for (size_t first = 0; first < jobs.size(); ++first) {
    if (done[first]) continue;
    const cuda::WeightType type = weight_type(*jobs[first].w);
    const bool integer = takes_q8(std::array{jobs[first].w}, m);
    std::vector<size_t> group;  // the jobs of this type and kernel family, kMaxVecJobs at most
    for (size_t i = first; i < jobs.size() && group.size() < size_t(cuda::kMaxVecJobs); ++i) {
      if (!done[i] && weight_type(*jobs[i].w) == type && takes_q8(std::array{jobs[i].w}, m) == integer)
        group.push_back(i);
    }
    // On the integer kernels, the jobs of a type that shares the launch (Q4_K_M's Q6_K v) follow.
    const size_t n_first = group.size();
    std::optional<cuda::WeightType> partner;
    for (size_t i = first + 1; integer && i < jobs.size() && group.size() < size_t(cuda::kMaxVecJobs); ++i) {
      const cuda::WeightType other = weight_type(*jobs[i].w);
      if (!done[i] && other != type && (!partner || other == *partner) && takes_q8(std::array{jobs[i].w}, m) &&
          cuda::matvec_q8_pair_supported(type, other)) {
        group.push_back(i);
        partner = other;
      }
    }
    std::vector<cuda::VecJob> launch;
    for (size_t i : group) {
      done[i] = true;
      if (std::optional<cuda::VecJob> job = vec_job(*jobs[i].w, *jobs[i].out, nullptr)) {
        if (roles != nullptr) job->role = roles->role[i];
        launch.push_back(*job);
      }
    }
    cudaError_t status = cudaErrorNotSupported;
    if (xd != nullptr && launch.size() == group.size()) {
      if (integer && !q8) {
        q8 = quantized_x(xd, k, pending ? &norm->args : nullptr);
        if (pending) normalized();
      }
      const int n = int(launch.size());
      auto go = [&](const cuda::VecNorm* fold) {
        cuda::ProfileScope scope(profiler_, stream_,
                                 profiler_.enabled()
                                     ? fmt::format("matmul_batch {}{} {}", type_traits(type.type).name,
                                                   partner ? fmt::format("+{}", type_traits(partner->type).name) : "",
                                                   integer ? "q8" : "vec")
                                     : std::string());
        if (partner) {
          return cuda::launch_matvec_q8_jobs_pair(type, *partner, launch.data(), int(n_first), n, k, *q8, stream_,
                                                  rope);
        }
        return integer ? cuda::launch_matvec_q8_jobs(type, launch.data(), n, k, *q8, stream_, rope)
                       : cuda::launch_matvec_fast_jobs(type, launch.data(), n, k, xd, x_stride, m, stream_, fold, rope);
      };
      if (pending && !integer) {
        status = go(&norm->args);
        if (status == cudaSuccess) normalized();
      }
      if (status == cudaErrorNotSupported) {
        normalize();
        status = go(nullptr);
      }
    }
    if (status != cudaErrorNotSupported) {
      STRATA_CUDA_CHECK(status);
      continue;
    }
    normalize();
    for (size_t i : group) {
      matmul(*jobs[i].w, x, *jobs[i].out);
      if (roles != nullptr) apply_role(*roles, roles->role[i], *jobs[i].out);
    }
  }
  normalize();  // no jobs
}

// A role's rope and KV store by the ops (rope_store_kv's parts) for a job done by matmul.
void CudaBackend::apply_role(const JobRoles& roles, cuda::VecRole role, const Tensor& out) {
  if (role == cuda::VecRole::plain) return;
  Tensor rows = split_heads(out, roles.args.head_dim);  // [head_dim, heads, 1]
  if (role != cuda::VecRole::store_v) rope(rows, roles.positions, *roles.config);
  if (role != cuda::VecRole::rope)
    store_kv_dense(rows, role == cuda::VecRole::store_v ? *roles.v_cache : *roles.k_cache, roles.pos);
}

// rms_norm and the jobs on normed: where any job takes the integer kernels, the rms_norm
// kernel writes normed and its q8 form in one launch; else the first f32 launch folds the norm
// in where it can (batch_groups).
void CudaBackend::norm_batch(std::string_view op, const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                             std::span<const MatmulJob> jobs, const JobRoles* roles) {
  const std::optional<cuda::VecNorm> norm = vec_norm(op, x, norm_weight, eps, normed);
  const std::optional<VecInput> in = vec_input(x);
  if (!norm || !in) {
    rms_norm(x, norm_weight, eps, normed);
    const std::optional<VecInput> n_in = vec_input(normed);
    batch_groups(normed, jobs, n_in ? n_in->x : nullptr, n_in ? n_in->stride : 0, int(normed.n_rows()), std::nullopt,
                 nullptr, roles);
    return;
  }
  if (std::ranges::any_of(jobs, [&](const MatmulJob& j) { return takes_q8(std::array{j.w}, 1); })) {
    const cuda::XQ8 xq = quantized_x(in->x, x.ne(0), &*norm);  // normed written
    batch_groups(normed, jobs, norm->normed, x.ne(0), 1, xq, nullptr, roles);
    return;
  }
  const PendingNorm pending{&x, &norm_weight, eps, &normed, *norm};
  batch_groups(normed, jobs, in->x, in->stride, 1, std::nullopt, &pending, roles);
}

// One launch of gate/up with the SwiGLU epilogue: on the integer kernels where takes_q8 says so
// (x rounded to its q8 form first; with norm by the rms_norm kernel, which writes normed), else
// on the f32 ones (with norm folded into the launch where they take it). False where the fast
// kernels do not take the op (the caller runs its parts).
bool CudaBackend::swiglu_launch(std::string_view op, const Tensor& w_gate, const Tensor& w_up, const Tensor& x,
                                Tensor& gate, Tensor& up, Tensor& out, const cuda::VecNorm* norm) {
  const std::optional<VecInput> in = vec_input(x);
  const std::optional<cuda::VecJob> g = vec_job(w_gate, gate, nullptr), u = vec_job(w_up, up, nullptr);
  const std::optional<int64_t> out_stride = even_column_stride(out);
  const cuda::WeightType type = weight_type(w_gate);
  if (!in || !g || !u || !out_stride || type != weight_type(w_up)) return false;
  const bool q8 = takes_q8(std::array{&w_gate, &w_up}, in->m);
  const cuda::XQ8 xq = q8 ? quantized_x(in->x, x.ne(0), norm) : cuda::XQ8{};
  auto* act = reinterpret_cast<float*>(out.mutable_data());
  cuda::ProfileScope scope(
      profiler_, stream_,
      profiler_.enabled() ? fmt::format("{} {} {}", op, w_gate.traits().name, q8 ? "q8" : "vec") : std::string());
  const cudaError_t status = q8 ? cuda::launch_matvec_q8_swiglu(type, *g, *u, act, x.ne(0), xq, stream_)
                                : cuda::launch_matvec_fast_swiglu(type, *g, *u, act, *out_stride, x.ne(0), in->x,
                                                                  in->stride, in->m, stream_, norm);
  if (status == cudaErrorNotSupported) return false;
  STRATA_CUDA_CHECK(status);
  return true;
}

}  // namespace strata
