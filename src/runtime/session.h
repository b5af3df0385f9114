// A session: one sequence being evaluated by a model on a backend, with its KV cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "model/transformer.h"

namespace strata {

struct SessionOptions {
  int64_t n_ctx = 0;           // 0: the model's training context or 4096, whichever is smaller
  DType kv_type = DType::F16;  // F16 or F32
  bool unfused = false;        // fused matmuls as their plain ops (Transformer), for bisecting
  // The most tokens one eval() will take: sizes the activations in the memory check made
  // before the KV cache is allocated (0: min(n_ctx, 512)).
  int64_t n_batch = 0;
};

class Session {
public:
  // Throws strata::Error, before allocating, when the KV cache and activations do not fit in
  // the backend's free memory (check_session_memory).
  Session(const Model& model, Backend& backend, const SessionOptions& options);

  // Appends `tokens` at the current position and runs them. Returns the logits of the last
  // token ([n_vocab]) or, with all_logits, of every token ([n_tokens * n_vocab], token-major).
  // Throws (naming the sizes) if the tokens do not fit in the context.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false, const Tap& tap = {});

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return cache_.n_rows(); }
  int64_t n_vocab() const { return model_.config().n_vocab; }
  // Forgets positions >= n (n <= n_past): the next eval continues from n.
  void rewind(int64_t n);
  const Model& model() const { return model_; }
  Backend& backend() const { return backend_; }
  size_t kv_bytes() const { return cache_.n_bytes(); }

private:
  const Model& model_;
  Backend& backend_;
  KvCache cache_;
  Transformer transformer_;
  int64_t n_past_ = 0;
  std::vector<float> logits_;  // host copy of the last logits (reused: no allocation per token)
};

// The context size a session gets for `requested` (0 = default) on `config`.
int64_t default_context(const ModelConfig& config, int64_t requested);

}  // namespace strata
