// matmul on the CUDA backend: out[i, j] = sum_l w[l, i] * x[l, j].
//
// Decode (m <= kMaxVecColumns columns): matrix-vector kernels that dequantize the weight in
// registers and accumulate in f32 (matmul_vec_*.cu); activations stay f32. Except for one
// column (m = 1, every decode step) on large Q4_0, Q4_K and Q6_K matrices (takes_q8): there x
// is rounded to its q8 form (blocks of 32 int8 and a scale; rms_norm writes it in the same
// launch where the op begins with one) and the integer kernels take the products
// (matmul_vec_q8.cu). STRATA_CUDA_MATVEC=f32 keeps f32 activations there too.
// Prefill (m > kMaxVecColumns): cuBLAS GEMM on the tensor cores with f32 accumulation
// (CUBLAS_COMPUTE_32F), f16 operands: the activations are rounded to f16 (saturating at
// +-65504, a range Llama-family activations stay within) and the weight is dequantized to
// f16, a tile of rows at a time, into a scratch buffer (F16 weights are used in place).
// f16 keeps 11 significant bits, as TF32 does; measured on an H100 this path is 1.1 to 1.5x
// faster than TF32 (docs/benchmarks.md). STRATA_CUDA_GEMM=tf32 selects the TF32 path
// instead (gemm(): f32 tiles, CUBLAS_COMPUTE_32F_FAST_TF32, f32's range for activations), and
// STRATA_CUDA_GEMM=f32 the same with plain f32 products (no tensor cores: slower, but no
// operand rounding, so that prefill computes what cpu_ref computes to f32 precision).
#include <algorithm>
#include <array>
#include <initializer_list>
#include <optional>
#include <utility>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {
namespace {

constexpr size_t kGemmScratchBytes = size_t(64) << 20;  // dequantized weight rows per GEMM tile

// Which weights the integer kernels take (takes_q8): matrices of 2^23 weights or more, and
// rows longer than 2048 (kMaxF32FoldedRow). Smaller matrices of shorter rows stay f32: there
// x's q8 form would cost a launch of its own (~3 us) where the op does not start with a norm,
// or where it does, the launch that the f32 kernels save by folding rms_norm into their own
// (VecNorm, rows up to 2048), more than the integer kernels save on so few weights. Per
// matrix, so that a fused op and the ops it stands for take the same kernels and give the
// same bits. Measured on an H100, TinyLlama Q4_0 tg128 (q 2048 x 2048, k and v 256 x 2048,
// gate, up and down 11.5 M weights, output 65.5 M): 1250-1253 t/s with rows up to 2048 and
// matrices under 2^24 on f32 (the rule before Q4_0 rows were regrouped, kernels.h:
// RowFormat), 1360-1367 with 2^23 and more on q8 at any row length, 1288-1293 with every
// matrix on q8, 1198-1205 from 2^22 (q and the output projection too), 1253-1270 with the
// output alone; Llama-2-7B Q4_0 (every matrix 4096 x 4096 or larger) 397 against 357 f32
// before the regrouping.
constexpr int64_t kMinQ8Weights = int64_t(1) << 23;
// Rows longer than the f32 kernels fold rms_norm into (kMaxNormColumn, norm.cuh) take the
// integer kernels at any size: where a norm comes first, x's q8 form is made by the rms_norm
// launch that those rows need anyway, and matrices that share x share a launch (Llama-3-8B's
// k and v, 4 M weights each, join q's). Measured on an H100, Llama-3-8B Q4_K_M tg128 (one
// call, two rounds): 374.0 / 378.9 t/s with k and v on the f32 kernels, 390.3 / 391.4 with
// them on q8.
constexpr int64_t kMaxF32FoldedRow = 2048;

// The stride in floats between consecutive flat rows of an f32 tensor, if they are evenly
// spaced (true of every packed tensor and of row slices of one).
std::optional<int64_t> even_column_stride(const Tensor& t) {
  const int64_t s1 = int64_t(t.nb(1));
  const bool even = (t.ne(2) == 1 || int64_t(t.nb(2)) == s1 * t.ne(1)) &&
                    (t.ne(3) == 1 || int64_t(t.nb(3)) == int64_t(t.nb(2)) * t.ne(2));
  if (!even || s1 % int64_t(sizeof(float)) != 0) return std::nullopt;
  return t.n_rows() > 1 ? s1 / int64_t(sizeof(float)) : t.ne(0);
}

// The same, which must exist.
int64_t column_stride(std::string_view op, std::string_view role, const Tensor& t) {
  const std::optional<int64_t> stride = even_column_stride(t);
  if (!stride) fail("{}: {} {}: its rows are not evenly spaced, as the cuda matmul needs", op, role, t.describe());
  return *stride;
}

void check_in_device_memory(std::string_view op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  for (const auto& [role, t] : tensors) {
    if (!t->is_device() && t->n_elements() > 0) fail("{}: {} {} is in host memory", op, role, t->describe());
  }
}

// x as the fused decode ops hand it to the fast matrix-vector kernels: m <= kMaxVecColumns
// columns, 16-byte aligned, evenly spaced; nullopt where they take the ops instead (which
// pack x, or multiply it by the GEMM path, as matmul does).
struct VecInput {
  const float* x;
  int64_t stride;
  int m;
};
std::optional<VecInput> vec_input(const Tensor& x) {
  const int64_t m = x.n_rows();
  if (m < 1 || m > cuda::kMaxVecColumns || x.ne(0) == 0) return std::nullopt;
  const std::optional<int64_t> stride = even_column_stride(x);
  const auto* xd = reinterpret_cast<const float*>(x.data());
  if (!stride || (reinterpret_cast<uintptr_t>(xd) & 15) != 0 || (m > 1 && *stride % 4 != 0)) return std::nullopt;
  return VecInput{xd, *stride, int(m)};
}

// The fused kernels' job for w and out (and acc), or nullopt where matmul would refuse w or
// out or not take the fast kernels.
std::optional<cuda::VecJob> vec_job(const Tensor& w, Tensor& out, Tensor* acc) {
  if (w.nb(0) != w.traits().type_size) return std::nullopt;
  const std::optional<int64_t> out_stride = even_column_stride(out);
  std::optional<int64_t> acc_stride = int64_t(0);
  if (acc != nullptr) acc_stride = even_column_stride(*acc);
  if (!out_stride || !acc_stride) return std::nullopt;
  return cuda::VecJob{w.data(),    w.nb(1),
                      w.ne(1),     reinterpret_cast<float*>(out.mutable_data()),
                      *out_stride, acc != nullptr ? reinterpret_cast<float*>(acc->mutable_data()) : nullptr,
                      *acc_stride};
}

void check_matvec_supported(std::string_view op, std::string_view role, const Tensor& t) {
  if (!cuda::matvec_supported(t.dtype())) {
    fail("{}: {} {}: type {} is not supported by the cuda backend", op, role, t.describe(), t.traits().name);
  }
}

// rms_norm folded into the first matrix-vector launch (cuda::VecNorm: single-column x): its
// CTAs normalize x themselves with the rms_norm kernel's arithmetic and CTA 0 writes normed;
// a second launch (another weight type among q, k, v) reads normed. Where the fast kernels
// do not take it: rms_norm, then the op.
std::optional<cuda::VecNorm> vec_norm(std::string_view op, const Tensor& x, const Tensor& weight, float eps,
                                      Tensor& normed) {
  check_rms_norm_args(x, weight, normed, check_packed_f32);
  check_in_device_memory(op, {{"x", &x}, {"norm weight", &weight}, {"normed", &normed}});
  if (x.n_rows() != 1) return std::nullopt;
  return cuda::VecNorm{reinterpret_cast<const float*>(weight.data()), eps,
                       reinterpret_cast<float*>(normed.mutable_data())};
}

}  // namespace

void CudaBackend::matmul(const Tensor& w, const Tensor& x, Tensor& out) {
  constexpr std::string_view op = "matmul";
  check_matmul_args(w, x, out, check_matvec_supported);
  const int64_t k = w.ne(0), n = w.ne(1);
  for (const auto& [role, t] : {std::pair<const char*, const Tensor*>{"weight", &w}, {"x", &x}, {"out", &out}}) {
    if (!t->is_device() && t->n_elements() > 0) fail("{}: {} {} is in host memory", op, role, t->describe());
  }
  if (w.nb(0) != w.traits().type_size) fail("{}: weight {} has strided elements", op, w.describe());
  const int64_t m = x.n_rows();
  if (n == 0 || m == 0) return;
  int64_t x_stride = column_stride(op, "x", x);
  const int64_t out_stride = column_stride(op, "out", out);
  const auto* xd = reinterpret_cast<const float*>(x.data());
  auto* od = reinterpret_cast<float*>(out.mutable_data());
  if (k == 0) {
    fail("{}: weight {} has no columns", op, w.describe());
  }
  if (m <= cuda::kMaxVecColumns) {
    const bool aligned = (reinterpret_cast<uintptr_t>(xd) & 15) == 0 && (x_stride % 4 == 0 || m == 1);
    if (w.traits().is_quantized && !aligned) {  // the quantized kernels read x 16 bytes at a time
      auto* packed =
          static_cast<float*>(scratch(gemm_x_, gemm_x_capacity_, size_t(k * m) * sizeof(float), "aligned activations"));
      STRATA_CUDA_CHECK(cudaMemcpy2DAsync(packed, size_t(k) * sizeof(float), xd, size_t(x_stride) * sizeof(float),
                                          size_t(k) * sizeof(float), size_t(m), cudaMemcpyDeviceToDevice, stream_));
      xd = packed;
      x_stride = k;
    }
    if (takes_q8(std::array{&w}, m)) {
      const cuda::XQ8 q8 = quantized_x(xd, k, nullptr);
      const cuda::VecJob job{w.data(), w.nb(1), n, od, out_stride, nullptr, 0};
      cuda::ProfileScope scope(profiler_, stream_,
                               profiler_.enabled() ? fmt::format("matmul {} q8", w.traits().name) : std::string());
      const cudaError_t status = cuda::launch_matvec_q8_jobs(weight_type(w), &job, 1, k, q8, stream_);
      if (status != cudaErrorNotSupported) {
        STRATA_CUDA_CHECK(status);
        return;
      }
    }
    cuda::ProfileScope scope(profiler_, stream_,
                             profiler_.enabled() ? fmt::format("matmul {} vec", w.traits().name) : std::string());
    STRATA_CUDA_CHECK(
        cuda::launch_matvec(weight_type(w), w.data(), w.nb(1), k, n, xd, x_stride, od, out_stride, int(m), stream_));
    return;
  }
  if (gemm_mode_ == GemmMode::f16) {
    gemm_f16(w, xd, x_stride, od, out_stride, m);
  } else {
    gemm(w, xd, x_stride, od, out_stride, m);
  }
}

// ---- fused decode ops ----------------------------------------------------------------------
// One launch of the fast matrix-vector kernels (matmul_vec_fast.cu) with the op's epilogue;
// every row's sum has the bits matmul gives it, and the epilogue does the f32 operations of
// the add and swiglu kernels, so the results equal the ops' exactly. Where the fast kernels do
// not apply (other types, m > kMaxVecColumns, unaligned x) the ops run one by one.

void CudaBackend::matmul_add(const Tensor& w, const Tensor& x, Tensor& product, Tensor& acc) {
  constexpr std::string_view op = "matmul_add";
  check_matmul_add_args(w, x, product, acc, check_matvec_supported);
  check_in_device_memory(op, {{"weight", &w}, {"x", &x}, {"product", &product}, {"acc", &acc}});
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
  Backend::matmul_add(w, x, product, acc);
}

void CudaBackend::attention_matmul_add(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                       float scale, Tensor& out, const Tensor& w, Tensor& product, Tensor& acc) {
  constexpr std::string_view op = "attention_matmul_add";
  if (q.ne(2) == 1 && out.is_contiguous() && takes_q8(std::array{&w}, 1)) {
    check_attention(q, k_cache, v_cache, n_past, out);
    const Tensor x = out.reshape({out.ne(0) * out.ne(1), 1});
    check_matmul_add_args(w, x, product, acc, check_matvec_supported);
    check_in_device_memory(op, {{"weight", &w}, {"product", &product}, {"acc", &acc}});
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
  Backend::attention_matmul_add(q, k_cache, v_cache, n_past, scale, out, w, product, acc);
}

void CudaBackend::matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, const Tensor& x, Tensor& gate, Tensor& up,
                                Tensor& out) {
  constexpr std::string_view op = "matmul_swiglu";
  check_matmul_swiglu_args(w_gate, w_up, x, gate, up, out, check_matvec_supported);
  check_in_device_memory(
      op, {{"gate weight", &w_gate}, {"up weight", &w_up}, {"x", &x}, {"gate", &gate}, {"up", &up}, {"out", &out}});
  if (!swiglu_launch(op, w_gate, w_up, x, gate, up, out, nullptr))
    Backend::matmul_swiglu(w_gate, w_up, x, gate, up, out);
}

void CudaBackend::matmul_batch(const Tensor& x, std::span<const MatmulJob> jobs) {
  constexpr std::string_view op = "matmul_batch";
  check_matmul_batch_args(x, jobs, check_matvec_supported);
  check_in_device_memory(op, {{"x", &x}});
  for (const MatmulJob& j : jobs) check_in_device_memory(op, {{"weight", j.w}, {"out", j.out}});
  const std::optional<VecInput> in = vec_input(x);
  if (!in) {
    Backend::matmul_batch(x, jobs);
    return;
  }
  batch_groups(x, jobs, in->x, in->stride, in->m, std::nullopt, nullptr, nullptr);
}

// The jobs of one weight type and kernel family share a launch (kMaxVecJobs at a time), on
// the integer kernels where takes_q8 says so (x's q8 form: q8, or made here once) and on the
// f32 ones otherwise; Q4_K_M files mix Q4_K and Q6_K among q, k and v, which share one launch
// on the integer kernels (launch_matvec_q8_jobs_pair, where Q4_K comes first). A group the fast kernels do not take runs matmul job by job (xd == nullptr: every
// group). norm: x (normed) is still to be written, xd is rms_norm's input; the first launch
// normalizes (the q8 form's rounding, or the f32 kernels' fold) where it can, else rms_norm
// runs first. roles: the jobs' rope and KV store.
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
  Tensor rows = heads(out, roles.args.head_dim);  // [head_dim, heads, 1]
  if (role != cuda::VecRole::store_v) rope(rows, roles.positions, *roles.config);
  if (role != cuda::VecRole::rope)
    store_kv(rows, role == cuda::VecRole::store_v ? *roles.v_cache : *roles.k_cache, roles.pos);
}

void CudaBackend::rms_norm_matmul_batch(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                        std::span<const MatmulJob> jobs) {
  norm_batch("rms_norm_matmul_batch", x, norm_weight, eps, normed, jobs, nullptr);
}

// rms_norm and the jobs on normed: where any job takes the integer kernels, the rms_norm
// kernel writes normed and its q8 form in one launch; else the first f32 launch folds the norm
// in where it can (batch_groups).
void CudaBackend::norm_batch(std::string_view op, const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                             std::span<const MatmulJob> jobs, const JobRoles* roles) {
  const std::optional<cuda::VecNorm> norm = vec_norm(op, x, norm_weight, eps, normed);
  check_matmul_batch_args(normed, jobs, check_matvec_supported);
  for (const MatmulJob& j : jobs) check_in_device_memory(op, {{"weight", j.w}, {"out", j.out}});
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

void CudaBackend::rms_norm_qkv_rope_store_kv(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                             const Tensor& wq, const Tensor& wk, const Tensor& wv, Tensor& q, Tensor& k,
                                             Tensor& v, std::span<const int32_t> positions, const RopeConfig& config,
                                             Tensor& k_cache, Tensor& v_cache, int64_t pos) {
  constexpr std::string_view op = "rms_norm_qkv_rope_store_kv";
  const int64_t head_dim = k_cache.ne(0);
  const bool cache_type =
      k_cache.dtype() == v_cache.dtype() && (k_cache.dtype() == DType::F16 || k_cache.dtype() == DType::F32);
  const bool whole_heads =
      head_dim > 0 && q.ne(0) % head_dim == 0 && k.ne(0) % head_dim == 0 && v.ne(0) % head_dim == 0;
  if (!fused_rope_ || x.n_rows() != 1 || config.neox || head_dim % 2 != 0 || config.n_rot % 2 != 0 || !cache_type ||
      !whole_heads) {
    Backend::rms_norm_qkv_rope_store_kv(x, norm_weight, eps, normed, wq, wk, wv, q, k, v, positions, config, k_cache,
                                        v_cache, pos);
    return;
  }
  const Tensor q3 = heads(q, head_dim), k3 = heads(k, head_dim), v3 = heads(v, head_dim);
  check_rope_args(q3, positions, config);
  check_rope_args(k3, positions, config);
  check_store_kv_args(k3, k_cache, pos);
  check_store_kv_args(v3, v_cache, pos);
  check_in_device_memory(op, {{"k_cache", &k_cache}, {"v_cache", &v_cache}});
  const int32_t p32 = int32_t(pos);
  const cuda::VecRope args{
      .positions = capture_.active ? step_value(op, positions, 1) : upload_ints(positions_, positions, "positions"),
      .pos_dev = capture_.active ? step_value(op, {&p32, 1}, 1) : nullptr,
      .pos = pos,
      .theta_scale = rope_table(config),
      .n_rot = config.n_rot,
      .head_dim = head_dim,
      .k_cache = k_cache.mutable_data(),
      .lkc = row_layout(k_cache),
      .v_cache = v_cache.mutable_data(),
      .lvc = row_layout(v_cache),
      .cache_f16 = k_cache.dtype() == DType::F16};
  const cuda::VecRole role[] = {cuda::VecRole::rope, cuda::VecRole::rope_store_k, cuda::VecRole::store_v};
  const JobRoles roles{role, args, positions, &config, &k_cache, &v_cache, pos};
  const MatmulJob jobs[] = {{&wq, &q}, {&wk, &k}, {&wv, &v}};
  kv_stored_from_ = pos;  // row pos (the ops' store_kv, where a job falls back to them, says the same)
  norm_batch(op, x, norm_weight, eps, normed, jobs, &roles);
}

void CudaBackend::rms_norm_matmul_swiglu(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                         const Tensor& w_gate, const Tensor& w_up, Tensor& gate, Tensor& up,
                                         Tensor& out) {
  constexpr std::string_view op = "rms_norm_matmul_swiglu";
  const std::optional<cuda::VecNorm> norm = vec_norm(op, x, norm_weight, eps, normed);
  check_matmul_swiglu_args(w_gate, w_up, normed, gate, up, out, check_matvec_supported);
  check_in_device_memory(op,
                         {{"gate weight", &w_gate}, {"up weight", &w_up}, {"gate", &gate}, {"up", &up}, {"out", &out}});
  if (!norm || !swiglu_launch(op, w_gate, w_up, x, gate, up, out, &*norm)) {
    Backend::rms_norm_matmul_swiglu(x, norm_weight, eps, normed, w_gate, w_up, gate, up, out);
  }
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

bool CudaBackend::takes_q8(std::span<const Tensor* const> ws, int64_t m) const {
  if (matvec_mode_ != MatvecMode::q8 || m != 1 || ws.empty()) return false;
  return std::ranges::all_of(ws, [](const Tensor* w) {
    const int64_t k = w->ne(0);
    return (k * w->ne(1) >= kMinQ8Weights || k > kMaxF32FoldedRow) && cuda::matvec_q8_supported(w->dtype(), k);
  });
}

cuda::XQ8 CudaBackend::quantized_x(const float* x, int64_t k, const cuda::VecNorm* norm) {
  const cuda::XQ8 q8 = cuda::x_q8_view(scratch(x_q8_, x_q8_capacity_, cuda::x_q8_bytes(k), "q8 activations"), k);
  cuda::ProfileScope scope(profiler_, stream_, norm != nullptr ? "rms_norm q8" : "quantize x q8");
  STRATA_CUDA_CHECK(norm != nullptr ? cuda::launch_rms_norm_q8(x, norm->weight, norm->eps, norm->normed, k, q8, stream_)
                                    : cuda::launch_quantize_x_q8(x, k, q8, stream_));
  return q8;
}

// out (n x m, column stride out_stride) = W^T x via cuBLAS, W dequantized in tiles of rows.
// cuBLAS is column-major: W's rows are the columns of a k x n matrix (ld = row stride), so
// C = op_T(A) * B with A = W, B = x (k x m, ld = x_stride).
void CudaBackend::gemm(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  const float one = 1.0f, zero = 0.0f;
  const bool tf32 = gemm_mode_ == GemmMode::tf32;
  auto multiply = [&](const float* a, int64_t lda, int64_t rows, int64_t first) {
    cuda::ProfileScope scope(profiler_, stream_, tf32 ? "gemm tf32 cublas" : "gemm f32 cublas");
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_32F,
                                     int(lda), x, CUDA_R_32F, int(x_stride), &zero, out + first, CUDA_R_32F,
                                     int(out_stride), tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
  };
  if (std::max({k, n, m, x_stride, out_stride}) > int64_t(INT32_MAX)) fail("matmul: sizes exceed cuBLAS's int range");
  if (w.dtype() == DType::F32) {
    multiply(reinterpret_cast<const float*>(w.data()), int64_t(w.nb(1) / sizeof(float)), n, 0);
    return;
  }
  const int64_t tile = std::clamp<int64_t>(int64_t(kGemmScratchBytes / sizeof(float)) / k, 1, n);
  auto* buffer =
      static_cast<float*>(scratch(gemm_, gemm_capacity_, size_t(tile * k) * sizeof(float), "dequantized weight tile"));
  cuda::RowLayout layout = row_layout(w);
  for (int64_t first = 0; first < n; first += tile) {
    const int64_t rows = std::min(tile, n - first);
    const auto* src = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
    layout.ne1 = rows;
    {
      cuda::ProfileScope scope(
          profiler_, stream_,
          profiler_.enabled() ? fmt::format("gemm dequant {} f32", w.traits().name) : std::string());
      STRATA_CUDA_CHECK(
          cuda::launch_rows_to_f32(weight_type(w), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    }
    multiply(buffer, k, rows, first);
  }
}

// As gemm(), with f16 operands: x and each weight tile rounded to f16 (saturating), products
// accumulated in f32 (CUBLAS_COMPUTE_32F).
void CudaBackend::gemm_f16(const Tensor& w, const float* x, int64_t x_stride, float* out, int64_t out_stride,
                           int64_t m) {
  const int64_t k = w.ne(0), n = w.ne(1);
  if (std::max({k, n, m, x_stride, out_stride}) > int64_t(INT32_MAX)) fail("matmul: sizes exceed cuBLAS's int range");
  const float one = 1.0f, zero = 0.0f;
  void* x16 = scratch(gemm_x_, gemm_x_capacity_, size_t(k * m) * 2, "f16 activations");
  {
    cuda::ProfileScope scope(profiler_, stream_, "gemm x to f16");
    const cuda::RowLayout lx{m, 1, x_stride * int64_t(sizeof(float)), 0, 0};
    STRATA_CUDA_CHECK(cuda::launch_rows_to_f16({DType::F32}, x, lx, sizeof(float), nullptr, k, m, x16, k, stream_));
  }
  const int64_t tile = std::clamp<int64_t>(int64_t(kGemmScratchBytes / 2) / k, 1, n);
  void* buffer = scratch(gemm_, gemm_capacity_, size_t(tile * k) * 2, "dequantized weight tile");
  cuda::RowLayout layout = row_layout(w);
  for (int64_t first = 0; first < n; first += tile) {
    const int64_t rows = std::min(tile, n - first);
    const void* a = buffer;
    int64_t lda = k;
    if (w.dtype() == DType::F16) {
      a = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
      lda = int64_t(w.nb(1) / 2);
    } else {
      cuda::ProfileScope scope(
          profiler_, stream_,
          profiler_.enabled() ? fmt::format("gemm dequant {} f16", w.traits().name) : std::string());
      layout.ne1 = rows;
      const auto* src = static_cast<const uint8_t*>(w.data()) + size_t(first) * w.nb(1);
      STRATA_CUDA_CHECK(
          cuda::launch_rows_to_f16(weight_type(w), src, layout, w.nb(0), nullptr, k, rows, buffer, k, stream_));
    }
    cuda::ProfileScope scope(profiler_, stream_, "gemm f16 cublas");
    STRATA_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(rows), int(m), int(k), &one, a, CUDA_R_16F,
                                     int(lda), x16, CUDA_R_16F, int(k), &zero, out + first, CUDA_R_32F, int(out_stride),
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace strata
