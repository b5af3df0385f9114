// The forward pass of a decoder-only transformer: the driver around the blocks of the model's
// architecture (src/model/arch/, over the shared blocks of model/blocks.h), written once
// against the Backend op interface. Every intermediate passes through a tap under a stable
// name (design principle 2), read from the tensors the fused ops write, so a tap observes the
// path that ships: inp_embd, blk.N.* (the blocks'), result_norm, logits.
#pragma once

#include <functional>
#include <span>
#include <string_view>

#include "model/blocks.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace strata {

class Transformer {
public:
  // unfused: every FusedMatmul runs as the plain ops it stands for (Backend's default), to
  // bisect a difference between a backend's fused kernels and its plain ones.
  Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend, bool unfused = false);

  // Runs `tokens` at positions n_past, n_past+1, ... (their K/V are stored in `cache`) and
  // returns the logits [n_vocab, n] on the backend: n = tokens.size() if all_logits, else 1
  // (the last token's). Valid until the next call. A single token without a tap is a decode
  // step: the backend may replay a recording of the previous step (Backend::run_step).
  const Tensor& forward(std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, bool all_logits,
                        const Tap& tap = {});

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }

private:
  struct Buffers;  // activations for one batch size
  Buffers& buffers_for(int64_t n_tokens);
  void queue_forward(Buffers& b, std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, Tensor& out,
                     const Tap& tap);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  Backend& backend_;
  bool unfused_;
  std::shared_ptr<Buffers> buffers_, step_buffers_;  // for n > 1 tokens, for n == 1
};

}  // namespace strata
