// Sampling parameters, with the same meanings and "off" values as llama.cpp's flags.
#pragma once

#include <cstdint>

namespace strata {

struct SamplingParams {
  float temperature = 0.8f;        // --temp; 0 = greedy (argmax of the penalised logits)
  int32_t top_k = 40;              // --top-k; 0 = off
  float top_p = 0.95f;             // --top-p; 1 = off
  float min_p = 0.05f;             // --min-p; 0 = off
  float repeat_penalty = 1.0f;     // --repeat-penalty; 1 = off
  float frequency_penalty = 0.0f;  // --frequency-penalty; 0 = off
  float presence_penalty = 0.0f;   // --presence-penalty; 0 = off
  int32_t penalty_last_n = 64;     // --repeat-last-n; tokens of history penalised; -1 = all, 0 = off
  uint64_t seed = 0;               // --seed; a fixed seed gives the same sequence of draws

  bool penalties_active() const {
    return penalty_last_n != 0 && (repeat_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f);
  }
};

// Throws strata::Error naming the flag when a parameter is out of range or not a number,
// e.g. "--top-p must be in (0, 1], got 1.5".
void validate(const SamplingParams& params);

}  // namespace strata
