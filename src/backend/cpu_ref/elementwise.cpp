// Element-wise ops: add (with row broadcast), swiglu, geglu and scale.
#include <cmath>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"

namespace strata::cpu_ref {
namespace {

// out[:, r] = a[:, r] + b[:, r or 0]; b rows are dequantized (b may be a weight, e.g. a bias)
template <typename Acc>
void add_rows(const Tensor& a, const Tensor& b, bool broadcast, Tensor& out) {
  const int64_t n = a.ne(0);
  const std::vector<const float*> a_rows = f32_rows(a);
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  std::vector<float> b_row(static_cast<size_t>(n));  // [n]
  if (broadcast) dequantize_flat_row(b, 0, b_row.data());
  for (size_t r = 0; r < a_rows.size(); ++r) {
    if (!broadcast) dequantize_flat_row(b, int64_t(r), b_row.data());
    for (int64_t i = 0; i < n; ++i) out_rows[r][i] = float(Acc(a_rows[r][i]) + Acc(b_row[size_t(i)]));
  }
}

// out = silu(gate) * up, silu(g) = g / (1 + exp(-g))
template <typename Acc>
void swiglu_rows(const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t n = gate.ne(0);
  const std::vector<const float*> gate_rows = f32_rows(gate);
  const std::vector<const float*> up_rows = f32_rows(up);
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  for (size_t r = 0; r < gate_rows.size(); ++r) {
    for (int64_t i = 0; i < n; ++i) {
      const Acc g = gate_rows[r][i];
      const Acc silu = g / (Acc(1) + std::exp(-g));
      out_rows[r][i] = float(silu * Acc(up_rows[r][i]));
    }
  }
}

// out = gelu(gate) * up, gelu(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))
template <typename Acc>
void geglu_rows(const Tensor& gate, const Tensor& up, Tensor& out) {
  const Acc sqrt_2_over_pi = Acc(0.79788456080286535588);
  const int64_t n = gate.ne(0);
  const std::vector<const float*> gate_rows = f32_rows(gate);
  const std::vector<const float*> up_rows = f32_rows(up);
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  for (size_t r = 0; r < gate_rows.size(); ++r) {
    for (int64_t i = 0; i < n; ++i) {
      const Acc g = gate_rows[r][i];
      const Acc gelu = Acc(0.5) * g * (Acc(1) + std::tanh(sqrt_2_over_pi * (g + Acc(0.044715) * g * g * g)));
      out_rows[r][i] = float(gelu * Acc(up_rows[r][i]));
    }
  }
}

}  // namespace

// gate, up, out [n, rows...] f32
void geglu(const Tensor& gate, const Tensor& up, Tensor& out, Accumulation acc) {
  check_swiglu_args(gate, up, out, "geglu");
  if (acc == Accumulation::f64) {
    geglu_rows<double>(gate, up, out);
  } else {
    geglu_rows<float>(gate, up, out);
  }
}

// x, out [n, rows...] f32 (out may be x)
void scale(const Tensor& x, float s, Tensor& out) {
  check_scale_args(x, s, out);
  const std::vector<const float*> x_rows = f32_rows(x);
  const std::vector<float*> out_rows = mutable_f32_rows(out);
  for (size_t r = 0; r < x_rows.size(); ++r) {
    for (int64_t i = 0; i < x.ne(0); ++i) out_rows[r][i] = x_rows[r][i] * s;
  }
}

// a, out [n, rows...] f32; b [n, rows...] or [n] of any dequantizable type. out may be a.
void add(const Tensor& a, const Tensor& b, Tensor& out, Accumulation acc) {
  const bool broadcast = check_add_args(a, b, out, check_dequantizable);
  if (acc == Accumulation::f64) {
    add_rows<double>(a, b, broadcast, out);
  } else {
    add_rows<float>(a, b, broadcast, out);
  }
}

// gate, up, out [n, rows...] f32
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out, Accumulation acc) {
  check_swiglu_args(gate, up, out);
  if (acc == Accumulation::f64) {
    swiglu_rows<double>(gate, up, out);
  } else {
    swiglu_rows<float>(gate, up, out);
  }
}

}  // namespace strata::cpu_ref
