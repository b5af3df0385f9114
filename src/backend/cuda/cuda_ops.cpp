// The CUDA backend's ops except matmul: the argument checks every backend shares
// (backend/op_checks.h, so all refuse the same calls with the same messages), then the
// cuda backend's own (device memory, supported types, kernel limits), then one kernel launch each.
#include <cmath>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/op_checks.h"
#include "core/error.h"

namespace strata {

namespace {

void check_device(std::string_view op, std::string_view role, const Tensor& t) {
  if (!t.is_device() && t.n_elements() > 0) {
    fail("{}: {} {} is in host memory; the cuda backend computes on tensors it made (alloc, upload)", op, role,
         t.describe());
  }
}

void check_convert_supported(std::string_view op, std::string_view role, const Tensor& t) {
  if (!cuda::convert_supported(t.dtype())) {
    fail("{}: {} {}: type {} is not supported by the cuda backend", op, role, t.describe(), t.traits().name);
  }
}

}  // namespace

void check_packed_f32(std::string_view op, std::string_view role, const Tensor& t) {
  if (t.dtype() != DType::F32 || t.nb(0) != sizeof(float)) {
    fail("{}: {} {} must be packed f32 on the cuda backend", op, role, t.describe());
  }
}

void CudaBackend::get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  constexpr std::string_view op = "get_rows";
  check_get_rows_args(table, ids, out, check_convert_supported);
  check_device(op, "table", table);
  check_device(op, "out", out);
  if (table.traits().is_quantized && table.nb(0) != table.traits().type_size) {
    fail("{}: table {} has strided blocks", op, table.describe());
  }
  const int64_t n_embd = table.ne(0), n_ids = int64_t(ids.size());
  if (n_ids == 0) return;
  const int32_t* d_ids = capture_.active ? step_value(op, ids, 0) : upload_ints(ids_, ids, "token ids");
  cuda::ProfileScope scope(profiler_, stream_, "get_rows");
  STRATA_CUDA_CHECK(cuda::launch_rows_to_f32(weight_type(table), table.data(), row_layout(table), table.nb(0), d_ids,
                                             n_embd, n_ids, reinterpret_cast<float*>(out.mutable_data()),
                                             int64_t(out.nb(1) / sizeof(float)), stream_));
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  constexpr std::string_view op = "rms_norm";
  check_rms_norm_args(x, weight, out, check_packed_f32);
  check_device(op, "x", x);
  check_device(op, "weight", weight);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "rms_norm");
  STRATA_CUDA_CHECK(cuda::launch_rms_norm(x.data(), row_layout(x), reinterpret_cast<const float*>(weight.data()), eps,
                                          out.mutable_data(), row_layout(out), x.ne(0), x.n_rows(), stream_));
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  constexpr std::string_view op = "add";
  const bool broadcast = check_add_args(a, b, out, check_packed_f32);
  check_device(op, "a", a);
  check_device(op, "b", b);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "add");
  STRATA_CUDA_CHECK(cuda::launch_add(a.data(), row_layout(a), b.data(), row_layout(b), broadcast, out.mutable_data(),
                                     row_layout(out), a.ne(0), a.n_rows(), stream_));
}

void CudaBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  constexpr std::string_view op = "swiglu";
  check_swiglu_args(gate, up, out);
  check_device(op, "gate", gate);
  check_device(op, "up", up);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "swiglu");
  STRATA_CUDA_CHECK(cuda::launch_swiglu(gate.data(), row_layout(gate), up.data(), row_layout(up), out.mutable_data(),
                                        row_layout(out), gate.ne(0), gate.n_rows(), stream_));
}

void CudaBackend::geglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  constexpr std::string_view op = "geglu";
  check_swiglu_args(gate, up, out, op);
  check_device(op, "gate", gate);
  check_device(op, "up", up);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "geglu");
  STRATA_CUDA_CHECK(cuda::launch_geglu(gate.data(), row_layout(gate), up.data(), row_layout(up), out.mutable_data(),
                                       row_layout(out), gate.ne(0), gate.n_rows(), stream_));
}

void CudaBackend::scale(const Tensor& x, float s, Tensor& out) {
  constexpr std::string_view op = "scale";
  check_scale_args(x, s, out);
  check_device(op, "x", x);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "scale");
  STRATA_CUDA_CHECK(cuda::launch_scale(x.data(), row_layout(x), s, out.mutable_data(), row_layout(out), x.ne(0),
                                       x.n_rows(), stream_));
}

const double* CudaBackend::rope_table(const RopeConfig& c) {
  std::vector<double> table(size_t(c.n_rot / 2));  // theta_i / pos
  for (size_t i = 0; i < table.size(); ++i) {
    const double inv_freq = std::pow(double(c.freq_base), -2.0 * double(i) / double(c.n_rot));
    const double factor = c.freq_factors.empty() ? 1.0 : double(c.freq_factors[i]);
    table[i] = double(c.freq_scale) * inv_freq / factor;
  }
  if (table != rope_key_ || !rope_) {
    void* d = scratch(rope_, rope_capacity_, table.size() * sizeof(double), "rope angles");
    STRATA_CUDA_CHECK(cudaMemcpyAsync(d, table.data(), table.size() * sizeof(double), cudaMemcpyHostToDevice, stream_));
    rope_key_ = std::move(table);
    ++scratch_generation_;
  }
  return static_cast<const double*>(rope_.get());
}

void CudaBackend::rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& c) {
  check_rope_args(x, positions, c);
  check_device("rope", "x", x);
  if (x.n_elements() == 0) return;
  const double* table = rope_table(c);
  const int32_t* d_positions =
      capture_.active ? step_value("rope", positions, 1) : upload_ints(positions_, positions, "positions");
  cuda::ProfileScope scope(profiler_, stream_, "rope");
  STRATA_CUDA_CHECK(cuda::launch_rope(x.mutable_data(), row_layout(x), x.ne(1), x.ne(2), d_positions, table, c.n_rot,
                                      c.neox, stream_));
}

void CudaBackend::rope_store_kv(Tensor& q, Tensor& k, const Tensor& v, std::span<const int32_t> positions,
                                const RopeConfig& c, Tensor& k_cache, Tensor& v_cache, int64_t pos) {
  constexpr std::string_view op = "rope_store_kv";
  check_rope_args(q, positions, c);
  check_rope_args(k, positions, c);
  check_store_kv_args(k, k_cache, DenseKvLayout(pos, k.ne(2), k_cache.ne(2)));
  check_store_kv_args(v, v_cache, DenseKvLayout(pos, v.ne(2), v_cache.ne(2)));
  for (const auto& [role, t] : {std::pair<const char*, const Tensor*>{"q", &q},
                                {"k", &k},
                                {"v", &v},
                                {"k_cache", &k_cache},
                                {"v_cache", &v_cache}}) {
    check_device(op, role, *t);
  }
  if (q.ne(0) != k.ne(0) || q.ne(2) != k.ne(2) || k_cache.dtype() != v_cache.dtype()) {
    fail("{}: q {}, k {} and the caches {}, {} do not belong together", op, q.describe(), k.describe(),
         k_cache.describe(), v_cache.describe());
  }
  if (q.n_elements() == 0) return;
  const double* table = rope_table(c);
  const int32_t p32 = int32_t(pos);
  const int32_t* d_positions =
      capture_.active ? step_value(op, positions, 1) : upload_ints(positions_, positions, "positions");
  const int32_t* pos_dev = capture_.active ? step_value(op, {&p32, 1}, 1) : nullptr;
  const cuda::RopeStoreKv args{.q = q.mutable_data(),
                               .lq = row_layout(q),
                               .k = k.mutable_data(),
                               .lk = row_layout(k),
                               .v = v.data(),
                               .lv = row_layout(v),
                               .k_cache = k_cache.mutable_data(),
                               .lkc = row_layout(k_cache),
                               .v_cache = v_cache.mutable_data(),
                               .lvc = row_layout(v_cache),
                               .cache_f16 = k_cache.dtype() == DType::F16,
                               .head_dim = q.ne(0),
                               .n_heads = q.ne(1),
                               .n_kv_heads = k.ne(1),
                               .n_tokens = q.ne(2),
                               .pos = pos,
                               .theta_scale = table,
                               .n_rot = c.n_rot,
                               .neox = c.neox};
  cuda::ProfileScope scope(profiler_, stream_, "rope_store_kv");
  kv_stored_from_ = pos;
  STRATA_CUDA_CHECK(cuda::launch_rope_store_kv(args, d_positions, pos_dev, stream_));
}

void CudaBackend::store_kv(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  check_store_kv_args(src, cache, kv);
  check_device("store_kv", "src", src);
  check_device("store_kv", "cache", cache);
  if (const std::optional<int64_t> pos = dense_kv_start(kv)) {
    store_kv_dense(src, cache, *pos);
  } else {
    store_kv_paged(src, cache, kv);
  }
}

void CudaBackend::store_kv_paged(const Tensor& src, Tensor& cache, const KvLayout& kv) {
  if (capture_.active) fail("store_kv: a paged KV layout cannot be part of a recorded decode step");
  const int64_t n_tokens = src.ne(2);
  std::vector<int32_t> rows(static_cast<size_t>(n_tokens));  // the cache row of each token
  for (int64_t t = 0; t < n_tokens; ++t) rows[size_t(t)] = int32_t(kv.row(kv.seq[size_t(t)], kv.positions[size_t(t)]));
  const int32_t* d_rows = upload_ints(kv_rows_, rows, "KV rows");
  cuda::ProfileScope scope(profiler_, stream_, "store_kv paged");
  kv_stored_from_ = 0;  // any row: decode attention waits for this store
  STRATA_CUDA_CHECK(cuda::launch_store_kv_rows(src.data(), row_layout(src), cache.mutable_data(), row_layout(cache),
                                               cache.dtype() == DType::F16, src.ne(0), src.ne(1), n_tokens, d_rows,
                                               stream_));
}

void CudaBackend::store_kv_dense(const Tensor& src, Tensor& cache, int64_t pos) {
  const int64_t n_tokens = src.ne(2);
  const int32_t p32 = int32_t(pos);
  const int32_t* pos_dev = capture_.active ? step_value("store_kv", {&p32, 1}, 1) : nullptr;
  cuda::ProfileScope scope(profiler_, stream_, "store_kv");
  kv_stored_from_ = pos;
  STRATA_CUDA_CHECK(cuda::launch_store_kv(src.data(), row_layout(src), cache.mutable_data(), row_layout(cache),
                                          cache.dtype() == DType::F16, src.ne(0), src.ne(1), n_tokens, pos, pos_dev,
                                          stream_));
}

void CudaBackend::check_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                                  int64_t window, const Tensor& out) const {
  constexpr std::string_view op = "attention";
  check_attention_args(q, k_cache, v_cache, kv, window, out);
  if (v_cache.dtype() != k_cache.dtype()) {
    fail("{}: v_cache {} and k_cache {} differ in type", op, v_cache.describe(), k_cache.describe());
  }
  check_device(op, "q", q);
  check_device(op, "k_cache", k_cache);
  check_device(op, "v_cache", v_cache);
  check_device(op, "out", out);
  if (q.ne(0) > cuda::kMaxHeadDim) {
    fail("{}: head_dim {} of q {} is above the cuda kernel's limit of {}", op, q.ne(0), q.describe(),
         cuda::kMaxHeadDim);
  }
}

void CudaBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                            float scale, int64_t window, Tensor& out) {
  check_attention(q, k_cache, v_cache, kv, window, out);
  if (const std::optional<int64_t> n_past = dense_kv_start(kv)) {
    attention_dense(q, k_cache, v_cache, *n_past, scale, window, out);
  } else {
    attention_paged(q, k_cache, v_cache, kv, scale, window, out);
  }
}

void CudaBackend::attention_paged(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const KvLayout& kv,
                                  float scale, int64_t window, Tensor& out) {
  if (capture_.active) fail("attention: a paged KV layout cannot be part of a recorded decode step");
  const int32_t* positions = upload_ints(kv_positions_, kv.positions, "KV positions");
  const int32_t* seq = upload_ints(kv_seq_, kv.seq, "KV sequences");
  const int32_t* table = upload_ints(kv_table_, kv.block_table, "KV block table");
  cuda::ProfileScope scope(profiler_, stream_, "attention paged");
  STRATA_CUDA_CHECK(cuda::launch_attention_paged(
      q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(), row_layout(v_cache),
      k_cache.dtype() == DType::F16, out.mutable_data(), row_layout(out), q.ne(0), q.ne(1), k_cache.ne(1), q.ne(2),
      positions, seq, table, kv.max_blocks, kv.block_tokens, window, scale, stream_));
}

void CudaBackend::attention_dense(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                  float scale, int64_t window, Tensor& out) {
  const int64_t head_dim = q.ne(0), n_heads = q.ne(1), n_kv_heads = k_cache.ne(1);
  if (window > 0 && window < k_cache.ne(2)) {
    // A window that can cut keys of this cache: the kernel that takes one (the same one
    // whatever n_past, so that a recorded step replays it reading n_past on the device).
    const int32_t p32 = int32_t(n_past);
    const int32_t* n_past_dev = capture_.active && q.ne(2) == 1 ? step_value("attention", {&p32, 1}, 1) : nullptr;
    cuda::ProfileScope scope(profiler_, stream_, "attention window");
    STRATA_CUDA_CHECK(cuda::launch_attention(q.data(), row_layout(q), k_cache.data(), row_layout(k_cache),
                                             v_cache.data(), row_layout(v_cache), k_cache.dtype() == DType::F16,
                                             out.mutable_data(), row_layout(out), head_dim, n_heads, n_kv_heads,
                                             q.ne(2), n_past, n_past_dev, window, scale, stream_));
    return;
  }
  // Prompts on tensor cores (attention_prefill.cu) where that kernel applies.
  const bool cache_f16 = k_cache.dtype() == DType::F16;
  if (cuda::attention_prefill_applies(q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(),
                                      row_layout(v_cache), cache_f16, out.data(), row_layout(out), head_dim, n_heads,
                                      n_kv_heads, q.ne(2), n_past)) {
    cuda::ProfileScope scope(profiler_, stream_, "attention_prefill");
    STRATA_CUDA_CHECK(cuda::launch_attention_prefill(
        q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(), row_layout(v_cache),
        out.mutable_data(), row_layout(out), head_dim, n_heads, n_kv_heads, q.ne(2), n_past, scale, stream_));
    return;
  }
  if (q.ne(2) == 1) {  // decode: split over the keys; a recorded step reads n_past on the device
    STRATA_CUDA_CHECK(attention_decode(q, k_cache, v_cache, n_past, scale, out, cuda::XQ8{nullptr, nullptr}));
    return;
  }
  cuda::ProfileScope scope(profiler_, stream_, "attention");
  STRATA_CUDA_CHECK(cuda::launch_attention(q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(),
                                           row_layout(v_cache), k_cache.dtype() == DType::F16, out.mutable_data(),
                                           row_layout(out), head_dim, n_heads, n_kv_heads, q.ne(2), n_past, nullptr, 0,
                                           scale, stream_));
}

// Decode attention (one query token; arguments checked), writing out's q8 form too where q8.q
// is set (cudaErrorNotSupported, nothing launched, where the kernels do not).
cudaError_t CudaBackend::attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                          float scale, Tensor& out, cuda::XQ8 q8) {
  constexpr std::string_view op = "attention";
  const int64_t head_dim = q.ne(0), n_heads = q.ne(1), n_kv_heads = k_cache.ne(1);
  const bool cache_f16 = k_cache.dtype() == DType::F16;
  const int32_t p32 = int32_t(n_past);
  const int32_t* n_past_dev = capture_.active ? step_value(op, {&p32, 1}, 1) : nullptr;
  const int64_t n_ctx = k_cache.ne(2);
  auto* partials = static_cast<float*>(
      scratch(attention_partials_, attention_partials_capacity_,
              cuda::attention_decode_partial_floats(n_heads, head_dim, n_ctx) * sizeof(float), "attention partials"));
  const uint64_t generation = scratch_generation_;
  auto* done = static_cast<unsigned*>(
      scratch(attention_done_, attention_done_capacity_, size_t(n_heads) * sizeof(unsigned), "attention counters"));
  if (scratch_generation_ != generation) {  // a new buffer: the counters start at 0 (kernels.h)
    STRATA_CUDA_CHECK(cudaMemsetAsync(done, 0, attention_done_capacity_, stream_));
  }
  cuda::ProfileScope scope(profiler_, stream_, q8.q != nullptr ? "attention decode q8" : "attention decode");
  return cuda::launch_attention_decode(q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(),
                                       row_layout(v_cache), cache_f16, out.mutable_data(), row_layout(out), head_dim,
                                       n_heads, n_kv_heads, n_ctx, n_past, n_past_dev, kv_stored_from_ >= n_past, scale,
                                       partials, done, q8, stream_);
}

}  // namespace strata
