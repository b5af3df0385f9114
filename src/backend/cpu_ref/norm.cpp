// Row-wise reductions: rms_norm and softmax.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"

namespace strata::cpu_ref {
namespace {

// out[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * weight
template <typename Acc>
void rms_norm_rows(const Tensor& x, const std::vector<float>& weight, float eps, Tensor& out) {
  const int64_t n = x.ne(0);
  const std::vector<const float*> x_rows = f32_rows(x);
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  for (size_t r = 0; r < x_rows.size(); ++r) {
    const float* xr = x_rows[r];
    Acc sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) sum_sq += Acc(xr[i]) * Acc(xr[i]);
    const Acc mean = sum_sq / Acc(n);
    const Acc inv_rms = Acc(1) / std::sqrt(mean + Acc(eps));
    for (int64_t i = 0; i < n; ++i) out_rows[r][i] = float(Acc(xr[i]) * inv_rms * Acc(weight[size_t(i)]));
  }
}

// x[:, r] = exp(x[:, r] - max) / sum(exp(x[:, r] - max))
template <typename Acc>
void softmax_rows(Tensor& x) {
  const int64_t n = x.ne(0);
  for (float* xr : mutable_f32_rows(x)) {
    Acc max = -std::numeric_limits<Acc>::infinity();
    for (int64_t i = 0; i < n; ++i) max = std::max(max, Acc(xr[i]));
    std::vector<Acc> e(static_cast<size_t>(n));
    Acc sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      e[size_t(i)] = std::exp(Acc(xr[i]) - max);
      sum += e[size_t(i)];
    }
    for (int64_t i = 0; i < n; ++i) xr[i] = float(e[size_t(i)] / sum);
  }
}

}  // namespace

// x, out [n, rows] f32; weight [n] any dequantizable type
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out, Accumulation acc) {
  check_rms_norm_args(x, weight, out, check_dequantizable);
  std::vector<float> w(static_cast<size_t>(x.ne(0)));  // [n]
  weight.dequantize_row(w.data(), 0);
  if (acc == Accumulation::f64) {
    rms_norm_rows<double>(x, w, eps, out);
  } else {
    rms_norm_rows<float>(x, w, eps, out);
  }
}

// x [n, rows] f32, in place
void softmax(Tensor& x, Accumulation acc) {
  check_softmax_args(x);
  if (acc == Accumulation::f64) {
    softmax_rows<double>(x);
  } else {
    softmax_rows<float>(x);
  }
}

}  // namespace strata::cpu_ref
