// Row-wise reductions: rms_norm, threaded over rows.
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {
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

}  // namespace strata::cpu
