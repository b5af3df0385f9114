// The mixture-of-experts ops of the fast CPU backend: routing, the expert-indexed matmul over
// the matmul driver (one product per expert on the columns routed to it) and the weighted sum.
#include "backend/cpu/experts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/op_checks.h"

namespace strata::cpu {

// logits [n_expert, m] f32; ids [n_used, m] i32; weights [n_used, m] f32
void route_top_k(const OpContext& ctx, const Tensor& logits, Tensor& ids, Tensor& weights) {
  check_route_top_k_args(logits, ids, weights);
  const int64_t n_expert = logits.ne(0), n_used = ids.ne(0);
  const Rows logit_rows(logits), weight_rows(weights);
  auto* id = reinterpret_cast<int32_t*>(ids.mutable_data());
  parallel_chunks(*ctx.pool, logits.ne(1), min_rows(n_expert), [&](int64_t first, int64_t last) {
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    std::vector<float> p(static_cast<size_t>(n_used));
    for (int64_t t = first; t < last; ++t) {
      const float* l = logit_rows.f32(t);
      std::iota(order.begin(), order.end(), 0);
      // The n_used largest, largest first; equal logits in index order.
      std::partial_sort(order.begin(), order.begin() + n_used, order.end(),
                        [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
      float sum = 0;
      for (int64_t s = 0; s < n_used; ++s) sum += p[size_t(s)] = std::exp(l[order[size_t(s)]] - l[order[0]]);
      float* w = weight_rows.mutable_f32(t);
      for (int64_t s = 0; s < n_used; ++s) {
        id[t * n_used + s] = order[size_t(s)];
        w[s] = p[size_t(s)] / sum;
      }
    }
  });
}

// w [k, n, n_expert]; x [k, 1 or n_used, m] f32; ids [n_used, m] i32; out [n, n_used, m] f32
void matmul_experts(const Tensor& w, const Tensor& x, const Tensor& ids, Tensor& out, const MatmulConfig& config,
                    ThreadPool& pool) {
  check_matmul_experts_args(w, x, ids, out, check_dequantizable);
  const int64_t k = w.ne(0), n = w.ne(1), n_expert = w.ne(2), n_used = ids.ne(0), m = ids.ne(1);
  const std::span<const int32_t> id(reinterpret_cast<const int32_t*>(ids.data()), size_t(n_used * m));
  check_expert_ids(id, n_expert, w);
  // The (slot, token) pairs of each expert, as flat indices s + t * n_used.
  std::vector<std::vector<int64_t>> routed(static_cast<size_t>(n_expert));
  for (int64_t i = 0; i < n_used * m; ++i) routed[size_t(id[size_t(i)])].push_back(i);
  for (int64_t e = 0; e < n_expert; ++e) {
    const std::vector<int64_t>& cols = routed[size_t(e)];
    if (cols.empty()) continue;
    const int64_t c = int64_t(cols.size());
    Tensor xe = Tensor::empty(DType::F32, {k, c}, "x_expert");    // [k, c] the columns routed to e
    Tensor oe = Tensor::empty(DType::F32, {n, c}, "out_expert");  // [n, c]
    for (int64_t j = 0; j < c; ++j) {
      const int64_t s = cols[size_t(j)] % n_used, t = cols[size_t(j)] / n_used;
      std::memcpy(xe.mutable_row(j), x.row(x.ne(1) == 1 ? 0 : s, t), size_t(k) * sizeof(float));
    }
    matmul(w.slice(2, e, 1), xe, oe, config, pool);
    for (int64_t j = 0; j < c; ++j) {
      const int64_t s = cols[size_t(j)] % n_used, t = cols[size_t(j)] / n_used;
      std::memcpy(out.mutable_row(s, t), oe.row(j), size_t(n) * sizeof(float));
    }
  }
}

// y [n, n_used, m] f32; weights [n_used, m] f32; out [n, m] f32
void sum_experts(const OpContext& ctx, const Tensor& y, const Tensor& weights, Tensor& out) {
  check_sum_experts_args(y, weights, out);
  const int64_t n = y.ne(0), n_used = y.ne(1);
  parallel_chunks(*ctx.pool, y.ne(2), min_rows(n * n_used), [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      const auto* w = reinterpret_cast<const float*>(weights.row(t));
      auto* o = reinterpret_cast<float*>(out.mutable_row(t));
      std::fill(o, o + n, 0.0f);
      for (int64_t s = 0; s < n_used; ++s) {
        const auto* ys = reinterpret_cast<const float*>(y.row(s, t));
        for (int64_t i = 0; i < n; ++i) o[i] += w[s] * ys[i];
      }
    }
  });
}

}  // namespace strata::cpu
