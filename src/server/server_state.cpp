#include "server/server_state.h"

#include <fmt/format.h>

#include <vector>

namespace strata::server {

ServerState::ServerState(Engine& engine, ServedModel model, ServerOptions options)
    : engine_(engine),
      model_(std::move(model)),
      options_(std::move(options)),
      started_(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      rng_(std::random_device{}()) {}

RequestId ServerState::submit(EngineRequest request, OutputCallback on_output) {
  std::lock_guard lock(mutex_);
  if (draining_) throw ApiError(503, "unavailable_error", "the server is shutting down", "", "shutting_down");
  RequestId id = 0;
  try {
    id = engine_.submit(std::move(request), std::move(on_output));
  } catch (const EngineFull& e) {
    throw ApiError(429, "rate_limit_error", fmt::format("the server is busy: {}", e.what()), "", "queue_full");
  } catch (const Error& e) {
    bad_request(e.what());
  }
  in_flight_.insert(id);
  return id;
}

void ServerState::finished(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    in_flight_.erase(id);
  }
  idle_.notify_all();
}

void ServerState::drain() {
  std::vector<RequestId> ids;
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    ids.assign(in_flight_.begin(), in_flight_.end());
  }
  for (const RequestId id : ids) engine_.cancel(id);
}

bool ServerState::draining() const {
  std::lock_guard lock(mutex_);
  return draining_;
}

bool ServerState::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
}

uint64_t ServerState::random() {
  std::lock_guard lock(mutex_);
  return rng_();
}

std::string ServerState::new_id(std::string_view prefix) {
  uint64_t a = 0, b = 0;
  {
    std::lock_guard lock(mutex_);
    a = rng_();
    b = rng_();
  }
  return fmt::format("{}-{:016x}{:08x}", prefix, a, uint32_t(b));
}

}  // namespace strata::server
