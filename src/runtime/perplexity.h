// Perplexity by llama.cpp's method, so users can compare the numbers: the tokenized text
// (with BOS) is cut into chunks of n_ctx tokens, each chunk is evaluated from an empty
// context (its first token replaced by BOS when the model adds one), and only the second
// half of each chunk is scored.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace strata {

struct PerplexityResult {
  int64_t n_chunks = 0;
  int64_t n_scored = 0;      // predictions scored
  double ppl = 0;            // exp(mean negative log-likelihood)
  double ppl_error = 0;      // standard error of the estimate, as llama.cpp prints it
  std::vector<double> running;  // the estimate after each chunk
};

// `session` must have a context of at least n_ctx. max_chunks < 0: all. on_chunk is called
// after each chunk with its index and the running estimate.
PerplexityResult perplexity(Session& session, const Tokenizer& tokenizer, std::span<const TokenId> tokens,
                            int64_t n_ctx, int64_t max_chunks,
                            const std::function<void(int64_t chunk, double ppl)>& on_chunk, const Tap& tap = {});

}  // namespace strata
