// Tests of the sampling layer (src/sampling/): each stage against hand-computed values,
// then the whole chain: greedy ties, seeds, the empirical distribution of draws, the
// penalty window, bad parameters and bad logits.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "sampling/stages.h"

// Counts heap allocations so that a test can check that sample() does not allocate. GCC
// cannot see that new and delete are both replaced here, hence the pragma.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<long> g_allocations{0};
void* counted_alloc(std::size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
void* counted_alloc_or_throw(std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t size) {
  return counted_alloc_or_throw(size);
}
void* operator new[](std::size_t size) {
  return counted_alloc_or_throw(size);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_alloc(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace strata {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<Candidate> candidates(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  fill_candidates(logits, c);
  return c;
}

std::vector<int32_t> ids(const std::vector<Candidate>& cands) {
  std::vector<int32_t> out;
  for (const Candidate& c : cands) out.push_back(c.id);
  return out;
}

std::vector<float> log_of(const std::vector<double>& probs, double shift = 0.0) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p) + shift));
  return out;
}

// Every stage off: temperature 1 and a plain draw from softmax(logits).
SamplingParams plain(uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- stages ----

TEST(Stages, FillRejectsNanAndPlusInfNamingTheToken) {
  std::vector<Candidate> c;
  EXPECT_EQ(error_of([&] { fill_candidates(std::vector<float>{0, 1, NAN}, c); }), "sampler: logit of token 2 is NaN");
  EXPECT_EQ(error_of([&] { fill_candidates(std::vector<float>{kInf, 1}, c); }), "sampler: logit of token 0 is +inf");
  fill_candidates(std::vector<float>{-kInf, 1}, c);
  EXPECT_EQ(c.size(), 2u);
}

TEST(Stages, PenaltyArithmeticOnPositiveZeroAndNegativeLogits) {
  auto c = candidates({2.0f, -2.0f, 1.0f, 0.5f, 0.0f, -kInf});
  SamplingParams p;
  p.repeat_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  const std::vector<TokenCount> counts = {{0, 2}, {1, 1}, {3, 1}, {4, 3}, {5, 1}};
  apply_penalties(c, counts, p);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f / 2 - 2 * 0.5f - 0.25f);   // positive: divided
  EXPECT_FLOAT_EQ(c[1].logit, -2.0f * 2 - 1 * 0.5f - 0.25f);  // negative: multiplied
  EXPECT_FLOAT_EQ(c[2].logit, 1.0f);                          // not in the window
  EXPECT_FLOAT_EQ(c[3].logit, 0.5f / 2 - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(c[4].logit, 0.0f - 3 * 0.5f - 0.25f);  // zero stays zero under the repeat penalty
  EXPECT_EQ(c[5].logit, -kInf);
}

TEST(Stages, PenaltiesNeedIdOrderAndIdsInRange) {
  auto c = candidates({1, 2, 3});
  SamplingParams p;
  p.repeat_penalty = 1.5f;
  EXPECT_NE(error_of([&] {
              apply_penalties(c, std::vector<TokenCount>{{3, 1}}, p);
            }).find("token 3 is outside"),
            std::string::npos);
  std::swap(c[0], c[1]);
  EXPECT_NE(error_of([&] {
              apply_penalties(c, std::vector<TokenCount>{{0, 1}}, p);
            }).find("id order"),
            std::string::npos);
}

TEST(Stages, TopKKeepsExactlyTheKLargestSorted) {
  auto c = candidates({0.1f, 3.0f, -1.0f, 3.0f, 2.0f, 5.0f});
  apply_top_k(c, 3);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{5, 1, 3}));  // the tie 1/3: lower id first

  auto off = candidates({0.1f, 3.0f, -1.0f});
  apply_top_k(off, 0);
  EXPECT_EQ(ids(off), (std::vector<int32_t>{0, 1, 2}));
  apply_top_k(off, 10);
  EXPECT_EQ(ids(off), (std::vector<int32_t>{1, 0, 2}));
}

TEST(Stages, TopKMatchesAFullSortOnRandomLogits) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> logits(5003);
  for (float& x : logits) x = dist(rng);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (int32_t k : {1, 2, 37, 1000}) {
    auto c = candidates(logits);
    apply_top_k(c, k);
    EXPECT_EQ(ids(c), std::vector<int32_t>(order.begin(), order.begin() + k)) << "k=" << k;
  }
}

TEST(Stages, TopPKeepsTheSmallestPrefixReachingP) {
  // probabilities 0.5 (id 0), 0.2 (id 1), 0.25 (id 2), 0.05 (id 3); the shift must not matter
  const auto logits = log_of({0.5, 0.2, 0.25, 0.05}, 3.0);
  auto run = [&](float p) {
    auto c = candidates(logits);
    apply_top_p(c, p);
    return ids(c);
  };
  EXPECT_EQ(run(0.3f), (std::vector<int32_t>{0}));        // 0.5 >= 0.3
  EXPECT_EQ(run(0.6f), (std::vector<int32_t>{0, 2}));     // 0.5 + 0.25
  EXPECT_EQ(run(0.9f), (std::vector<int32_t>{0, 1, 2}));  // + 0.2, in the given (id) order
  EXPECT_EQ(run(0.96f), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(run(1.0f), (std::vector<int32_t>{0, 1, 2, 3}));  // off: unchanged
  EXPECT_EQ(run(1e-6f), (std::vector<int32_t>{0}));          // at least one

  auto sorted = candidates(logits);  // a sorted list stays sorted
  apply_top_k(sorted, 4);
  apply_top_p(sorted, 0.9f);
  EXPECT_EQ(ids(sorted), (std::vector<int32_t>{0, 2, 1}));
}

TEST(Stages, TopPStopsWhereTheSumEqualsPExactly) {
  // Equal logits have weight exactly 1, so these sums are exact: >= p, not > p.
  auto four = candidates({2.0f, 2.0f, 2.0f, 2.0f});
  apply_top_p(four, 0.5f);
  EXPECT_EQ(ids(four), (std::vector<int32_t>{0, 1}));
  auto many = candidates(std::vector<float>(256, -1.0f));  // long enough for the quickselect
  apply_top_p(many, 0.5f);
  ASSERT_EQ(many.size(), 128u);
  EXPECT_EQ(many.back().id, 127);
}

TEST(Stages, TopPWithTies) {
  // five tokens of 0.2 each: p = 0.5 needs three (0.6), and the tie goes to the lowest ids
  auto c = candidates({1.0f, 1.0f, 1.0f, 1.0f, 1.0f});
  apply_top_p(c, 0.5f);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{0, 1, 2}));
}

TEST(Stages, TopPOnALargeVocabularyMatchesAFullSort) {
  // Flat and peaked distributions: the cutoff lands deep in the list or near its top.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> logits(20000);
  for (float& x : logits) x = dist(rng);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (float scale : {1.0f, 8.0f}) {
    std::vector<float> scaled = logits;
    for (float& x : scaled) x *= scale;
    double sum = 0;
    for (float x : scaled) sum += std::exp(static_cast<double>(x));
    for (float p : {0.01f, 0.5f, 0.9f, 0.999f}) {
      size_t expect = 0;
      double cum = 0;
      while (cum < p) cum += std::exp(static_cast<double>(scaled[order[expect++]])) / sum;
      std::vector<int32_t> want(order.begin(), order.begin() + static_cast<long>(expect));
      std::sort(want.begin(), want.end());
      auto c = candidates(scaled);
      std::vector<Candidate> scratch;
      apply_top_p(c, p, scratch);
      EXPECT_EQ(ids(c), want) << "scale=" << scale << " p=" << p;
    }
  }
}

TEST(Stages, MinPIsRelativeToTheLargestProbability) {
  const auto logits = log_of({0.5, 0.2, 0.25, 0.05}, -1.0);
  auto run = [&](float p) {
    auto c = candidates(logits);
    apply_min_p(c, p);
    return ids(c);
  };
  EXPECT_EQ(run(0.45f), (std::vector<int32_t>{0, 2}));        // threshold 0.225
  EXPECT_EQ(run(0.11f), (std::vector<int32_t>{0, 1, 2}));     // threshold 0.055
  EXPECT_EQ(run(0.09f), (std::vector<int32_t>{0, 1, 2, 3}));  // threshold 0.045
  EXPECT_EQ(run(1.0f), (std::vector<int32_t>{0}));
  EXPECT_EQ(run(0.0f), (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(Stages, TemperatureScalesLogitDifferences) {
  for (float t : {0.5f, 2.0f}) {
    auto c = candidates({1.0f, 2.0f, 4.0f, -kInf});
    apply_temperature(c, t);
    EXPECT_FLOAT_EQ(c[1].logit - c[0].logit, 1.0f / t);
    EXPECT_FLOAT_EQ(c[2].logit - c[0].logit, 3.0f / t);
    EXPECT_EQ(c[3].logit, -kInf);
    softmax_candidates(c);
    const double z = std::exp(1.0 / t) + std::exp(2.0 / t) + std::exp(4.0 / t);
    EXPECT_NEAR(c[0].prob, std::exp(1.0 / t) / z, 1e-6);
    EXPECT_NEAR(c[2].prob, std::exp(4.0 / t) / z, 1e-6);
    EXPECT_EQ(c[3].prob, 0.0f);
  }
  auto tiny = candidates({1.0f, 1e30f});
  apply_temperature(tiny, 1e-30f);  // no overflow into inf - inf
  softmax_candidates(tiny);
  EXPECT_EQ(tiny[1].prob, 1.0f);
}

TEST(Stages, SoftmaxAndDraw) {
  auto c = candidates({0.0f, std::log(3.0f), -kInf});
  softmax_candidates(c);
  EXPECT_NEAR(c[0].prob, 0.25, 1e-7);
  EXPECT_NEAR(c[1].prob, 0.75, 1e-7);
  EXPECT_EQ(c[2].prob, 0.0f);

  const std::vector<Candidate> d = {{7, 0, 0.25f}, {8, 0, 0.0f}, {9, 0, 0.75f}, {10, 0, 0.0f}};
  EXPECT_EQ(draw_candidate(d, 0.0), 7);
  EXPECT_EQ(draw_candidate(d, 0.2499), 7);
  EXPECT_EQ(draw_candidate(d, 0.25), 9);  // zero-probability 8 is skipped
  EXPECT_EQ(draw_candidate(d, 0.999999999), 9);
  const std::vector<Candidate> none = {{0, 0, 0.0f}};
  EXPECT_THROW(draw_candidate(none, 0.5), Error);
  auto all_neg_inf = candidates({-kInf, -kInf});
  EXPECT_THROW(softmax_candidates(all_neg_inf), Error);
}

TEST(Stages, ArgmaxTakesTheLowestIdOnTies) {
  EXPECT_EQ(argmax_candidate(candidates({1, 3, 3, 2})), 1);
  auto c = candidates({1, 3, 3, 2});
  std::reverse(c.begin(), c.end());
  EXPECT_EQ(argmax_candidate(c), 1);
  EXPECT_EQ(argmax_candidate(candidates({-kInf, -kInf, -5})), 2);
  EXPECT_THROW(argmax_candidate(candidates({-kInf})), Error);
}

TEST(Stages, Top2Margin) {
  EXPECT_FLOAT_EQ(top2_margin(std::vector<float>{1.0f, 3.0f, 2.5f}), 0.5f);
  EXPECT_FLOAT_EQ(top2_margin(std::vector<float>{3.0f, 1.0f, 2.0f}), 1.0f);
  EXPECT_EQ(top2_margin(std::vector<float>{2.0f, 5.0f, 5.0f}), 0.0f);
  EXPECT_EQ(top2_margin(std::vector<float>{4.0f}), kInf);
  EXPECT_EQ(top2_margin(std::vector<float>{4.0f, -kInf}), kInf);
  EXPECT_EQ(error_of([] { top2_margin(std::vector<float>{1.0f, NAN}); }), "sampler: logit of token 1 is NaN");
  EXPECT_THROW(top2_margin(std::vector<float>{}), Error);
}

// ---- parameters ----

TEST(Params, ErrorsNameTheFlag) {
  auto error = [](auto change) {
    SamplingParams p;
    change(p);
    return error_of([&] { validate(p); });
  };
  EXPECT_EQ(error([](SamplingParams& p) { p.top_p = 1.5f; }), "--top-p must be in (0, 1], got 1.5");
  EXPECT_EQ(error([](SamplingParams& p) { p.top_p = 0.0f; }), "--top-p must be in (0, 1], got 0");
  EXPECT_EQ(error([](SamplingParams& p) { p.top_p = NAN; }), "--top-p must be in (0, 1], got nan");
  EXPECT_EQ(error([](SamplingParams& p) { p.temperature = -0.5f; }), "--temp must be >= 0 (0 = greedy), got -0.5");
  EXPECT_EQ(error([](SamplingParams& p) { p.temperature = NAN; }), "--temp must be a finite number, got nan");
  EXPECT_EQ(error([](SamplingParams& p) { p.top_k = -1; }), "--top-k must be >= 0 (0 = off), got -1");
  EXPECT_EQ(error([](SamplingParams& p) { p.min_p = 1.25f; }), "--min-p must be in [0, 1], got 1.25");
  EXPECT_EQ(error([](SamplingParams& p) { p.min_p = -0.1f; }), "--min-p must be in [0, 1], got -0.1");
  EXPECT_EQ(error([](SamplingParams& p) { p.repeat_penalty = NAN; }),
            "--repeat-penalty must be a finite number, got nan");
  EXPECT_EQ(error([](SamplingParams& p) { p.repeat_penalty = 0.0f; }), "--repeat-penalty must be > 0 (1 = off), got 0");
  EXPECT_EQ(error([](SamplingParams& p) { p.frequency_penalty = NAN; }),
            "--frequency-penalty must be a finite number, got nan");
  EXPECT_EQ(error([](SamplingParams& p) { p.presence_penalty = kInf; }),
            "--presence-penalty must be a finite number, got inf");
  EXPECT_EQ(error([](SamplingParams& p) { p.penalty_last_n = -2; }),
            "--repeat-last-n must be >= -1 (-1 = whole context, 0 = off), got -2");
  EXPECT_EQ(error([](SamplingParams&) {}), "(no error)");
  EXPECT_EQ(error([](SamplingParams& p) { p.frequency_penalty = -1.0f; }), "(no error)");  // negative encourages
  EXPECT_THROW(Sampler(SamplingParams{.top_p = 2.0f}, 10), Error);
  EXPECT_THROW(Sampler(SamplingParams{}, 0), Error);
}

// ---- the chain ----

TEST(Sampler, GreedyIsTheArgmaxOfThePenalisedLogitsLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p, 4);
  EXPECT_EQ(s.sample(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf, -1, -kInf}), 2);

  p.repeat_penalty = 2.0f;
  Sampler pen(p, 3);
  pen.accept(0);
  EXPECT_EQ(pen.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 1);  // 3 / 2 = 1.5 < 2
  pen.reset();
  EXPECT_EQ(pen.sample(std::vector<float>{3.0f, 2.0f, 1.0f}), 0);
}

TEST(Sampler, VocabularyOfOne) {
  Sampler s(plain(), 1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(std::vector<float>{-3.0f}), 0);
  EXPECT_THROW(s.sample(std::vector<float>{-kInf}), Error);
}

TEST(Sampler, BadLogitsAreErrors) {
  Sampler s(plain(), 4);
  EXPECT_EQ(error_of([&] { s.sample(std::vector<float>{0, 0, 0, NAN}); }), "sampler: logit of token 3 is NaN");
  EXPECT_EQ(error_of([&] { s.sample(std::vector<float>{0, 0, 0}); }), "sampler: got 3 logits for a vocabulary of 4");
  EXPECT_THROW(s.sample(std::vector<float>{-kInf, -kInf, -kInf, -kInf}), Error);
  EXPECT_THROW(s.accept(4), Error);
  EXPECT_THROW(s.accept(-1), Error);
}

TEST(Sampler, MinusInfinityIsNeverChosen) {
  Sampler s(plain(3), 4);
  for (int i = 0; i < 2000; ++i) {
    const int32_t t = s.sample(std::vector<float>{-kInf, 0.0f, -kInf, 0.0f});
    ASSERT_TRUE(t == 1 || t == 3) << t;
  }
}

std::vector<int32_t> sequence(const SamplingParams& p, int n) {
  Sampler s(p, 6);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(std::vector<float>{0.1f, 0.5f, 0.2f, 0.0f, 0.4f, 0.3f}));
  return out;
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedsDiffer) {
  SamplingParams p;  // the defaults: top-k 40, top-p 0.95, min-p 0.05, temp 0.8
  p.seed = 1234;
  const auto a = sequence(p, 200);
  EXPECT_EQ(a, sequence(p, 200));
  p.seed = 1235;
  EXPECT_NE(a, sequence(p, 200));

  p.seed = 1234;
  Sampler s(p, 6);
  for (int i = 0; i < 50; ++i) s.sample(std::vector<float>{0.1f, 0.5f, 0.2f, 0.0f, 0.4f, 0.3f});
  s.reset();  // restarts the random sequence
  std::vector<int32_t> again;
  for (int i = 0; i < 200; ++i) again.push_back(s.sample(std::vector<float>{0.1f, 0.5f, 0.2f, 0.0f, 0.4f, 0.3f}));
  EXPECT_EQ(a, again);
}

// Draws n tokens and checks each frequency against `expect` within 5 standard deviations,
// and Pearson's chi-square against the 0.9999 quantile for the degrees of freedom.
void expect_distribution(const SamplingParams& p, const std::vector<float>& logits, const std::vector<double>& expect) {
  constexpr int kDraws = 20000;
  Sampler s(p, static_cast<int32_t>(logits.size()));
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) counts[static_cast<size_t>(s.sample(logits))]++;
  double chi2 = 0;
  int dof = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double mean = kDraws * expect[i];
    if (expect[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i;
      continue;
    }
    const double sd = std::sqrt(kDraws * expect[i] * (1 - expect[i]));
    EXPECT_NEAR(counts[i], mean, 5 * sd) << "token " << i;
    chi2 += (counts[i] - mean) * (counts[i] - mean) / mean;
    ++dof;
  }
  const double quantile[] = {0, 15.14, 18.42, 21.11};  // chi-square 0.9999 quantiles, 1..3 dof
  ASSERT_GE(dof, 1);
  EXPECT_LT(chi2, quantile[dof]);
}

TEST(Sampler, EmpiricalDistributionMatchesTheSoftmax) {
  const auto logits = log_of({0.1, 0.2, 0.3, 0.4}, 2.0);
  expect_distribution(plain(42), logits, {0.1, 0.2, 0.3, 0.4});

  // temperature 2: p ~ p0^(1/2)
  SamplingParams hot = plain(43);
  hot.temperature = 2.0f;
  std::vector<double> sq = {std::sqrt(0.1), std::sqrt(0.2), std::sqrt(0.3), std::sqrt(0.4)};
  const double z = sq[0] + sq[1] + sq[2] + sq[3];
  for (double& x : sq) x /= z;
  expect_distribution(hot, logits, sq);

  // top-k 3 drops 0.1 and renormalises
  SamplingParams k3 = plain(44);
  k3.top_k = 3;
  expect_distribution(k3, logits, {0.0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9});
}

TEST(Sampler, TopPAndMinPAreDecidedBeforeTemperature) {
  // At temperature 1: 0.5, 0.2, 0.25, 0.05. top-p 0.6 keeps {0, 2}; a hot temperature
  // flattens what is left but must not bring back 1 or 3.
  SamplingParams p = plain(5);
  p.top_p = 0.6f;
  p.temperature = 10.0f;
  const double a = std::exp(std::log(0.5) / 10), b = std::exp(std::log(0.25) / 10);
  expect_distribution(p, log_of({0.5, 0.2, 0.25, 0.05}), {a / (a + b), 0.0, b / (a + b), 0.0});

  SamplingParams m = plain(6);
  m.min_p = 0.45f;  // threshold 0.225 at temperature 1
  m.temperature = 10.0f;
  expect_distribution(m, log_of({0.5, 0.2, 0.25, 0.05}), {a / (a + b), 0.0, b / (a + b), 0.0});
}

TEST(Sampler, PenaltyWindowCoversTheLastNAcceptedTokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 10.0f;
  p.penalty_last_n = 2;
  Sampler s(p, 4);
  const std::vector<float> logits = {5, 4, 3, 2};
  s.accept(0);
  EXPECT_EQ(s.sample(logits), 1);
  s.accept(1);
  EXPECT_EQ(s.sample(logits), 2);
  s.accept(2);  // the window is now {1, 2}: 0 is free again
  EXPECT_EQ(s.sample(logits), 0);

  Sampler ring(p, 5);  // after 0, 1, 2, 3 the window of 2 holds {2, 3}
  for (int32_t t : {0, 1, 2, 3}) ring.accept(t);
  EXPECT_EQ(ring.sample(std::vector<float>{0, 0, 5, 4, 3}), 4);

  p.penalty_last_n = -1;  // the whole history
  Sampler all(p, 4);
  for (int32_t t : {0, 1, 2}) all.accept(t);
  EXPECT_EQ(all.sample(logits), 3);

  p.penalty_last_n = 0;  // off
  Sampler off(p, 4);
  for (int32_t t : {0, 1, 2}) off.accept(t);
  EXPECT_EQ(off.sample(logits), 0);
}

TEST(Sampler, FrequencyPenaltyCountsRepeats) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.frequency_penalty = 1.0f;
  Sampler s(p, 3);
  const std::vector<float> logits = {5.0f, 3.5f, 0.0f};
  s.accept(0);
  EXPECT_EQ(s.sample(logits), 0);  // 5 - 1 = 4 > 3.5
  s.accept(0);
  EXPECT_EQ(s.sample(logits), 1);  // 5 - 2 = 3 < 3.5
}

TEST(Sampler, LargeVocabularyDoesNotAllocatePerCall) {
  constexpr int32_t kVocab = 256000;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 4.0f);
  std::vector<float> logits(kVocab);
  for (float& x : logits) x = dist(rng);
  std::vector<int32_t> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 40, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });

  for (int32_t top_k : {40, 0}) {
    SamplingParams p;  // defaults, with penalties on
    p.top_k = top_k;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.1f;
    Sampler s(p, kVocab);
    for (int32_t t = 0; t < 100; ++t) s.accept(t * 7);
    s.accept(s.sample(logits));  // the first call may allocate
    const long before = g_allocations.load();
    for (int i = 0; i < 20; ++i) {
      const int32_t t = s.sample(logits);
      if (top_k == 40) {
        EXPECT_NE(std::find(order.begin(), order.begin() + 40, t), order.begin() + 40) << t;
      }
    }
    EXPECT_EQ(g_allocations.load(), before) << "top_k=" << top_k;
  }
}

}  // namespace
}  // namespace strata
