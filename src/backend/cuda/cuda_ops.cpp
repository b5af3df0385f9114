// The CUDA backend's ops except matmul: argument checks (shared with cpu_ref, so both
// backends refuse the same calls with the same messages), then one kernel launch each.
#include <cmath>

#include "backend/cpu_ref/checks.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace strata {

using cpu_ref::check_f32;
using cpu_ref::check_f32_output;
using cpu_ref::check_max_dims;
using cpu_ref::check_no_alias;
using cpu_ref::check_same_or_no_alias;
using cpu_ref::check_same_shape;
using cpu_ref::check_shape;

namespace {

void check_device(std::string_view op, std::string_view role, const Tensor& t) {
  if (!t.is_device() && t.n_elements() > 0) {
    fail("{}: {} {} is in host memory; the cuda backend computes on tensors it made (alloc, upload)", op, role,
         t.describe());
  }
}

void check_cache(std::string_view op, std::string_view role, const Tensor& cache) {
  if (cache.dtype() != DType::F32 && cache.dtype() != DType::F16) {
    fail("{}: {} {} must be f32 or f16", op, role, cache.describe());
  }
  if (cache.nb(0) != cache.traits().type_size) {
    fail("{}: {} {} has element stride {} bytes; its rows must be packed", op, role, cache.describe(), cache.nb(0));
  }
  check_max_dims(op, role, cache, 3);
  check_device(op, role, cache);
}

}  // namespace

void CudaBackend::get_rows(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  constexpr std::string_view op = "get_rows";
  if (!cuda::convert_supported(table.dtype())) {
    fail("{}: table {}: type {} is not supported by the cuda backend", op, table.describe(), table.traits().name);
  }
  check_max_dims(op, "table", table, 2);
  check_f32_output(op, "out", out);
  const int64_t n_embd = table.ne(0), n_vocab = table.ne(1), n_ids = int64_t(ids.size());
  check_shape(op, "out", out, {n_embd, n_ids, 1, 1});
  check_device(op, "table", table);
  check_device(op, "out", out);
  check_no_alias(op, "out", out, "table", table);
  if (table.traits().is_quantized && table.nb(0) != table.traits().type_size) {
    fail("{}: table {} has strided blocks", op, table.describe());
  }
  for (int64_t i = 0; i < n_ids; ++i) {
    const int32_t id = ids[size_t(i)];
    if (id < 0 || id >= n_vocab) {
      fail("{}: id {} (ids[{}]) is out of range for {} (valid ids are 0..{})", op, id, i, table.describe(),
           n_vocab - 1);
    }
  }
  if (n_ids == 0) return;
  const int32_t* d_ids = upload_ints(ids_, ids, "token ids");
  cuda::ProfileScope scope(profiler_, stream_, "get_rows");
  STRATA_CUDA_CHECK(cuda::launch_rows_to_f32(table.dtype(), table.data(), row_layout(table), table.nb(0), d_ids, n_embd,
                                             n_ids, reinterpret_cast<float*>(out.mutable_data()),
                                             int64_t(out.nb(1) / sizeof(float)), stream_));
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  constexpr std::string_view op = "rms_norm";
  check_f32(op, "x", x);
  if (weight.dtype() != DType::F32 || weight.nb(0) != sizeof(float)) {
    fail("{}: weight {} must be packed f32 on the cuda backend", op, weight.describe());
  }
  check_shape(op, "weight", weight, {x.ne(0), 1, 1, 1});
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "x", x);
  check_no_alias(op, "out", out, "x", x);
  check_no_alias(op, "out", out, "weight", weight);
  check_device(op, "x", x);
  check_device(op, "weight", weight);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "rms_norm");
  STRATA_CUDA_CHECK(cuda::launch_rms_norm(x.data(), row_layout(x), reinterpret_cast<const float*>(weight.data()), eps,
                                          out.mutable_data(), row_layout(out), x.ne(0), x.n_rows(), stream_));
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  constexpr std::string_view op = "add";
  check_f32(op, "a", a);
  if (b.dtype() != DType::F32 || b.nb(0) != sizeof(float)) {
    fail("{}: b {} must be packed f32 on the cuda backend", op, b.describe());
  }
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "a", a);
  const bool broadcast = b.ne() != a.ne();
  if (broadcast && b.ne() != Tensor::Dims{a.ne(0), 1, 1, 1}) {
    fail("{}: b {} should have the shape of a {} or be one row [{}]", op, b.describe(), a.describe(), a.ne(0));
  }
  check_same_or_no_alias(op, "out", out, "a", a);
  check_no_alias(op, "out", out, "b", b);
  check_device(op, "a", a);
  check_device(op, "b", b);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "add");
  STRATA_CUDA_CHECK(cuda::launch_add(a.data(), row_layout(a), b.data(), row_layout(b), broadcast, out.mutable_data(),
                                     row_layout(out), a.ne(0), a.n_rows(), stream_));
}

void CudaBackend::scale(const Tensor& x, float s, Tensor& out) {
  constexpr std::string_view op = "scale";
  check_f32(op, "x", x);
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "x", x);
  check_same_or_no_alias(op, "out", out, "x", x);
  check_device(op, "x", x);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "scale");
  STRATA_CUDA_CHECK(cuda::launch_scale(x.data(), row_layout(x), s, out.mutable_data(), row_layout(out), x.ne(0),
                                       x.n_rows(), stream_));
}

void CudaBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  constexpr std::string_view op = "swiglu";
  check_f32(op, "gate", gate);
  check_f32(op, "up", up);
  check_f32_output(op, "out", out);
  check_same_shape(op, "up", up, "gate", gate);
  check_same_shape(op, "out", out, "gate", gate);
  check_no_alias(op, "out", out, "gate", gate);
  check_no_alias(op, "out", out, "up", up);
  check_device(op, "gate", gate);
  check_device(op, "up", up);
  check_device(op, "out", out);
  cuda::ProfileScope scope(profiler_, stream_, "swiglu");
  STRATA_CUDA_CHECK(cuda::launch_swiglu(gate.data(), row_layout(gate), up.data(), row_layout(up), out.mutable_data(),
                                        row_layout(out), gate.ne(0), gate.n_rows(), stream_));
}

void CudaBackend::softmax(Tensor& x) {
  check_f32_output("softmax", "x", x);
  check_device("softmax", "x", x);
  cuda::ProfileScope scope(profiler_, stream_, "softmax");
  STRATA_CUDA_CHECK(cuda::launch_softmax(x.mutable_data(), row_layout(x), x.ne(0), x.n_rows(), stream_));
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
  }
  return static_cast<const double*>(rope_.get());
}

void CudaBackend::rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& c) {
  constexpr std::string_view op = "rope";
  check_f32_output(op, "x", x);
  check_max_dims(op, "x", x, 3);
  check_device(op, "x", x);
  if (int64_t(positions.size()) != x.ne(2)) {
    fail("{}: {} positions given for x {} with {} tokens", op, positions.size(), x.describe(), x.ne(2));
  }
  const int64_t head_dim = x.ne(0);
  if (c.n_rot <= 0 || c.n_rot % 2 != 0 || c.n_rot > head_dim) {
    fail("{}: n_rot = {} must be even and in 2..head_dim = {} (x {})", op, c.n_rot, head_dim, x.describe());
  }
  if (!(c.freq_base > 0.0f) || !std::isfinite(c.freq_base)) fail("{}: freq_base = {} is not positive", op, c.freq_base);
  if (!(c.freq_scale > 0.0f) || !std::isfinite(c.freq_scale)) {
    fail("{}: freq_scale = {} is not positive", op, c.freq_scale);
  }
  if (!c.freq_factors.empty() && c.freq_factors.size() != size_t(c.n_rot / 2)) {
    fail("{}: {} freq_factors given, expected n_rot / 2 = {}", op, c.freq_factors.size(), c.n_rot / 2);
  }
  for (size_t i = 0; i < c.freq_factors.size(); ++i) {
    if (!(c.freq_factors[i] > 0.0f) || !std::isfinite(c.freq_factors[i])) {
      fail("{}: freq_factors[{}] = {} is not a positive number", op, i, c.freq_factors[i]);
    }
  }
  if (x.n_elements() == 0) return;
  const double* table = rope_table(c);
  const int32_t* d_positions = upload_ints(positions_, positions, "positions");
  cuda::ProfileScope scope(profiler_, stream_, "rope");
  STRATA_CUDA_CHECK(cuda::launch_rope(x.mutable_data(), row_layout(x), x.ne(1), x.ne(2), d_positions, table, c.n_rot,
                                      c.neox, stream_));
}

void CudaBackend::store_kv(const Tensor& src, Tensor& cache, int64_t pos) {
  constexpr std::string_view op = "store_kv";
  check_f32(op, "src", src);
  check_max_dims(op, "src", src, 3);
  check_device(op, "src", src);
  check_cache(op, "cache", cache);
  if (!cache.is_writable()) fail("{}: cache {} is read-only", op, cache.describe());
  if (src.ne(0) != cache.ne(0) || src.ne(1) != cache.ne(1)) {
    fail("{}: src {} and cache {} differ in head_dim or n_kv_heads", op, src.describe(), cache.describe());
  }
  const int64_t n_tokens = src.ne(2), n_ctx = cache.ne(2);
  if (pos < 0 || pos > n_ctx || n_tokens > n_ctx - pos) {
    fail("{}: positions {}..{} do not fit cache {} of {} positions", op, pos, pos + n_tokens - 1, cache.describe(),
         n_ctx);
  }
  check_no_alias(op, "cache", cache, "src", src);
  cuda::ProfileScope scope(profiler_, stream_, "store_kv");
  STRATA_CUDA_CHECK(cuda::launch_store_kv(src.data(), row_layout(src), cache.mutable_data(), row_layout(cache),
                                          cache.dtype() == DType::F16, src.ne(0), src.ne(1), n_tokens, pos, stream_));
}

void CudaBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past, float scale,
                            Tensor& out) {
  constexpr std::string_view op = "attention";
  check_f32(op, "q", q);
  check_max_dims(op, "q", q, 3);
  check_cache(op, "k_cache", k_cache);
  check_cache(op, "v_cache", v_cache);
  check_same_shape(op, "v_cache", v_cache, "k_cache", k_cache);
  if (v_cache.dtype() != k_cache.dtype()) {
    fail("{}: v_cache {} and k_cache {} differ in type", op, v_cache.describe(), k_cache.describe());
  }
  check_f32_output(op, "out", out);
  check_same_shape(op, "out", out, "q", q);
  check_device(op, "q", q);
  check_device(op, "out", out);
  const int64_t head_dim = q.ne(0), n_heads = q.ne(1), n_kv_heads = k_cache.ne(1);
  if (k_cache.ne(0) != head_dim) {
    fail("{}: q {} has head_dim {} but k_cache {} has {}", op, q.describe(), head_dim, k_cache.describe(),
         k_cache.ne(0));
  }
  if (head_dim > cuda::kMaxHeadDim) {
    fail("{}: head_dim {} of q {} is above the cuda kernel's limit of {}", op, head_dim, q.describe(),
         cuda::kMaxHeadDim);
  }
  if (n_kv_heads == 0 || n_heads % n_kv_heads != 0) {
    fail("{}: q {} has {} heads, not a multiple of the {} KV heads of k_cache {}", op, q.describe(), n_heads,
         n_kv_heads, k_cache.describe());
  }
  const int64_t n_ctx = k_cache.ne(2);
  if (n_past < 0 || n_past > n_ctx || q.ne(2) > n_ctx - n_past) {
    fail("{}: n_past {} + {} new tokens exceed the {} positions of k_cache {}", op, n_past, q.ne(2), n_ctx,
         k_cache.describe());
  }
  check_no_alias(op, "out", out, "q", q);
  check_no_alias(op, "out", out, "k_cache", k_cache);
  check_no_alias(op, "out", out, "v_cache", v_cache);
  cuda::ProfileScope scope(profiler_, stream_, "attention");
  STRATA_CUDA_CHECK(cuda::launch_attention(q.data(), row_layout(q), k_cache.data(), row_layout(k_cache), v_cache.data(),
                                           row_layout(v_cache), k_cache.dtype() == DType::F16, out.mutable_data(),
                                           row_layout(out), head_dim, n_heads, n_kv_heads, q.ne(2), n_past, scale,
                                           stream_));
}

}  // namespace strata
