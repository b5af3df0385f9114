#include "sampling/stages.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace strata {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr size_t kHeapTopK = 1024;  // top-k up to this size uses a heap instead of nth_element

// Larger logit first; the lower id breaks ties, so the order is total and deterministic.
bool before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void check_logit(int32_t id, float logit) {
  if (std::isnan(logit)) fail("sampler: logit of token {} is NaN", id);
  if (logit == std::numeric_limits<float>::infinity()) fail("sampler: logit of token {} is +inf", id);
}

float max_logit(std::span<const Candidate> cands) {
  float m = kNegInf;
  for (const Candidate& c : cands) m = std::max(m, c.logit);
  return m;
}

// Makes [from, to) hold the next largest candidates in sorted order, given that [0, from)
// already holds the largest ones sorted.
void sort_prefix(std::vector<Candidate>& cands, size_t from, size_t to) {
  auto first = cands.begin() + static_cast<std::ptrdiff_t>(from);
  auto last = cands.begin() + static_cast<std::ptrdiff_t>(to);
  if (to < cands.size()) std::nth_element(first, last, cands.end(), before);
  std::sort(first, last, before);
}

// Top-p's histogram: buckets of 1/32 nat of distance below the max logit; the last one
// also takes everything further than 32 nats (weight < 1.3e-14 each) and -inf.
constexpr size_t kTopPBuckets = 1024;
constexpr float kTopPBucketsPerNat = 32.0f;

size_t top_p_bucket(float max, float logit) {
  const float scaled = (max - logit) * kTopPBucketsPerNat;  // >= 0; +inf for -inf logits
  return scaled < static_cast<float>(kTopPBuckets - 1) ? static_cast<size_t>(scaled) : kTopPBuckets - 1;
}

// The candidate at which the running sum of weights (prob), in sorted order, first reaches
// `target` (the last one when rounding keeps the sum just below); s is not empty. A weighted quickselect:
// nth_element halves the range that holds the cutoff, so the cost is O(n), not a sort.
Candidate top_p_cutoff(std::vector<Candidate>& s, double target) {
  size_t lo = 0;
  size_t hi = s.size();
  double above = 0.0;  // weight of s[0, lo), all larger than s[lo, n) and short of target
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    const auto at = [&](size_t i) { return s.begin() + static_cast<std::ptrdiff_t>(i); };
    std::nth_element(at(lo), at(mid), at(hi), before);
    double upper = 0.0;  // weight of s[lo, mid), the larger half
    for (size_t i = lo; i < mid; ++i) upper += s[i].prob;
    if (above + upper >= target) {
      hi = mid;
    } else {
      above += upper;
      lo = mid;
    }
  }
  std::sort(s.begin() + static_cast<std::ptrdiff_t>(lo), s.begin() + static_cast<std::ptrdiff_t>(hi), before);
  for (size_t i = lo; i < hi; ++i) {
    above += s[i].prob;
    if (above >= target) return s[i];
  }
  return s[hi - 1];
}

}  // namespace

void fill_candidates(std::span<const float> logits, std::vector<Candidate>& out) {
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    check_logit(id, logits[i]);
    out[i] = Candidate{id, logits[i], 0.0f};
  }
}

void apply_penalties(std::span<Candidate> cands, std::span<const TokenCount> counts, const SamplingParams& params) {
  for (const TokenCount& tc : counts) {
    if (tc.id < 0 || static_cast<size_t>(tc.id) >= cands.size()) {
      fail("sampler: penalised token {} is outside the vocabulary of {}", tc.id, cands.size());
    }
    Candidate& c = cands[static_cast<size_t>(tc.id)];
    if (c.id != tc.id) fail("sampler: apply_penalties needs candidates in id order (slot {} holds {})", tc.id, c.id);
    if (tc.count <= 0) continue;
    if (c.logit > 0.0f) {
      c.logit /= params.repeat_penalty;
    } else {
      c.logit *= params.repeat_penalty;
    }
    c.logit -= static_cast<float>(tc.count) * params.frequency_penalty + params.presence_penalty;
    if (std::isnan(c.logit) || c.logit == std::numeric_limits<float>::infinity()) {
      fail("sampler: penalties turned the logit of token {} into {}", c.id, c.logit);
    }
  }
}

void apply_top_k(std::vector<Candidate>& cands, int32_t k) {
  if (k <= 0) return;
  const size_t keep = std::min(cands.size(), static_cast<size_t>(k));
  if (keep <= kHeapTopK && keep < cands.size()) {
    // One pass keeping the best `keep` in a heap in the front slots, its top the worst of
    // them: most candidates cost one comparison.
    const auto first = cands.begin();
    const auto heap_end = first + static_cast<std::ptrdiff_t>(keep);
    std::make_heap(first, heap_end, before);
    for (auto it = heap_end; it != cands.end(); ++it) {
      if (!before(*it, *first)) continue;
      std::pop_heap(first, heap_end, before);  // the worst moves to heap_end - 1
      *(heap_end - 1) = *it;
      std::push_heap(first, heap_end, before);
    }
    std::sort(first, heap_end, before);
  } else {
    sort_prefix(cands, 0, keep);
  }
  cands.resize(keep);
}

void apply_top_p(std::vector<Candidate>& cands, float p, std::vector<Candidate>& scratch) {
  if (p >= 1.0f || cands.size() <= 1) return;
  const float max = max_logit(cands);
  if (max == kNegInf) return;  // nothing finite; softmax reports it
  // Pass 1: weights exp(logit - max) (kept in prob) into a histogram by distance from the max.
  std::array<double, kTopPBuckets> mass{};
  for (Candidate& c : cands) {
    c.prob = std::exp(c.logit - max);
    mass[top_p_bucket(max, c.logit)] += c.prob;
  }
  const double target = static_cast<double>(p) * std::accumulate(mass.begin(), mass.end(), 0.0);
  // The bucket where the cumulative weight reaches the target holds the cutoff.
  size_t b = 0;
  double above = 0.0;  // weight of buckets [0, b)
  while (b + 1 < kTopPBuckets && above + mass[b] < target) above += mass[b++];
  scratch.clear();
  for (const Candidate& c : cands) {
    if (top_p_bucket(max, c.logit) == b) scratch.push_back(c);
  }
  if (scratch.empty()) return;  // rounding ran past the last candidate: keep all
  const Candidate last = top_p_cutoff(scratch, target - above);
  // Keep everything up to and including the cutoff in the sorted order, in the given order.
  const auto dropped = std::remove_if(cands.begin(), cands.end(), [&](const Candidate& c) { return before(last, c); });
  cands.erase(dropped, cands.end());
}

void apply_top_p(std::vector<Candidate>& cands, float p) {
  std::vector<Candidate> scratch;
  apply_top_p(cands, p, scratch);
}

void apply_min_p(std::vector<Candidate>& cands, float p) {
  if (p <= 0.0f || cands.empty()) return;
  const float max = max_logit(cands);
  if (max == kNegInf) return;  // nothing finite; softmax reports it
  // p_i >= p * p_max  <=>  logit_i >= max + log(p); the largest is always kept.
  const double threshold = static_cast<double>(max) + std::log(static_cast<double>(p));
  const auto dropped =
      std::remove_if(cands.begin(), cands.end(), [&](const Candidate& c) { return !(c.logit >= threshold); });
  cands.erase(dropped, cands.end());
}

void apply_temperature(std::vector<Candidate>& cands, float t) {
  if (!(t > 0.0f) || !std::isfinite(t)) fail("sampler: temperature must be > 0 to scale logits, got {}", t);
  const float max = max_logit(cands);
  if (max == kNegInf) return;  // nothing finite to scale; softmax reports it
  for (Candidate& c : cands) c.logit = (c.logit - max) / t;
}

void softmax_candidates(std::vector<Candidate>& cands) {
  const float max = max_logit(cands);
  if (cands.empty() || max == kNegInf) fail("sampler: no candidate token has a finite logit");
  double sum = 0.0;
  for (Candidate& c : cands) {
    c.prob = std::exp(c.logit - max);
    sum += c.prob;
  }
  for (Candidate& c : cands) c.prob = static_cast<float>(c.prob / sum);
}

int32_t draw_candidate(std::span<const Candidate> cands, double u) {
  double total = 0.0;
  for (const Candidate& c : cands) total += c.prob;
  if (!(total > 0.0)) fail("sampler: no candidate token has a non-zero probability");
  const double target = u * total;
  double cumulative = 0.0;
  int32_t last_positive = -1;
  for (const Candidate& c : cands) {
    if (c.prob <= 0.0f) continue;
    cumulative += c.prob;
    last_positive = c.id;
    if (target < cumulative) return c.id;
  }
  return last_positive;  // u * total rounded past the running sum
}

int32_t argmax_candidate(std::span<const Candidate> cands) {
  int32_t best = -1;
  float best_logit = kNegInf;
  for (const Candidate& c : cands) {
    check_logit(c.id, c.logit);
    if (c.logit > best_logit || (c.logit == best_logit && best >= 0 && c.id < best)) {
      best = c.id;
      best_logit = c.logit;
    }
  }
  if (best < 0) fail("sampler: no candidate token has a finite logit");
  return best;
}

float top2_margin(std::span<const float> logits) {
  if (logits.empty()) fail("top2_margin: empty logits");
  float first = kNegInf;
  float second = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    check_logit(static_cast<int32_t>(i), logits[i]);
    if (logits[i] > first) {
      second = first;
      first = logits[i];
    } else if (logits[i] > second) {
      second = logits[i];
    }
  }
  if (first == kNegInf) fail("top2_margin: every logit is -inf");
  if (second == kNegInf) return std::numeric_limits<float>::infinity();
  return first - second;
}

}  // namespace strata
