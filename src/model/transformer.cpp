#include "model/transformer.h"

#include <numeric>

#include "core/error.h"
#include "model/arch/architecture.h"

namespace strata {

// Activations for one batch size, and the decode steps recorded by the backend (n == 1), for
// logits into `logits` / `last`, and the cache they wrote into (a step for another cache is
// recorded anew).
struct Transformer::Buffers : Activations {
  using Activations::Activations;
  StepRecording steps[2];
  uint64_t steps_cache_id = 0;
};

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend, bool unfused)
    : config_(config), weights_(weights), backend_(backend), unfused_(unfused) {}

Transformer::Buffers& Transformer::buffers_for(int64_t n) {
  // One token (decode) keeps its own buffers, so that its recorded steps outlive prompts.
  std::shared_ptr<Buffers>& slot = n == 1 ? step_buffers_ : buffers_;
  if (slot && slot->n_tokens == n) return *slot;
  slot.reset();
  slot = std::make_shared<Buffers>(backend_, config_, n);
  return *slot;
}

const Tensor& Transformer::forward(std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, bool all_logits,
                                   const Tap& tap) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("forward: no tokens");
  if (n_past < 0 || n_past + n > cache.n_ctx()) {
    fail("forward: {} tokens at position {} do not fit the context of {}", n, n_past, cache.n_ctx());
  }
  Buffers& b = buffers_for(n);
  // n_vocab x n floats (96 MiB for 512 tokens of a 49k vocabulary) only where they are wanted.
  if (all_logits && b.logits.n_elements() == 0) b.logits = backend_.alloc(DType::F32, {config_.n_vocab, n}, "logits");
  Tensor& out = all_logits ? b.logits : b.last;
  if (n > 1 || tap) {
    queue_forward(b, tokens, n_past, cache, out, tap);
    return out;
  }
  if (b.steps_cache_id != cache.id()) {
    for (StepRecording& r : b.steps) r = {};
    b.steps_cache_id = cache.id();
  }
  // Two pointers: small enough for std::function to keep without a heap allocation per token.
  struct Args {
    Buffers& b;
    std::span<const int32_t> tokens;
    int64_t n_past;
    KvCache& cache;
    Tensor& out;
  } args{b, tokens, n_past, cache, out};
  backend_.run_step(b.steps[all_logits ? 0 : 1], tokens[0], n_past,
                    [this, &args] { queue_forward(args.b, args.tokens, args.n_past, args.cache, args.out, {}); });
  return out;
}

void Transformer::queue_forward(Buffers& b, std::span<const int32_t> tokens, int64_t n_past, KvCache& cache,
                                Tensor& out, const Tap& tap) {
  const int64_t n = b.n_tokens;
  const DenseKvLayout kv(n_past, n, cache.n_ctx());
  Blocks blocks(config_, backend_, b, kv, cache, tap, unfused_);

  backend_.get_rows(weights_.token_embd, tokens, b.x);
  if (config_.embd_scale != 1.0f) backend_.scale(b.x, config_.embd_scale, b.x);
  blocks.emit(-1, "inp_embd", b.x);
  for (int64_t il = 0; il < config_.n_layer; ++il) {
    config_.architecture->block(blocks, weights_.layers[size_t(il)], il);
  }
  // result_norm = norm(x) (the last column only, unless all logits); logits = output result_norm
  Tensor x = out.ne(1) == n ? b.x : b.x.slice(1, n - 1, 1);           // [n_embd, n or 1]
  Tensor normed = out.ne(1) == n ? b.cur : b.cur.slice(1, n - 1, 1);  // [n_embd, n or 1]
  const MatmulJob logits[] = {{.w = &weights_.output, .out = &out}};
  blocks.run({.x = &normed,
              .prologue = FusedMatmul::Prologue::rms_norm,
              .norm_input = &x,
              .norm_weight = &weights_.output_norm,
              .norm_eps = config_.rms_eps,
              .jobs = logits});
  blocks.emit(-1, "result_norm", normed);
  blocks.emit(-1, "logits", out);
}

}  // namespace strata
