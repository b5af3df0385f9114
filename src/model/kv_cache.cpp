#include "model/kv_cache.h"

#include <fmt/format.h>

#include <atomic>

#include "core/error.h"

namespace strata {

namespace {
std::atomic<uint64_t> next_cache_id{1};
}

KvCache::KvCache(Backend& backend, const ModelConfig& c, int64_t n_rows, DType type)
    : n_rows_(n_rows), type_(type), id_(next_cache_id++) {
  if (type != DType::F32 && type != DType::F16) fail("KV cache type must be f32 or f16, got {}", dtype_name(type));
  if (n_rows <= 0) fail("KV cache size must be positive, got {} positions", n_rows);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const Placement by_heads{Placement::Kind::kv_heads};
    k_.push_back(
        backend.alloc_placed(type, {c.head_dim(), c.n_head_kv, n_rows}, fmt::format("cache_k.{}", il), by_heads));
    v_.push_back(
        backend.alloc_placed(type, {c.head_dim(), c.n_head_kv, n_rows}, fmt::format("cache_v.{}", il), by_heads));
  }
}

size_t KvCache::n_bytes() const {
  size_t total = 0;
  for (const auto& t : k_) total += t.n_bytes();
  for (const auto& t : v_) total += t.n_bytes();
  return total;
}

}  // namespace strata
