#include "runtime/memory_plan.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"

namespace strata {

namespace {

constexpr size_t kMiB = size_t(1) << 20;

std::string human(size_t bytes) {
  if (bytes >= (size_t(1) << 30)) return fmt::format("{:.1f} GiB", double(bytes) / double(size_t(1) << 30));
  if (bytes >= kMiB) return fmt::format("{:.1f} MiB", double(bytes) / double(kMiB));
  if (bytes >= 1024) return fmt::format("{:.1f} KiB", double(bytes) / 1024.0);
  return fmt::format("{} B", bytes);
}

// MemAvailable of /proc/meminfo in bytes (what can be allocated without swapping).
std::optional<size_t> host_available() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("MemAvailable:")) continue;
    std::istringstream fields(line.substr(13));
    size_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

size_t kv_bytes(const ModelConfig& c, int64_t n_ctx, DType kv_type) {
  // [head_dim, n_head_kv, n_ctx] for K and for V, per layer
  return size_t(c.n_layer) * 2 * row_bytes(kv_type, c.head_dim()) * size_t(c.n_head_kv) * size_t(n_ctx);
}

}  // namespace

SessionMemory session_memory(const ModelConfig& c, int64_t n_ctx, DType kv_type, int64_t n_batch) {
  SessionMemory m;
  m.kv_cache = kv_bytes(c, n_ctx, kv_type);
  // Per token: x cur proj down [n_embd], q att [n_embd_q], k v [n_embd_kv], gate up act [n_ff], logits [n_vocab].
  const size_t per_token =
      size_t(4 * c.n_embd + 2 * c.n_embd_q() + 2 * c.n_embd_kv() + 3 * c.n_ff + c.n_vocab) * sizeof(float);
  const auto n = size_t(std::max<int64_t>(n_batch, 1));
  const size_t host_logits = size_t(c.n_vocab) * n * sizeof(float);
  m.activations = per_token * (n + 1) + size_t(c.n_vocab) * sizeof(float) + host_logits;
  m.scratch = 64 * kMiB + m.activations / 4;
  return m;
}

std::optional<size_t> available_memory(const Backend& backend, std::string& where) {
  if (const std::optional<size_t> free = backend.device_free_memory()) {
    where = fmt::format("free on {}", backend.device_name());
    return free;
  }
  where = "available in host memory (MemAvailable)";
  return host_available();
}

int64_t largest_context(const ModelConfig& c, DType kv_type, int64_t n_batch, size_t available) {
  const SessionMemory fixed = session_memory(c, 0, kv_type, n_batch);
  if (fixed.total() >= available) return 0;
  const size_t per_position = kv_bytes(c, 1, kv_type);
  const size_t n = (available - fixed.total()) / std::max<size_t>(per_position, 1);
  return int64_t(n / 256 * 256);
}

void check_session_memory(const ModelConfig& c, const Backend& backend, int64_t n_ctx, DType kv_type, int64_t n_batch) {
  std::string where;
  const std::optional<size_t> available = available_memory(backend, where);
  const SessionMemory need = session_memory(c, n_ctx, kv_type, n_batch);
  if (!available || need.total() <= *available) return;
  const int64_t largest = largest_context(c, kv_type, n_batch, *available);
  fail(
      "a context of {} tokens needs {} of memory: {} of KV cache ({}, {} per token) + {} of activations and "
      "scratch; {} is {}. {}",
      n_ctx, human(need.total()), human(need.kv_cache), dtype_name(kv_type), human(kv_bytes(c, 1, kv_type)),
      human(need.activations + need.scratch), human(*available), where,
      largest > 0 ? fmt::format("The largest context that fits is {} (-c {})", largest, largest)
                  : std::string("Not even a context of 256 fits"));
}

}  // namespace strata
