// The forward pass of a decoder-only transformer: the driver around the blocks of the model's
// architecture (src/model/arch/, over the shared blocks of model/blocks.h), written once
// against the Backend op interface. Every intermediate passes through a tap under a stable
// name (design principle 2), read from the tensors the fused ops write, so a tap observes the
// path that ships: inp_embd, blk.N.* (the blocks'), result_norm, logits.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "model/blocks.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace strata {

// The tokens of one forward pass: of one sequence or of many (prompt chunks and decode tokens
// mixed, in any order), each at its position in its sequence. Every matmul runs over all of
// them at once; store_kv and attention take each token through `kv`.
struct Batch {
  std::span<const int32_t> tokens;   // [n]
  const KvLayout* kv = nullptr;      // n positions and sequence ids; where their keys and values go
  std::span<const int32_t> outputs;  // the tokens (indices into `tokens`, increasing) whose logits are wanted
};

class Transformer {
public:
  // unfused: every FusedMatmul runs as the plain ops it stands for (Backend's default), to
  // bisect a difference between a backend's fused kernels and its plain ones.
  Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend, bool unfused = false);

  // Runs the batch (its keys and values stored in `cache` where batch.kv says) and returns the
  // logits [n_vocab, outputs.size()] of its output tokens on the backend, valid until the next
  // call (an empty tensor when there are none). A single token of one sequence in a dense
  // cache without a tap is a decode step: the backend may replay a recording of the previous
  // step (Backend::run_step).
  const Tensor& forward(const Batch& batch, KvCache& cache, const Tap& tap = {});
  // One sequence in a dense cache (row = position): `tokens` at positions n_past, n_past+1, ...;
  // logits [n_vocab, n] of every token if all_logits, else [n_vocab, 1] of the last.
  const Tensor& forward(std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, bool all_logits,
                        const Tap& tap = {});

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }

private:
  struct Buffers;  // activations for up to a batch size
  Buffers& buffers_for(int64_t n_tokens);
  Tensor& logits_for(Buffers& b, int64_t n_out);
  void queue_forward(Activations& a, const Batch& batch, KvCache& cache, Tensor& out, const Tap& tap);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  Backend& backend_;
  bool unfused_;
  std::shared_ptr<Buffers> buffers_, step_buffers_;  // for n > 1 tokens, for n == 1
  std::vector<int32_t> all_outputs_;                 // 0, 1, ..., n-1
  Tensor out_;                                       // the last pass's logits (a view of the buffers)
};

}  // namespace strata
