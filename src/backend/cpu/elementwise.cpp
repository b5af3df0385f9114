// Element-wise ops: add (with row broadcast), swiglu and scale, threaded over rows.
#include <cmath>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {

// out[:, r] = a[:, r] + b[:, r or 0]    a, out [n, rows] f32; b f32 or any dequantizable type
// (a bias weight). out may be a.
void add(const OpContext& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool broadcast = check_add_args(a, b, out, check_dequantizable);
  const int64_t n = a.ne(0);
  const Rows a_rows(a), b_rows(b), out_rows(out);
  const bool b_f32 = b.dtype() == DType::F32 && b.nb(0) == sizeof(float);
  std::vector<float> b_row;  // [n] b's one broadcast row in f32, when b is not f32
  if (broadcast && !b_f32) {
    b_row.resize(size_t(n));
    b.dequantize_row(b_row.data(), 0);
  }
  parallel_chunks(*ctx.pool, a.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    std::vector<float> row;  // [n] b's row r in f32 (b neither f32 nor broadcast)
    for (int64_t r = first; r < last; ++r) {
      const float* br;
      if (b_f32) {
        br = b_rows.f32(broadcast ? 0 : r);
      } else if (broadcast) {
        br = b_row.data();
      } else {
        row.resize(size_t(n));
        const int64_t i1 = r % b.ne(1), i2 = (r / b.ne(1)) % b.ne(2), i3 = r / (b.ne(1) * b.ne(2));
        b.dequantize_row(row.data(), i1, i2, i3);
        br = row.data();
      }
      const float* ar = a_rows.f32(r);
      float* o = out_rows.mutable_f32(r);
      for (int64_t i = 0; i < n; ++i) o[i] = ar[i] + br[i];
    }
  });
}

// out = silu(gate) * up, silu(g) = g / (1 + exp(-g))    gate, up, out [n, rows] f32
void swiglu(const OpContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out) {
  check_swiglu_args(gate, up, out);
  const int64_t n = gate.ne(0);
  const Rows gate_rows(gate), up_rows(up), out_rows(out);
  parallel_chunks(*ctx.pool, gate.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const float* g = gate_rows.f32(r);
      const float* u = up_rows.f32(r);
      float* o = out_rows.mutable_f32(r);
      ctx.k->silu_mul(g, u, o, n);
    }
  });
}

// out = s * x    x, out [n, rows] f32; out may be x.
void scale(const OpContext& ctx, const Tensor& x, float s, Tensor& out) {
  check_scale_args(x, s, out);
  const int64_t n = x.ne(0);
  const Rows x_rows(x), out_rows(out);
  parallel_chunks(*ctx.pool, x.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      const float* xr = x_rows.f32(r);
      float* o = out_rows.mutable_f32(r);
      for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * s;
    }
  });
}

}  // namespace strata::cpu
