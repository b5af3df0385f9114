#include "runtime/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace strata {

void token_logprobs(std::span<const float> logits, float temperature, TokenId id, int32_t n_top, TokenLogprob& chosen,
                    std::vector<TokenLogprob>& top) {
  const size_t n = logits.size();
  if (id < 0 || size_t(id) >= n) fail("logprobs: token {} is outside the {} logits", id, n);
  if (!(temperature > 0)) fail("logprobs: temperature must be positive, got {}", temperature);
  // log p_i = l_i / T - (max + log sum_j exp(l_j / T - max)), accumulated in double
  float max = -std::numeric_limits<float>::infinity();
  for (const float l : logits) max = std::max(max, l / temperature);
  double sum = 0;
  for (const float l : logits) sum += std::exp(double(l / temperature - max));
  const double log_z = double(max) + std::log(sum);
  auto logprob = [&](size_t i) { return float(double(logits[i] / temperature) - log_z); };
  chosen = {id, logprob(size_t(id))};
  top.clear();
  const size_t k = std::min(n, size_t(std::max<int32_t>(n_top, 0)));
  if (k == 0) return;
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  for (size_t i = 0; i < k; ++i) top.push_back({order[i], logprob(size_t(order[i]))});
}

}  // namespace strata
