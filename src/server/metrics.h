// GET /metrics: the engine's and the HTTP layer's counters in Prometheus' text format (0.0.4).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "runtime/engine.h"

namespace strata::server {

// What the HTTP layer counts (a snapshot of HttpCounters).
struct HttpStats {
  std::array<int64_t, 6> responses{};  // by status class: [2] = 2xx ... [5] = 5xx ([0], [1] unused)
  int64_t disconnects = 0;             // generations cancelled because the client went away
};

// Counted from any handler thread.
class HttpCounters {
public:
  void response(int status) {
    if (status >= 200 && status < 600) classes_[size_t(status / 100)].fetch_add(1, std::memory_order_relaxed);
  }
  void disconnect() { disconnects_.fetch_add(1, std::memory_order_relaxed); }
  HttpStats snapshot() const;

private:
  std::array<std::atomic<int64_t>, 6> classes_{};
  std::atomic<int64_t> disconnects_{0};
};

std::string render_metrics(const EngineStats& engine, const HttpStats& http);

}  // namespace strata::server
