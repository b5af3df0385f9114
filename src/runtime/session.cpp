#include "runtime/session.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/memory_plan.h"

namespace strata {

int64_t default_context(const ModelConfig& config, int64_t requested) {
  if (requested < 0) fail("--ctx-size must be positive, got {}", requested);
  if (requested > 0) return requested;
  return std::min<int64_t>(config.n_ctx_train, 4096);
}

namespace {

// The context size, once it is known to fit in memory.
int64_t checked_context(const ModelConfig& config, const Backend& backend, const SessionOptions& options) {
  const int64_t n_ctx = default_context(config, options.n_ctx);
  const int64_t n_batch = options.n_batch > 0 ? options.n_batch : std::min<int64_t>(n_ctx, 512);
  check_session_memory(config, backend, n_ctx, options.kv_type, n_batch);
  return n_ctx;
}

}  // namespace

Session::Session(const Model& model, Backend& backend, const SessionOptions& options)
    : model_(model),
      backend_(backend),
      cache_(backend, model.config(), checked_context(model.config(), backend, options), options.kv_type),
      transformer_(model.config(), model.weights(), backend, options.unfused) {}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits, const Tap& tap) {
  const int64_t n = int64_t(tokens.size());
  if (n_past_ + n > n_ctx()) {
    fail("{} tokens do not fit in the context: {} already used of {} (--ctx-size)", n, n_past_, n_ctx());
  }
  for (const int32_t t : tokens) {
    if (t < 0 || t >= n_vocab()) fail("token id {} is outside the vocabulary of {}", t, n_vocab());
  }
  const Tensor& logits = transformer_.forward(tokens, n_past_, cache_, all_logits, tap);
  n_past_ += n;
  logits_.resize(size_t(logits.n_elements()));
  backend_.read_f32(logits, logits_);
  return logits_;
}

void Session::rewind(int64_t n) {
  if (n < 0 || n > n_past_) fail("cannot rewind to position {} of {}", n, n_past_);
  n_past_ = n;
}

}  // namespace strata
