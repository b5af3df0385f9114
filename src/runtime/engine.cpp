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

#include "runtime/logprobs.h"
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
  return o;
}

int64_t blocks_for(int64_t tokens, int64_t block_tokens) {
  return (tokens + block_tokens - 1) / block_tokens;
}

}  // namespace

struct Engine::Impl {
  // A request waiting for a slot.
  struct Queued {
    RequestId id;
    EngineRequest request;
    OutputCallback on_output;
  };
  // A request being evaluated in a slot (one Session each).
  struct Sequence {
    Sequence(Queued q, const Tokenizer& tokenizer, int32_t n_vocab, size_t slot)
        : id(q.id),
          request(std::move(q.request)),
          on_output(std::move(q.on_output)),
          sampler(request.sampling, n_vocab),
          decoder(tokenizer, {.skip_special = true, .strip_space_prefix = false}),
          stops(request.stop_strings),
          slot(slot) {}
    RequestId id;
    EngineRequest request;
    OutputCallback on_output;
    Sampler sampler;
    StreamDecoder decoder;
    StopStrings stops;
    size_t slot;
    int64_t n_evaluated = 0;  // tokens in the slot's cache (prompt, then generated)
    int64_t n_generated = 0;
    TokenId next = -1;               // sampled, to be evaluated by the next step
    std::optional<StopReason> stop;  // set when the sequence has ended
  };

  Impl(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& options)
      : model(model), backend(backend), tokenizer(tokenizer), options(resolved(model.config(), options)) {
    const SessionOptions so{.n_ctx = this->options.n_ctx,
                            .kv_type = this->options.kv_type,
                            .n_batch = std::min(this->options.n_batch, this->options.n_ctx)};
    for (int64_t i = 0; i < this->options.n_parallel; ++i) {
      slots.push_back(std::make_unique<Session>(model, backend, so));
      free_slots.push_back(size_t(i));
    }
    for (TokenId id = 0; id < tokenizer.n_tokens(); ++id)
      if (tokenizer.is_eog(id)) eog.push_back(id);
    stats.kv_blocks_total = this->options.n_parallel * blocks_for(this->options.n_ctx, this->options.block_tokens);
  }

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
  int64_t n_free_slots = 0;  // slots not running a sequence (mirrors free_slots.size())
  EngineStats stats;

  // The engine thread's own.
  std::vector<std::unique_ptr<Session>> slots;
  std::vector<size_t> free_slots;
  std::vector<std::unique_ptr<Sequence>> running;  // in admission order
  std::vector<float> masked;                       // logits with end-of-generation masked

  RequestId submit(EngineRequest request, OutputCallback on_output);
  void cancel(RequestId id);
  bool step();
  void evaluate(Sequence& s);
  void sample(Sequence& s, std::span<const float> logits);
  void deliver_token(Sequence& s, TokenId id, std::span<const float> logits);
  void finish(Sequence& s, StopReason reason);
  void publish_stats();
  void reap();
  bool apply_cancellations();
  void admit();
};

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
  const int64_t waiting = int64_t(queue.size()) - n_free_slots;
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
  out.n_prompt = int64_t(s.request.prompt.size());
  out.n_generated = s.n_generated;
  s.stop = reason;
  s.on_output(out);
}

void Engine::Impl::deliver_token(Sequence& s, TokenId id, std::span<const float> logits) {
  EngineOutput out;
  out.token = id;
  out.text = s.stops.push(s.decoder.push(id));
  out.n_prompt = int64_t(s.request.prompt.size());
  out.n_generated = s.n_generated;
  if (s.request.top_logprobs >= 0) {
    const float temperature = s.request.sampling.temperature > 0 ? s.request.sampling.temperature : 1.0f;
    token_logprobs(logits, temperature, id, s.request.top_logprobs, out.logprob, out.top);
  }
  s.on_output(out);
}

// Samples the token after `logits` (the last evaluated token's), delivers it and decides
// whether the sequence goes on.
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
  s.next = id;
}

// Runs the sequence's next tokens (a prompt chunk of at most n_batch, or its sampled token)
// and samples after them once the prompt is done.
void Engine::Impl::evaluate(Sequence& s) {
  Session& session = *slots[s.slot];
  const auto& prompt = s.request.prompt;
  const int64_t n_prompt = int64_t(prompt.size());
  std::span<const float> logits;
  if (s.n_evaluated < n_prompt) {
    const int64_t n = std::min(n_prompt - s.n_evaluated, options.n_batch);
    logits = session.eval(std::span(prompt).subspan(size_t(s.n_evaluated), size_t(n)));
    s.n_evaluated += n;
    if (s.n_evaluated < n_prompt) return;
  } else {
    const TokenId next[1] = {s.next};
    logits = session.eval(next);
    s.n_evaluated += 1;
  }
  sample(s, logits);
}

void Engine::Impl::publish_stats() {
  std::lock_guard lock(mutex);
  stats.queued = int64_t(queue.size());
  stats.running = int64_t(running.size());
  stats.kv_blocks_used = 0;
  for (const auto& s : running) stats.kv_blocks_used += blocks_for(s->n_evaluated, options.block_tokens);
}

// Removes ended sequences, giving their slots back.
void Engine::Impl::reap() {
  int64_t n_ended = 0, n_generated = 0;
  for (auto it = running.begin(); it != running.end();) {
    if ((*it)->stop) {
      free_slots.push_back((*it)->slot);
      ++n_ended;
      n_generated += (*it)->n_generated;
      it = running.erase(it);
    } else {
      ++it;
    }
  }
  std::lock_guard lock(mutex);
  n_free_slots += n_ended;
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

// Queued requests take the free slots, first come first served.
void Engine::Impl::admit() {
  const auto n_vocab = int32_t(model.config().n_vocab);
  std::lock_guard lock(mutex);
  while (!free_slots.empty() && !queue.empty()) {
    const size_t slot = free_slots.back();
    free_slots.pop_back();
    --n_free_slots;
    auto s = std::make_unique<Sequence>(std::move(queue.front()), tokenizer, n_vocab, slot);
    queue.pop_front();
    // A fresh slot, and the prompt in the sampler's penalty history.
    slots[slot]->rewind(0);
    for (const TokenId t : s->request.prompt) s->sampler.accept(t);
    stats.prompt_tokens += int64_t(s->request.prompt.size());
    running.push_back(std::move(s));
  }
  stats.queued = int64_t(queue.size());
}

bool Engine::Impl::step() {
  bool busy = apply_cancellations();
  admit();
  for (auto& s : running) {
    evaluate(*s);
    busy = true;
  }
  reap();
  publish_stats();
  return busy;
}

Engine::Engine(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& options)
    : impl_(std::make_unique<Impl>(model, backend, tokenizer, options)) {
  impl_->n_free_slots = impl_->options.n_parallel;
}

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
