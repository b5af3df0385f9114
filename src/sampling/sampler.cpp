#include "sampling/sampler.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  validate(params_);
  if (n_vocab_ < 1) fail("sampler: vocabulary size must be >= 1, got {}", n_vocab_);
  const auto n = static_cast<size_t>(n_vocab_);
  cands_.reserve(n);
  if (params_.top_p < 1.0f) scratch_.reserve(params_.top_k > 0 ? std::min(n, static_cast<size_t>(params_.top_k)) : n);
  if (params_.penalties_active()) {
    token_counts_.assign(n, 0);
    if (params_.penalty_last_n > 0) {
      history_.reserve(static_cast<size_t>(params_.penalty_last_n));
      window_counts_.reserve(std::min(n, static_cast<size_t>(params_.penalty_last_n)));
    } else {
      window_counts_.reserve(n);  // distinct tokens of an unbounded history
    }
  }
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_)
    fail("sampler: accepted token {} is outside the vocabulary of {}", token, n_vocab_);
  if (!params_.penalties_active()) return;
  const auto capacity = static_cast<size_t>(params_.penalty_last_n);  // unused when -1
  if (params_.penalty_last_n < 0 || history_.size() < capacity) {
    history_.push_back(token);
    return;
  }
  history_[history_next_] = token;
  history_next_ = (history_next_ + 1) % capacity;
}

void Sampler::reset() {
  history_.clear();
  history_next_ = 0;
  rng_.seed(params_.seed);
}

// Counts the tokens of the window (the whole of history_, which holds at most
// penalty_last_n tokens) with a vocab-sized array that is zeroed again afterwards.
void Sampler::count_window() {
  window_counts_.clear();
  for (int32_t t : history_) {
    if (token_counts_[static_cast<size_t>(t)]++ == 0) window_counts_.push_back({t, 0});
  }
  for (TokenCount& tc : window_counts_) {
    tc.count = token_counts_[static_cast<size_t>(tc.id)];
    token_counts_[static_cast<size_t>(tc.id)] = 0;
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.size() != static_cast<size_t>(n_vocab_)) {
    fail("sampler: got {} logits for a vocabulary of {}", logits.size(), n_vocab_);
  }
  fill_candidates(logits, cands_);  // id order
  if (params_.penalties_active() && !history_.empty()) {
    count_window();
    apply_penalties(cands_, window_counts_, params_);
  }
  if (params_.temperature == 0.0f) return argmax_candidate(cands_);

  apply_top_k(cands_, params_.top_k);  // each stage returns at once when it is off
  apply_top_p(cands_, params_.top_p, scratch_);
  apply_min_p(cands_, params_.min_p);
  apply_temperature(cands_, params_.temperature);
  softmax_candidates(cands_);
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // top 53 bits -> [0, 1)
  return draw_candidate(cands_, u);
}

}  // namespace strata
