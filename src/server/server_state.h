// What the server's handlers share: the engine, the model, the options, the counters and the
// requests in flight (so that shutdown can cancel them and wait for their streams to end).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <unordered_set>

#include "runtime/engine.h"
#include "server/engine_request.h"
#include "server/metrics.h"
#include "server/server.h"

namespace strata::server {

class ServerState {
public:
  ServerState(Engine& engine, ServedModel model, ServerOptions options);

  Engine& engine() { return engine_; }
  const ServedModel& model() const { return model_; }
  const ServerOptions& options() const { return options_; }
  HttpCounters& counters() { return counters_; }
  int64_t started() const { return started_; }

  // engine().submit(), counted as in flight until finished(id). ApiError 503 once shutting down,
  // 429 when the engine's queue is full, 400 for what the engine refuses (its message).
  RequestId submit(EngineRequest request, OutputCallback on_output);
  // The request's response has been written (or abandoned): it no longer counts as in flight.
  void finished(RequestId id);

  // Refuses new requests from now on and cancels those in flight.
  void drain();
  bool draining() const;
  // Waits until nothing is in flight; false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);

  // The engine's thread died: requests waiting on it must give up.
  void set_engine_failed() { engine_failed_ = true; }
  bool engine_failed() const { return engine_failed_; }

  uint64_t random();                            // a seed for a request that gave none
  std::string new_id(std::string_view prefix);  // chatcmpl-<24 hex digits>, ...

private:
  Engine& engine_;
  ServedModel model_;
  ServerOptions options_;
  HttpCounters counters_;
  int64_t started_;
  std::atomic<bool> engine_failed_{false};

  mutable std::mutex mutex_;
  std::condition_variable idle_;
  bool draining_ = false;
  std::unordered_set<RequestId> in_flight_;
  std::mt19937_64 rng_;
};

}  // namespace strata::server
