// The outputs of one request, handed from the engine's thread (push) to the HTTP thread that
// answers the request (wait_pop).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "runtime/engine.h"

namespace strata::server {

class OutputChannel {
public:
  void push(const EngineOutput& out) {
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(out);
      if (out.finished) finished_ = true;
    }
    ready_.notify_one();
  }

  // Moves the outputs pushed so far into `into` (cleared first), waiting up to `timeout` for
  // one; false when none came.
  bool wait_pop(std::vector<EngineOutput>& into, std::chrono::milliseconds timeout) {
    into.clear();
    std::unique_lock lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [this] { return !pending_.empty(); })) return false;
    into.swap(pending_);
    return true;
  }

  // The final output has been pushed (it may not have been popped yet).
  bool finished() const {
    std::lock_guard lock(mutex_);
    return finished_;
  }

private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<EngineOutput> pending_;
  bool finished_ = false;
};

}  // namespace strata::server
