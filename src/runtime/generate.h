// The decode loop: evaluate a prompt, then sample, stream and evaluate one token at a time
// until an end-of-generation token, the token limit, the end of the context or a stop request.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace strata {

enum class StopReason { end_of_generation, token_limit, context_full, interrupted, stop_string };
std::string_view stop_reason_text(StopReason reason);

struct GenerationStats {
  int64_t n_prompt = 0;
  int64_t n_generated = 0;
  double prompt_seconds = 0;
  double generation_seconds = 0;
  StopReason stop = StopReason::token_limit;
  TokenId last_token = -1;  // the last sampled token (the end-of-generation token if that stopped it)
  std::vector<TokenId> tokens;  // the generated tokens (without the end-of-generation token)
};

struct GenerationRequest {
  std::span<const TokenId> prompt;  // appended to the session at its current position
  int64_t n_predict = 128;          // < 0: until end of generation or context
  const std::function<void(std::string_view text)>* on_text = nullptr;  // streamed, whole UTF-8
  const std::atomic<bool>* stop = nullptr;  // set from another thread or a signal handler
  Tap tap;                                  // passed to every forward pass
  // Generation ends where the text first contains one of these; that text and what follows
  // is not passed to on_text (see StopStrings).
  std::vector<std::string> stop_strings = {};
  // End-of-generation tokens are never sampled (their logits are set to -inf).
  bool ignore_eos = false;
};

// Prompt tokens are added to the sampler's penalty history, as llama.cpp does.
GenerationStats generate(Session& session, const Tokenizer& tokenizer, Sampler& sampler,
                         const GenerationRequest& request);

// The one-line timing summary printed after a run.
std::string format_stats(const GenerationStats& stats);

// Peak resident memory of this process in bytes (0 if unknown).
size_t peak_rss_bytes();

}  // namespace strata
