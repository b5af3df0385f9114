// GeGLU with the tanh GELU, threaded over rows: out = gelu(gate) * up.
#include <cmath>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {
namespace {

// gelu(g) * u over n elements; tanh through exp so that the loop has no libm call per lane:
// tanh(a) = 1 - 2 / (exp(2a) + 1), exact at both ends (exp overflow gives 1, underflow -1).
void gelu_mul(const float* g, const float* u, float* o, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    const float a = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    const float t = 1.0f - 2.0f / (std::exp(2.0f * a) + 1.0f);
    o[i] = 0.5f * x * (1.0f + t) * u[i];
  }
}

}  // namespace

// gate, up, out [n, rows] f32
void geglu(const OpContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out) {
  check_swiglu_args(gate, up, out, "geglu");
  const int64_t n = gate.ne(0);
  const Rows gate_rows(gate), up_rows(up), out_rows(out);
  parallel_chunks(*ctx.pool, gate.n_rows(), min_rows(n), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) gelu_mul(gate_rows.f32(r), up_rows.f32(r), out_rows.mutable_f32(r), n);
  });
}

}  // namespace strata::cpu
