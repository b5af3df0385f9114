#include "runtime/route_ties.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <string>
#include <string_view>

namespace strata {
namespace {

// The tensors whose columns follow a token's routing (the per-slot outputs and their sum).
constexpr std::string_view kRouted[] = {"ffn_moe_weights", "ffn_moe_gate", "ffn_moe_up",
                                        "ffn_moe_act",     "ffn_moe_down", "ffn_out"};

// "blk.3.ffn_moe_logits#2" -> {"blk.3.", "#2"}; false where name is not a router tap.
bool split_router_name(std::string_view name, std::string& prefix, std::string& suffix) {
  constexpr std::string_view kRouter = "ffn_moe_logits";
  const size_t at = name.find(kRouter);
  if (at == std::string_view::npos) return false;
  const std::string_view rest = name.substr(at + kRouter.size());
  if (!rest.empty() && rest[0] != '#') return false;
  prefix = std::string(name.substr(0, at));
  suffix = std::string(rest);
  return true;
}

// The n_used largest of logits (ties: lower index), as a sorted set.
std::vector<int> top_set(const float* logits, int n_expert, int n_used) {
  std::vector<int> order(static_cast<size_t>(n_expert));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  order.resize(size_t(n_used));
  std::sort(order.begin(), order.end());
  return order;
}

// Whether token t is routed differently by the two runs at a near-tie of the reference:
// the sets differ and the reference's gap at the boundary is within twice the largest
// difference of the two runs' logits at t (what such a difference can reorder).
bool tie_routed(const float* a, const float* b, int n_expert, int n_used) {
  if (n_used >= n_expert || top_set(a, n_expert, n_used) == top_set(b, n_expert, n_used)) return false;
  std::vector<float> sorted(b, b + n_expert);
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const double gap = double(sorted[size_t(n_used - 1)]) - double(sorted[size_t(n_used)]);
  double diff = 0;
  for (int e = 0; e < n_expert; ++e) diff = std::max(diff, std::fabs(double(a[e]) - double(b[e])));
  return gap <= 2 * diff;
}

const float* values(const Tensor& t) {
  return reinterpret_cast<const float*>(t.data());
}

// NMSE of a against b over the columns (last dim, m of them) not in `skip`.
double nmse_without(const Tensor& a, const Tensor& b, const std::vector<bool>& skip) {
  const size_t m = skip.size(), per = size_t(a.n_elements()) / m;
  double err = 0, ref = 0;
  for (size_t t = 0; t < m; ++t) {
    if (skip[t]) continue;
    for (size_t i = t * per; i < (t + 1) * per; ++i) {
      const double d = double(values(a)[i]) - double(values(b)[i]);
      err += d * d;
      ref += double(values(b)[i]) * double(values(b)[i]);
    }
  }
  return ref > 0 ? err / ref : err;
}

}  // namespace

void mark_route_ties(const Recording& test, const Recording& reference, std::vector<TensorDiff>& diffs) {
  std::string prefix, suffix;
  for (const std::string& name : test.order) {
    if (!split_router_name(name, prefix, suffix)) continue;
    const auto ref = reference.values.find(name);
    const auto weights = test.values.find(prefix + "ffn_moe_weights" + suffix);
    if (ref == reference.values.end() || weights == test.values.end()) continue;
    const Tensor& a = test.values.at(name);
    const Tensor& b = ref->second;
    const int n_expert = int(a.ne(0)), n_used = int(weights->second.ne(0));
    const int64_t m = a.ne(1);
    if (b.ne() != a.ne()) continue;
    std::vector<bool> tied(static_cast<size_t>(m));
    int64_t n_tied = 0;
    for (int64_t t = 0; t < m; ++t) {
      tied[size_t(t)] = tie_routed(values(a) + t * n_expert, values(b) + t * n_expert, n_expert, n_used);
      n_tied += tied[size_t(t)] ? 1 : 0;
    }
    if (n_tied == 0) continue;
    for (std::string_view routed : kRouted) {
      const std::string key = prefix + std::string(routed) + suffix;
      auto d = std::find_if(diffs.begin(), diffs.end(), [&](const TensorDiff& x) { return x.name == key; });
      const auto ta = test.values.find(key);
      const auto tb = reference.values.find(key);
      if (d == diffs.end() || ta == test.values.end() || tb == reference.values.end()) continue;
      d->route_ties = n_tied;
      d->nmse_checked = nmse_without(ta->second, tb->second, tied);
    }
  }
}

}  // namespace strata
