// The stages of the sampler chain as small functions on a list of candidates, so that
// each can be used and tested on its own. Sampler (sampler.h) runs them in llama.cpp's
// default order: penalties, top-k, top-p, min-p, temperature, softmax, draw.
//
// "Sorted" means by logit, largest first, the lower id first on ties: a total order, so
// results never depend on how the standard library's nth_element arranges equal keys.
// apply_top_k leaves the kept candidates sorted; every other stage keeps the order it was
// given. No stage allocates (lists only shrink; top-p's scratch is the caller's), except
// the two-argument apply_top_p.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sampling/params.h"

namespace strata {

struct Candidate {
  int32_t id;
  float logit;
  float prob;  // set by softmax_candidates (apply_top_p leaves unnormalised weights in it)
};

// How often a token occurs in the penalty window.
struct TokenCount {
  int32_t id;
  int32_t count;  // > 0
};

// Fills `out` with one candidate per logit, in id order (prob = 0). A NaN or +inf logit is
// an error naming the token id; -inf logits are kept and are never chosen.
void fill_candidates(std::span<const float> logits, std::vector<Candidate>& out);

// Repeat, frequency and presence penalties of `params` applied to the tokens in `counts`
// (ids must be < cands.size()); `cands` must be in id order (cands[i].id == i):
//   logit > 0 ? logit / repeat_penalty : logit * repeat_penalty
//   then logit -= count * frequency_penalty + (count > 0) * presence_penalty
void apply_penalties(std::span<Candidate> cands, std::span<const TokenCount> counts, const SamplingParams& params);

// Keeps the k largest logits, sorted (k >= size: all, sorted). k <= 0 (off): unchanged.
void apply_top_k(std::vector<Candidate>& cands, int32_t k);

// Nucleus: with probabilities softmax(logits) over the whole list, keeps the smallest
// prefix of the sorted list whose cumulative probability is >= p (at least one), in the
// given order. p >= 1: unchanged. O(n), no sort of the list: a histogram of the weights
// by logit finds the bucket that holds the cutoff; only that bucket's candidates are
// copied to `scratch` (overwritten; reuse it across calls to avoid allocating) and ranked.
// Overwrites prob with the unnormalised weight exp(logit - max).
void apply_top_p(std::vector<Candidate>& cands, float p, std::vector<Candidate>& scratch);
void apply_top_p(std::vector<Candidate>& cands, float p);  // with a scratch of its own

// Keeps the candidates whose probability is >= p times the largest probability, that is
// logit >= max_logit + log(p). p <= 0: unchanged. Keeps the order.
void apply_min_p(std::vector<Candidate>& cands, float p);

// Scales the logits by 1 / t relative to the largest: logit' = (logit - max) / t. This has
// the same softmax as logit / t and cannot overflow for tiny t. Requires t > 0.
void apply_temperature(std::vector<Candidate>& cands, float t);

// prob = exp(logit - max) / sum (the sum accumulated in double). All -inf is an error.
void softmax_candidates(std::vector<Candidate>& cands);

// The candidate whose cumulative probability interval [c_{i-1}, c_i) holds u * sum(prob),
// for u in [0, 1); candidates of zero probability are never returned. Returns the id.
int32_t draw_candidate(std::span<const Candidate> cands, double u);

// The id of the largest logit, lowest id on ties (NaN / +inf: error; all -inf: error).
int32_t argmax_candidate(std::span<const Candidate> cands);

// Largest minus second-largest logit (0 on a tie, +inf for a vocab of 1 or when only one
// logit is finite). `strata verify` reports near-ties with it. NaN / +inf: error.
float top2_margin(std::span<const float> logits);

}  // namespace strata
