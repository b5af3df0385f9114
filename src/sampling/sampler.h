// The sampler chain: logits in, one token id out.
//
//   Sampler sampler(params, n_vocab);
//   for each prompt token t: sampler.accept(t);          // history for the penalties
//   loop: id = sampler.sample(logits); sampler.accept(id);
//
// sample() applies, in llama.cpp's default order: penalties over the last penalty_last_n
// accepted tokens, top-k, top-p, min-p, temperature, then a draw from the softmax. With
// temperature 0 it returns the argmax of the penalised logits (lowest id on ties) and
// consumes no random numbers.
//
// Random numbers: std::mt19937_64 seeded with params.seed (its output sequence is fixed by
// the C++ standard); a draw takes the top 53 bits of one output as u in [0, 1). The same
// seed, params and inputs give the same tokens on every platform.
//
// Buffers are sized for the vocabulary in the constructor; sample() does not allocate.
// With penalty_last_n = -1 accept() keeps the whole history and grows it (amortised).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "sampling/params.h"
#include "sampling/stages.h"

namespace strata {

class Sampler {
public:
  // Validates params (see validate()); n_vocab must be >= 1.
  Sampler(const SamplingParams& params, int32_t n_vocab);

  // logits: [n_vocab]. Throws strata::Error on a size mismatch or a NaN / +inf logit.
  int32_t sample(std::span<const float> logits);

  // Records a token (prompt or generated) in the penalty history; id must be < n_vocab.
  void accept(int32_t token);

  // Forgets the history and restarts the random sequence from the seed.
  void reset();

  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

private:
  void count_window();  // fills window_counts_ from history_

  SamplingParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<Candidate> cands_;           // [n_vocab] working list
  std::vector<Candidate> scratch_;         // [n_vocab] top-p's working copy
  std::vector<int32_t> history_;           // ring buffer of the last penalty_last_n tokens (all if -1)
  size_t history_next_ = 0;                // next slot to overwrite once the ring is full
  std::vector<int32_t> token_counts_;      // [n_vocab] scratch, all zero between calls
  std::vector<TokenCount> window_counts_;  // distinct tokens of the window with their counts
};

}  // namespace strata
