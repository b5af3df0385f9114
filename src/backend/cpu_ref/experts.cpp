// The routing and the weighted sum of a mixture of experts (matmul_experts is in matmul.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"

namespace strata::cpu_ref {
namespace {

// One token: the n_used largest logits (ties: lower index first) and their softmax.
template <typename Acc>
void route_column(const float* logits, int64_t n_expert, int32_t* ids, float* weights, int64_t n_used) {
  std::vector<int32_t> order(static_cast<size_t>(n_expert));
  std::iota(order.begin(), order.end(), 0);
  // Largest first; a stable sort keeps equal logits in index order.
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const Acc max = logits[order[0]];
  Acc sum = 0;
  std::vector<Acc> p(static_cast<size_t>(n_used));
  for (int64_t s = 0; s < n_used; ++s) {
    p[size_t(s)] = std::exp(Acc(logits[order[size_t(s)]]) - max);
    sum += p[size_t(s)];
  }
  for (int64_t s = 0; s < n_used; ++s) {
    ids[s] = order[size_t(s)];
    weights[s] = float(p[size_t(s)] / sum);
  }
}

// out[:, t] = sum_s weights[s, t] y[:, s, t], in slot order
template <typename Acc>
void sum_columns(const Tensor& y, const Tensor& weights, Tensor& out) {
  const int64_t n = y.ne(0), n_used = y.ne(1), m = y.ne(2);
  for (int64_t t = 0; t < m; ++t) {
    const auto* w = reinterpret_cast<const float*>(weights.row(t));
    auto* o = reinterpret_cast<float*>(out.mutable_row(t));
    for (int64_t i = 0; i < n; ++i) {
      Acc sum = 0;
      for (int64_t s = 0; s < n_used; ++s) sum += Acc(w[s]) * Acc(reinterpret_cast<const float*>(y.row(s, t))[i]);
      o[i] = float(sum);
    }
  }
}

}  // namespace

// logits [n_expert, m] f32; ids [n_used, m] i32; weights [n_used, m] f32
void route_top_k(const Tensor& logits, Tensor& ids, Tensor& weights, Accumulation acc) {
  check_route_top_k_args(logits, ids, weights);
  const std::vector<const float*> columns = f32_rows(logits);
  const std::vector<float*> weight_columns = mutable_f32_rows(weights);
  const int64_t n_used = ids.ne(0);
  for (size_t t = 0; t < columns.size(); ++t) {
    auto* id = reinterpret_cast<int32_t*>(ids.mutable_row(int64_t(t)));
    if (acc == Accumulation::f64) {
      route_column<double>(columns[t], logits.ne(0), id, weight_columns[t], n_used);
    } else {
      route_column<float>(columns[t], logits.ne(0), id, weight_columns[t], n_used);
    }
  }
}

// y [n, n_used, m] f32; weights [n_used, m] f32; out [n, m] f32
void sum_experts(const Tensor& y, const Tensor& weights, Tensor& out, Accumulation acc) {
  check_sum_experts_args(y, weights, out);
  if (acc == Accumulation::f64) {
    sum_columns<double>(y, weights, out);
  } else {
    sum_columns<float>(y, weights, out);
  }
}

}  // namespace strata::cpu_ref
