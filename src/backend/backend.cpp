// The default implementations of Backend's non-pure methods.
#include "backend/backend.h"

#include <cstring>

#include "core/error.h"

namespace strata {

void Backend::read_f32(const Tensor& t, std::span<float> out) {
  if (size_t(t.n_elements()) != out.size()) {
    fail("read_f32: {} has {} elements, the destination {}", t.describe(), t.n_elements(), out.size());
  }
  const Tensor host = to_host_f32(t);
  std::memcpy(out.data(), host.data(), out.size_bytes());
}

void Backend::rms_norm_qkv_rope_store_kv(const Tensor& x, const Tensor& norm_weight, float eps, Tensor& normed,
                                         const Tensor& wq, const Tensor& wk, const Tensor& wv, Tensor& q, Tensor& k,
                                         Tensor& v, std::span<const int32_t> positions, const RopeConfig& config,
                                         Tensor& k_cache, Tensor& v_cache, int64_t pos) {
  const MatmulJob jobs[] = {{&wq, &q}, {&wk, &k}, {&wv, &v}};
  rms_norm_matmul_batch(x, norm_weight, eps, normed, jobs);
  const int64_t head_dim = k_cache.ne(0);
  Tensor q3 = heads(q, head_dim), k3 = heads(k, head_dim);
  rope_store_kv(q3, k3, heads(v, head_dim), positions, config, k_cache, v_cache, pos);
}

void Backend::attention_matmul_add(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t n_past,
                                   float scale, Tensor& out, const Tensor& w, Tensor& product, Tensor& acc) {
  attention(q, k_cache, v_cache, n_past, scale, out);
  matmul_add(w, out.reshape({out.ne(0) * out.ne(1), out.ne(2)}), product, acc);
}

Tensor Backend::heads(const Tensor& t, int64_t head_dim) {
  if (head_dim <= 0 || t.ne(0) % head_dim != 0 || t.ne(2) != 1 || t.ne(3) != 1) {
    fail("{} cannot be split into heads of {}", t.describe(), head_dim);
  }
  return t.reshape({head_dim, t.ne(0) / head_dim, t.ne(1)});
}

}  // namespace strata
