#include "runtime/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <numeric>
#include <optional>
#include <unordered_set>

#include "model/kv_cache.h"
#include "model/transformer.h"
#include "runtime/kv_blocks.h"
#include "runtime/logprobs.h"
#include "runtime/memory_plan.h"
#include "runtime/session.h"
#include "runtime/stop_strings.h"
#include "sampling/sampler.h"

namespace strata {
namespace {

constexpr int32_t kMaxTopLogprobs = 20;

// Options with their defaults resolved, checked once.
EngineOptions resolved(const ModelConfig& config, EngineOptions o) {
  o.n_ctx = default_context(config, o.n_ctx);
  if (o.n_parallel < 1) fail("the engine needs at least one parallel sequence, got {}", o.n_parallel);
  if (o.block_tokens < 1) fail("KV block size must be positive, got {} tokens", o.block_tokens);
  if (o.n_batch < 1) fail("batch size must be positive, got {} tokens", o.n_batch);
  if (o.max_queued < 0) fail("the queue limit must not be negative, got {}", o.max_queued);
  if (o.kv_tokens < 0) fail("KV cache budget must not be negative, got {} tokens", o.kv_tokens);
  if (o.kv_tokens == 0) o.kv_tokens = o.n_ctx * o.n_parallel;
  if (o.kv_tokens < o.n_ctx) {
    fail("the KV cache budget of {} tokens is smaller than the context of {} tokens one sequence may reach",
         o.kv_tokens, o.n_ctx);
  }
  return o;
}

int64_t blocks_for(int64_t tokens, int64_t block_tokens) {
  return (tokens + block_tokens - 1) / block_tokens;
}

}  // namespace

struct Engine::Impl {
  // A request waiting to be admitted.
  struct Queued {
    RequestId id;
    EngineRequest request;
    OutputCallback on_output;
  };
  // A request being evaluated: its tokens, and the KV blocks that hold them.
  struct Sequence {
    Sequence(Queued q, const Tokenizer& tokenizer, int32_t n_vocab)
        : id(q.id),
          request(std::move(q.request)),
          on_output(std::move(q.on_output)),
          sampler(request.sampling, n_vocab),
          decoder(tokenizer, {.skip_special = true, .strip_space_prefix = false}),
          stops(request.stop_strings),
          tokens(request.prompt) {}
    RequestId id;
    EngineRequest request;
    OutputCallback on_output;
    Sampler sampler;
    StreamDecoder decoder;
    StopStrings stops;
    std::vector<TokenId> tokens;  // the prompt, then each sampled token
    int64_t n_evaluated = 0;      // tokens whose keys and values are in the cache
    int64_t n_cached = 0;         // prompt tokens taken from the prefix cache
    int64_t n_generated = 0;
    int64_t n_reserved = 0;          // the most blocks it may hold
    std::vector<int32_t> blocks;     // its block table: block b holds positions b * block_tokens ...
    std::vector<uint64_t> hashes;    // the names of its full blocks, in order
    std::optional<StopReason> stop;  // set when the sequence has ended
    int64_t n_prompt() const { return int64_t(request.prompt.size()); }
  };

  Impl(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& options);

  const Model& model;
  Backend& backend;
  const Tokenizer& tokenizer;
  const EngineOptions options;
  std::vector<TokenId> eog;  // end-of-generation tokens, masked with ignore_eos

  // Shared with submit/cancel/stats (any thread), under `mutex`.
  mutable std::mutex mutex;
  std::condition_variable wake;  // a request or a cancellation arrived
  std::deque<Queued> queue;
  std::unordered_set<RequestId> cancelled;
  RequestId next_id = 1;
  int64_t n_running = 0;  // mirrors running.size()
  EngineStats stats;

  // The engine thread's own.
  KvBlocks pool;
  KvCache cache;
  Transformer transformer;
  std::vector<std::unique_ptr<Sequence>> running;  // in admission order
  size_t decode_start = 0;                         // where the next step's decode tokens begin (round robin)
  std::vector<float> masked;                       // logits with end-of-generation masked
  // The batch of a step (kept: no allocation per step once they have grown).
  std::vector<int32_t> batch_tokens, batch_positions, batch_seq, batch_table, batch_outputs;
  std::vector<Sequence*> batch_sequences, output_sequences;
  std::vector<int64_t> batch_counts;
  std::vector<float> logits;  // [n_vocab * outputs] on the host

  RequestId submit(EngineRequest request, OutputCallback on_output);
  void cancel(RequestId id);
  bool step();
  void build_batch();
  void take_blocks(Sequence& s, int64_t n_positions);
  void publish_blocks(Sequence& s);
  std::vector<int32_t> cached_prefix(std::span<const TokenId> prompt, std::vector<uint64_t>& hashes) const;
  int64_t reserved_ahead() const;
  void sample(Sequence& s, std::span<const float> logits);
  void deliver_token(Sequence& s, TokenId id, std::span<const float> logits);
  void finish(Sequence& s, StopReason reason);
  void publish_stats();
  void reap();
  bool apply_cancellations();
  void admit();
};

namespace {

int64_t kv_rows(const EngineOptions& o) {
  return blocks_for(o.kv_tokens, o.block_tokens) * o.block_tokens;
}

// The context, checked against the device's memory before the cache is allocated.
int64_t checked_kv_rows(const ModelConfig& config, const Backend& backend, const EngineOptions& o) {
  check_session_memory(config, backend, kv_rows(o), o.kv_type, std::min(o.n_batch, o.kv_tokens));
  return kv_rows(o);
}

}  // namespace

Engine::Impl::Impl(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& o)
    : model(model),
      backend(backend),
      tokenizer(tokenizer),
      options(resolved(model.config(), o)),
      pool(blocks_for(options.kv_tokens, options.block_tokens), options.block_tokens),
      cache(backend, model.config(), checked_kv_rows(model.config(), backend, options), options.kv_type),
      transformer(model.config(), model.weights(), backend) {
  for (TokenId id = 0; id < tokenizer.n_tokens(); ++id)
    if (tokenizer.is_eog(id)) eog.push_back(id);
  stats.kv_blocks_total = pool.n_blocks();
}

RequestId Engine::Impl::submit(EngineRequest request, OutputCallback on_output) {
  const int64_t n_prompt = int64_t(request.prompt.size());
  const int32_t n_vocab = int32_t(model.config().n_vocab);
  if (n_prompt == 0) fail("the prompt is empty: nothing to continue");
  for (const TokenId t : request.prompt) {
    if (t < 0 || t >= n_vocab) fail("prompt token id {} is outside the vocabulary of {}", t, n_vocab);
  }
  if (n_prompt + 1 > options.n_ctx) {
    fail("the prompt of {} tokens does not fit in the context of {} tokens with room for one generated token", n_prompt,
         options.n_ctx);
  }
  if (request.top_logprobs > kMaxTopLogprobs) {
    fail("top_logprobs must be at most {}, got {}", kMaxTopLogprobs, request.top_logprobs);
  }
  validate(request.sampling);
  if (!on_output) fail("submit: no output callback");
  std::lock_guard lock(mutex);
  // Requests beyond those the free sequence places will take at once.
  const int64_t waiting = int64_t(queue.size()) - (options.n_parallel - n_running);
  if (waiting >= options.max_queued) {
    throw EngineFull(fmt::format("the engine's queue is full: {} requests wait (at most {}), {} run",
                                 std::max<int64_t>(waiting, 0), options.max_queued, stats.running));
  }
  const RequestId id = next_id++;
  queue.push_back({id, std::move(request), std::move(on_output)});
  stats.queued = int64_t(queue.size());
  wake.notify_all();
  return id;
}

void Engine::Impl::cancel(RequestId id) {
  std::lock_guard lock(mutex);
  if (id == 0 || id >= next_id) return;
  cancelled.insert(id);
  wake.notify_all();
}

void Engine::Impl::finish(Sequence& s, StopReason reason) {
  EngineOutput out;
  // What the decoder and the stop strings still hold.
  if (!s.stops.found()) {
    out.text = s.stops.push(s.decoder.finish());
    if (s.stops.found()) {
      reason = StopReason::stop_string;
    } else {
      out.text += s.stops.finish();
    }
  }
  out.finished = true;
  out.stop = reason;
  out.n_prompt = s.n_prompt();
  out.n_cached = s.n_cached;
  out.n_generated = s.n_generated;
  s.stop = reason;
  s.on_output(out);
}

void Engine::Impl::deliver_token(Sequence& s, TokenId id, std::span<const float> logits) {
  EngineOutput out;
  out.token = id;
  out.text = s.stops.push(s.decoder.push(id));
  out.n_prompt = s.n_prompt();
  out.n_cached = s.n_cached;
  out.n_generated = s.n_generated;
  if (s.request.top_logprobs >= 0) {
    const float temperature = s.request.sampling.temperature > 0 ? s.request.sampling.temperature : 1.0f;
    token_logprobs(logits, temperature, id, s.request.top_logprobs, out.logprob, out.top);
  }
  s.on_output(out);
}

// Samples the token after `logits` (the last evaluated token's), delivers it and decides
// whether the sequence goes on (the token then joins its tokens, to be evaluated next).
void Engine::Impl::sample(Sequence& s, std::span<const float> logits) {
  const EngineRequest& r = s.request;
  if (r.max_tokens == 0) return finish(s, StopReason::token_limit);
  if (r.ignore_eos && !eog.empty()) {
    masked.assign(logits.begin(), logits.end());
    for (const TokenId id : eog)
      if (size_t(id) < masked.size()) masked[size_t(id)] = -std::numeric_limits<float>::infinity();
    logits = masked;
  }
  const TokenId id = s.sampler.sample(logits);
  s.sampler.accept(id);
  if (tokenizer.is_eog(id) && !r.ignore_eos) return finish(s, StopReason::end_of_generation);
  ++s.n_generated;
  deliver_token(s, id, logits);
  if (s.stops.found()) return finish(s, StopReason::stop_string);
  if (r.max_tokens > 0 && s.n_generated >= r.max_tokens) return finish(s, StopReason::token_limit);
  if (s.n_evaluated >= options.n_ctx) return finish(s, StopReason::context_full);
  s.tokens.push_back(id);
}

// Blocks for the sequence's positions up to n_positions - 1 that it does not hold yet (its
// reservation guarantees them).
void Engine::Impl::take_blocks(Sequence& s, int64_t n_positions) {
  while (int64_t(s.blocks.size()) * options.block_tokens < n_positions) {
    const std::optional<int32_t> b = int64_t(s.blocks.size()) < s.n_reserved ? pool.allocate() : std::nullopt;
    if (!b) {
      fail("engine: request {} needs KV block {} beyond its reservation of {} ({} of {} blocks held)", s.id,
           s.blocks.size(), s.n_reserved, pool.n_used(), pool.n_blocks());
    }
    s.blocks.push_back(*b);
  }
}

// Names the sequence's blocks that its evaluated tokens have filled, for later prompts.
void Engine::Impl::publish_blocks(Sequence& s) {
  const int64_t bt = options.block_tokens;
  for (int64_t b = int64_t(s.hashes.size()); (b + 1) * bt <= s.n_evaluated; ++b) {
    const uint64_t parent = b > 0 ? s.hashes[size_t(b - 1)] : 0;
    const std::span<const int32_t> tokens = std::span(s.tokens).subspan(size_t(b * bt), size_t(bt));
    const uint64_t hash = kv_block_hash(parent, tokens);
    s.hashes.push_back(hash);
    if (options.prefix_cache) pool.publish(s.blocks[size_t(b)], hash, parent, tokens);
  }
}

// The cached blocks the sequence's prompt starts with (not retained), their names in `hashes`.
// The prompt's last token is always evaluated (its logits are the first sample's), so a block
// holding it is not taken.
std::vector<int32_t> Engine::Impl::cached_prefix(std::span<const TokenId> prompt, std::vector<uint64_t>& hashes) const {
  std::vector<int32_t> found;
  if (!options.prefix_cache) return found;
  const int64_t bt = options.block_tokens;
  uint64_t parent = 0;
  for (int64_t b = 0; (b + 1) * bt <= int64_t(prompt.size()) - 1; ++b) {
    const std::span<const int32_t> tokens = prompt.subspan(size_t(b * bt), size_t(bt));
    const uint64_t hash = kv_block_hash(parent, tokens);
    const std::optional<int32_t> block = pool.find(hash, parent, tokens);
    if (!block) break;
    found.push_back(*block);
    hashes.push_back(hash);
    parent = hash;
  }
  return found;
}

// Blocks the running sequences may still allocate.
int64_t Engine::Impl::reserved_ahead() const {
  int64_t n = 0;
  for (const auto& s : running) n += s->n_reserved - int64_t(s->blocks.size());
  return n;
}

void Engine::Impl::publish_stats() {
  std::lock_guard lock(mutex);
  stats.queued = int64_t(queue.size());
  stats.running = int64_t(running.size());
  stats.kv_blocks_used = pool.n_used();
  stats.kv_blocks_cached = pool.n_cached();
}

// Removes ended sequences, giving their blocks back.
void Engine::Impl::reap() {
  int64_t n_ended = 0, n_generated = 0;
  for (auto it = running.begin(); it != running.end();) {
    if ((*it)->stop) {
      for (const int32_t b : (*it)->blocks) pool.release(b);
      ++n_ended;
      n_generated += (*it)->n_generated;
      it = running.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard lock(mutex);
  n_running = int64_t(running.size());
  stats.requests_finished += n_ended;
  stats.generated_tokens += n_generated;
}

// Ends cancelled requests, queued or running (unknown and finished ids are dropped). True if
// any ended.
bool Engine::Impl::apply_cancellations() {
  std::vector<Queued> dropped;
  std::unordered_set<RequestId> ids;
  {
    std::lock_guard lock(mutex);
    if (cancelled.empty()) return false;
    for (auto it = queue.begin(); it != queue.end();) {
      if (cancelled.erase(it->id) > 0) {
        dropped.push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
    ids.swap(cancelled);
    stats.queued = int64_t(queue.size());
  }
  for (Queued& q : dropped) {
    EngineOutput out;
    out.finished = true;
    out.stop = StopReason::interrupted;
    out.n_prompt = int64_t(q.request.prompt.size());
    q.on_output(out);
  }
  bool any = !dropped.empty();
  for (auto& s : running) {
    if (!s->stop && ids.contains(s->id)) {
      finish(*s, StopReason::interrupted);
      any = true;
    }
  }
  reap();
  return any;
}

// Queued requests start, first come first served, while there is room for another sequence
// and the KV blocks it may come to hold (less the cached prefix it takes) are there beside
// those the running ones may still take.
void Engine::Impl::admit() {
  const auto n_vocab = int32_t(model.config().n_vocab);
  std::unique_lock lock(mutex);
  while (int64_t(running.size()) < options.n_parallel && !queue.empty()) {
    const EngineRequest& r = queue.front().request;
    const int64_t n_prompt = int64_t(r.prompt.size());
    const int64_t limit = std::min(options.n_ctx, r.max_tokens >= 0 ? n_prompt + r.max_tokens : options.n_ctx);
    const int64_t n_reserved = blocks_for(std::max<int64_t>(limit, n_prompt + 1), options.block_tokens);
    std::vector<uint64_t> hashes;
    const std::vector<int32_t> prefix = cached_prefix(r.prompt, hashes);
    int64_t n_unheld = 0;  // cached blocks nobody holds: they leave the available ones
    for (const int32_t b : prefix) n_unheld += pool.refs(b) == 0 ? 1 : 0;
    const int64_t needed = n_reserved - int64_t(prefix.size()) + n_unheld;
    if (needed > pool.n_available() - reserved_ahead()) break;  // waits for blocks
    auto s = std::make_unique<Sequence>(std::move(queue.front()), tokenizer, n_vocab);
    queue.pop_front();
    for (const int32_t b : prefix) pool.retain(b);
    s->blocks = prefix;
    s->hashes = std::move(hashes);
    s->n_reserved = n_reserved;
    s->n_cached = s->n_evaluated = int64_t(prefix.size()) * options.block_tokens;
    for (const TokenId t : s->request.prompt) s->sampler.accept(t);  // the penalty history
    stats.prompt_tokens += n_prompt;
    stats.cached_tokens += s->n_cached;
    running.push_back(std::move(s));
  }
  n_running = int64_t(running.size());
  stats.queued = int64_t(queue.size());
}

// The step's batch: a decode token of each sequence that has one (taken round robin when they
// are more than n_batch), then prompt chunks in admission order while n_batch allows. The
// logits wanted: each decode token's and the last of a prompt.
void Engine::Impl::build_batch() {
  batch_tokens.clear(), batch_positions.clear(), batch_seq.clear(), batch_outputs.clear();
  batch_sequences.clear(), batch_counts.clear(), output_sequences.clear();
  int64_t budget = options.n_batch;
  auto add = [&](Sequence& s, int64_t n) {
    const int32_t seq = int32_t(batch_sequences.size());
    batch_sequences.push_back(&s);
    batch_counts.push_back(n);
    for (int64_t p = s.n_evaluated; p < s.n_evaluated + n; ++p) {
      batch_tokens.push_back(s.tokens[size_t(p)]);
      batch_positions.push_back(int32_t(p));
      batch_seq.push_back(seq);
    }
    if (s.n_evaluated + n == int64_t(s.tokens.size())) {  // then it samples
      batch_outputs.push_back(int32_t(batch_tokens.size() - 1));
      output_sequences.push_back(&s);
    }
    budget -= n;
  };
  const size_t n_running = running.size();
  for (size_t k = 0; k < n_running && budget > 0; ++k) {
    Sequence& s = *running[(decode_start + k) % n_running];
    if (s.n_evaluated >= s.n_prompt()) add(s, 1);
  }
  decode_start = n_running > 0 ? (decode_start + 1) % n_running : 0;
  for (size_t k = 0; k < n_running && budget > 0; ++k) {
    Sequence& s = *running[k];
    if (s.n_evaluated < s.n_prompt()) add(s, std::min(s.n_prompt() - s.n_evaluated, budget));
  }
  // Outputs in batch order, as the forward pass wants them.
  std::vector<size_t> order(batch_outputs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::ranges::sort(order, [&](size_t a, size_t b) { return batch_outputs[a] < batch_outputs[b]; });
  std::vector<int32_t> outputs(order.size());
  std::vector<Sequence*> sequences(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    outputs[i] = batch_outputs[order[i]];
    sequences[i] = output_sequences[order[i]];
  }
  batch_outputs.swap(outputs);
  output_sequences.swap(sequences);
}

bool Engine::Impl::step() {
  bool busy = apply_cancellations();
  admit();
  build_batch();
  if (!batch_tokens.empty()) {
    busy = true;
    const int64_t max_blocks = blocks_for(options.n_ctx, options.block_tokens);
    batch_table.assign(batch_sequences.size() * size_t(max_blocks), 0);
    for (size_t i = 0; i < batch_sequences.size(); ++i) {
      Sequence& s = *batch_sequences[i];
      take_blocks(s, s.n_evaluated + batch_counts[i]);
      std::ranges::copy(s.blocks, batch_table.begin() + int64_t(i) * max_blocks);
    }
    const KvLayout kv{.positions = batch_positions,
                      .seq = batch_seq,
                      .block_table = batch_table,
                      .max_blocks = max_blocks,
                      .block_tokens = options.block_tokens};
    const Tensor& out = transformer.forward({.tokens = batch_tokens, .kv = &kv, .outputs = batch_outputs}, cache);
    logits.resize(size_t(out.n_elements()));
    if (!logits.empty()) backend.read_f32(out, logits);
    for (size_t i = 0; i < batch_sequences.size(); ++i) {
      batch_sequences[i]->n_evaluated += batch_counts[i];
      publish_blocks(*batch_sequences[i]);
    }
    const auto n_vocab = size_t(model.config().n_vocab);
    for (size_t o = 0; o < output_sequences.size(); ++o) {
      sample(*output_sequences[o], std::span(logits).subspan(o * n_vocab, n_vocab));
    }
  }
  reap();
  publish_stats();
  return busy;
}

Engine::Engine(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(model, backend, tokenizer, options)) {}

Engine::~Engine() = default;

RequestId Engine::submit(EngineRequest request, OutputCallback on_output) {
  return impl_->submit(std::move(request), std::move(on_output));
}

void Engine::cancel(RequestId id) {
  impl_->cancel(id);
}

bool Engine::step() {
  return impl_->step();
}

void Engine::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    if (step()) continue;
    std::unique_lock lock(impl_->mutex);
    // The stop flag is not signalled through the condition variable: look again now and then.
    impl_->wake.wait_for(lock, std::chrono::milliseconds(20),
                         [&] { return !impl_->queue.empty() || !impl_->cancelled.empty() || stop.load(); });
  }
}

EngineStats Engine::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

const EngineOptions& Engine::options() const {
  return impl_->options;
}

}  // namespace strata
