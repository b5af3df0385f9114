#include "model/transformer.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "backend/op_checks.h"
#include "core/error.h"
#include "model/arch/architecture.h"

namespace strata {

// Activations for up to `capacity` tokens (a batch of n works on their first n columns), the
// logits of up to logits.ne(1) output tokens (allocated by the first pass that asks for more
// than the last one), and the decode steps recorded by the backend (n == 1), for logits into
// `logits` / `last`, and the cache they wrote into (a step for another cache is recorded anew).
struct Transformer::Buffers {
  Buffers(Backend& backend, const ModelConfig& config, int64_t capacity) : full(backend, config, capacity) {}
  Activations full;
  Tensor logits;  // [n_vocab, up to capacity]
  StepRecording steps[2];
  uint64_t steps_cache_id = 0;
};

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend, bool unfused)
    : config_(config), weights_(weights), backend_(backend), unfused_(unfused) {}

Transformer::Buffers& Transformer::buffers_for(int64_t n) {
  // One token (decode) keeps its own buffers, so that its recorded steps outlive prompts.
  std::shared_ptr<Buffers>& slot = n == 1 ? step_buffers_ : buffers_;
  if (slot && slot->full.n_tokens >= n) return *slot;
  slot.reset();
  slot = std::make_shared<Buffers>(backend_, config_, n);
  return *slot;
}

Tensor& Transformer::logits_for(Buffers& b, int64_t n_out) {
  // n_vocab x n floats (96 MiB for 512 tokens of a 49k vocabulary) only where they are wanted.
  if (b.logits.n_elements() == 0 || b.logits.ne(1) < n_out) {
    b.logits = {};
    b.logits = backend_.alloc(DType::F32, {config_.n_vocab, n_out}, "logits");
  }
  return b.logits;
}

namespace {

void check_batch(const Batch& batch, const Tensor& k_cache) {
  const int64_t n = int64_t(batch.tokens.size());
  if (n == 0) fail("forward: no tokens");
  if (batch.kv == nullptr) fail("forward: a batch of {} tokens without a KV layout", n);
  check_kv_layout("forward", *batch.kv, n, k_cache);
  for (size_t i = 0; i < batch.outputs.size(); ++i) {
    const int32_t o = batch.outputs[i];
    if (o < 0 || o >= n || (i > 0 && o <= batch.outputs[i - 1])) {
      fail("forward: output {} (outputs[{}]) is not an increasing index into the batch of {} tokens", o, i, n);
    }
  }
}

}  // namespace

const Tensor& Transformer::forward(std::span<const int32_t> tokens, int64_t n_past, KvCache& cache, bool all_logits,
                                   const Tap& tap) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("forward: no tokens");
  if (n_past < 0 || n_past + n > cache.n_rows()) {
    fail("forward: {} tokens at position {} do not fit the context of {}", n, n_past, cache.n_rows());
  }
  const DenseKvLayout kv(n_past, n, cache.n_rows());
  const int32_t last = int32_t(n - 1);
  if (all_logits && int64_t(all_outputs_.size()) < n) {
    all_outputs_.resize(size_t(n));
    std::iota(all_outputs_.begin(), all_outputs_.end(), 0);
  }
  const std::span<const int32_t> outputs =
      all_logits ? std::span<const int32_t>(all_outputs_).first(size_t(n)) : std::span<const int32_t>(&last, 1);
  return forward({.tokens = tokens, .kv = &kv.get(), .outputs = outputs}, cache, tap);
}

const Tensor& Transformer::forward(const Batch& batch, KvCache& cache, const Tap& tap) {
  check_batch(batch, cache.k(0));
  const int64_t n = int64_t(batch.tokens.size()), n_out = int64_t(batch.outputs.size());
  Buffers& b = buffers_for(n);
  Activations a = b.full.columns(n);
  // The last token's logits into `last` (decode, a prompt's end); more into `logits`.
  const bool only_last = n_out == 1 && batch.outputs[0] == n - 1;
  out_ = n_out == 0 ? Tensor() : only_last ? b.full.last : logits_for(b, n_out).slice(1, 0, n_out);
  const std::optional<int64_t> dense = dense_kv_start(*batch.kv);
  if (n > 1 || tap || !dense) {
    queue_forward(a, batch, cache, out_, tap);
    return out_;
  }
  if (b.steps_cache_id != cache.id()) {
    for (StepRecording& r : b.steps) r = {};
    b.steps_cache_id = cache.id();
  }
  // Pointers only: small enough for std::function to keep without a heap allocation per token.
  struct Args {
    Transformer* t;
    Activations& a;
    const Batch& batch;
    KvCache& cache;
    Tensor& out;
  } args{this, a, batch, cache, out_};
  backend_.run_step(b.steps[only_last ? 1 : 0], batch.tokens[0], *dense,
                    [&args] { args.t->queue_forward(args.a, args.batch, args.cache, args.out, {}); });
  return out_;
}

void Transformer::queue_forward(Activations& a, const Batch& batch, KvCache& cache, Tensor& out, const Tap& tap) {
  const int64_t n = a.n_tokens, n_out = out.ne(1);
  Blocks blocks(config_, backend_, a, *batch.kv, cache, tap, unfused_);

  backend_.get_rows(weights_.token_embd, batch.tokens, a.x);
  if (config_.embd_scale != 1.0f) backend_.scale(a.x, config_.embd_scale, a.x);
  blocks.emit(-1, "inp_embd", a.x);
  for (int64_t il = 0; il < config_.n_layer; ++il) {
    config_.architecture->block(blocks, weights_.layers[size_t(il)], il);
  }
  if (batch.outputs.empty()) return;
  // result_norm = norm(x) of the output tokens; logits = output result_norm
  Tensor x, normed;  // [n_embd, n_out]
  if (n_out == n) {  // every token
    x = a.x, normed = a.cur;
  } else if (n_out == 1 && batch.outputs[0] == n - 1) {  // the last
    x = a.x.slice(1, n - 1, 1), normed = a.cur.slice(1, n - 1, 1);
  } else {  // some: their columns gathered first
    x = a.cur.slice(1, 0, n_out), normed = a.proj.slice(1, 0, n_out);
    backend_.get_rows(a.x, batch.outputs, x);
  }
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
