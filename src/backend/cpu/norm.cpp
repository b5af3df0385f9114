// Row-wise reductions: rms_norm and softmax, threaded over rows.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {
namespace {

// sum_i x[i] over 16 partial sums combined in a fixed tree (vectorised by GCC).
float sum_lanes(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j];
  }
  for (int j = 0; i + j < n; ++j) acc[j] += x[i + j];
  for (int width = kLanes / 2; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

}  // namespace

// out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * weight    x, out [n, rows] f32; weight [n]
void rms_norm(const OpContext& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check_rms_norm_args(x, weight, out, check_dequantizable);
  const int64_t n = x.ne(0);
  std::vector<float> w(static_cast<size_t>(n));  // [n]
  weight.dequantize_row(w.data(), 0);
  const Rows x_rows(x), out_rows(out);
  parallel_chunks(*ctx.pool, x.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const float* xr = x_rows.f32(r);
      float* o = out_rows.mutable_f32(r);
      const float mean = ctx.k->dot_f32(xr, xr, n) / float(n);
      const float inv_rms = 1.0f / std::sqrt(mean + eps);
      for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * inv_rms * w[size_t(i)];
    }
  });
}

// x[:, r] = exp(x[:, r] - max) / sum(exp(x[:, r] - max)), in place    x [n, rows] f32
void softmax(const OpContext& ctx, Tensor& x) {
  check_softmax_args(x);
  const int64_t n = x.ne(0);
  const Rows rows(x);
  parallel_chunks(*ctx.pool, x.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      float* xr = rows.mutable_f32(r);
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n; ++i) max = std::max(max, xr[i]);
      for (int64_t i = 0; i < n; ++i) xr[i] = std::exp(xr[i] - max);
      const float sum = sum_lanes(xr, n);
      for (int64_t i = 0; i < n; ++i) xr[i] /= sum;
    }
  });
}

}  // namespace strata::cpu
