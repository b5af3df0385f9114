// The engine: many sequences served by one model on one backend. Requests are queued; each
// step() runs one forward pass over a batch that mixes prompt chunks and decode tokens of the
// running sequences (continuous batching, chunked prefill: at most n_batch tokens, decode
// tokens first) over a paged KV cache whose blocks are shared by sequences with the same
// prefix (runtime/kv_blocks.h). Every request has its own sampler, so a seed gives the same
// tokens whether the request ran alone or batched with others.
//
// KV blocks: a request is admitted when the blocks it may come to hold (its prompt and
// max_tokens, at most n_ctx) fit beside what the running ones may still take, so a running
// sequence never waits for a block; until then it waits in the queue, first come first served.
//
// Threads: submit(), cancel() and stats() may be called from any thread; step() and the
// output callbacks run on the one thread that drives the engine (run() or a caller's loop).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "runtime/generate.h"
#include "sampling/params.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct EngineOptions {
  int64_t n_ctx = 0;          // the most tokens one sequence holds (0: default_context())
  int64_t n_parallel = 4;     // the most sequences running at once
  int64_t kv_tokens = 0;      // KV cache budget in tokens over all sequences (0: n_ctx * n_parallel), >= n_ctx
  int64_t block_tokens = 16;  // tokens per KV block
  int64_t n_batch = 512;      // the most tokens one forward pass takes (prompt chunks + decode tokens)
  int64_t max_queued = 64;    // requests waiting beyond this are refused (EngineFull)
  DType kv_type = DType::F16;
  bool prefix_cache = true;  // reuse the cached blocks of a prompt's prefix (else every prompt is computed)
};

struct TokenLogprob {
  TokenId token = -1;
  float logprob = 0;  // natural log of the probability after temperature, before truncation
};

struct EngineRequest {
  std::vector<TokenId> prompt;  // not empty
  SamplingParams sampling = {};
  int64_t max_tokens = -1;  // < 0: until end of generation or the end of the context
  std::vector<std::string> stop_strings = {};
  bool ignore_eos = false;
  int32_t top_logprobs = -1;  // < 0: none; 0..20: each token's logprob and the N best
};

// Delivered for every sampled token (text may be empty while a UTF-8 sequence or a possible stop
// string is held back) and once more with finished = true.
struct EngineOutput {
  std::string text;               // new text, whole UTF-8, stop strings removed
  TokenId token = -1;             // the sampled token (-1 on the final output)
  TokenLogprob logprob;           // when top_logprobs >= 0
  std::vector<TokenLogprob> top;  // the top_logprobs best, best first
  bool finished = false;
  StopReason stop = StopReason::token_limit;  // when finished
  int64_t n_prompt = 0;                       // prompt tokens
  int64_t n_cached = 0;                       // of them, found in the prefix cache (not recomputed)
  int64_t n_generated = 0;
};

using RequestId = uint64_t;
using OutputCallback = std::function<void(const EngineOutput&)>;

struct EngineStats {
  int64_t queued = 0, running = 0;
  int64_t kv_blocks_used = 0, kv_blocks_cached = 0, kv_blocks_total = 0;  // held by sequences; kept for reuse
  int64_t requests_finished = 0, prompt_tokens = 0, generated_tokens = 0, cached_tokens = 0;
};

// Thrown by submit() when max_queued requests already wait (HTTP 429/503).
struct EngineFull : Error {
  using Error::Error;
};

class Engine {
public:
  // Allocates the KV budget on the backend; throws strata::Error naming the sizes when it does
  // not fit (check_session_memory).
  Engine(const Model& model, Backend& backend, const Tokenizer& tokenizer, const EngineOptions& options);
  ~Engine();

  // Queues a request. Throws strata::Error (nothing queued) when the prompt is empty, holds an
  // id >= n_vocab, or does not fit in n_ctx with room for one generated token (the message names
  // both lengths); EngineFull when the queue is full. A prompt is never truncated.
  RequestId submit(EngineRequest request, OutputCallback on_output);
  // Ends a request (queued or running) and frees its blocks; its callback gets a final output
  // with StopReason::interrupted. Unknown or finished ids are ignored.
  void cancel(RequestId id);

  // One forward pass over the running sequences (admitting queued ones first); false when idle.
  bool step();
  // Steps until `stop` is set, waiting without spinning while idle.
  void run(const std::atomic<bool>& stop);

  EngineStats stats() const;
  const EngineOptions& options() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
