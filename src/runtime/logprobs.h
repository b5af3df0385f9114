// Log-probabilities of sampled tokens (OpenAI's logprobs / top_logprobs): the log-softmax of
// the logits divided by the temperature, over the whole vocabulary (before top-k/top-p/min-p
// truncation). Tokens masked to -inf get -inf.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/engine.h"

namespace strata {

// Fills `chosen` with token `id`'s log-probability and `top` with the n_top most probable
// tokens, best first (ties: lower id first). logits: [n_vocab]; temperature > 0.
void token_logprobs(std::span<const float> logits, float temperature, TokenId id, int32_t n_top, TokenLogprob& chosen,
                    std::vector<TokenLogprob>& top);

}  // namespace strata
