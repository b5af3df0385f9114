// Row-wise reductions: rms_norm.
#include <algorithm>
#include <cmath>
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

}  // namespace strata::cpu_ref
