// rope: rotary position embedding, as llama.cpp's ggml_rope_ext computes it with
// ext_factor = 0 and attn_factor = 1 (no YaRN):
//   pair i (0 <= i < n_rot/2) of a head at position p turns by
//     theta_i = p * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i]
//   normal (llama):  pair i is elements (2i, 2i+1)
//   NEOX (qwen2):    pair i is elements (i, i + n_rot/2)
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos); elements n_rot..head_dim-1 are kept.
// The angles are computed in double in both modes: ggml builds them by repeated f32
// multiplication (theta *= theta_scale), which drifts by a few ulps per pair; the oracle
// takes the exact value.
#include <cmath>
#include <vector>

#include "backend/cpu_ref/checks.h"
#include "backend/cpu_ref/ops.h"
#include "core/error.h"

namespace strata::cpu_ref {
namespace {

// theta_i for one position, i in 0..n_rot/2-1
std::vector<double> rope_angles(int32_t pos, const RopeConfig& c) {
  std::vector<double> theta(size_t(c.n_rot / 2));
  for (size_t i = 0; i < theta.size(); ++i) {
    const double inv_freq = std::pow(double(c.freq_base), -2.0 * double(i) / double(c.n_rot));
    const double factor = c.freq_factors.empty() ? 1.0 : double(c.freq_factors[i]);
    theta[i] = double(pos) * double(c.freq_scale) * inv_freq / factor;
  }
  return theta;
}

template <typename Acc>
void rope_rows(Tensor& x, std::span<const int32_t> positions, const RopeConfig& c) {
  const int64_t n_heads = x.ne(1);
  const int64_t half = c.n_rot / 2;
  const std::vector<float*> rows = mutable_f32_rows(x);  // row h + t * n_heads: head h of token t
  for (int64_t t = 0; t < x.ne(2); ++t) {
    const std::vector<double> theta = rope_angles(positions[size_t(t)], c);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* r = rows[size_t(h + t * n_heads)];  // [head_dim]
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = c.neox ? i : 2 * i;
        const int64_t b = c.neox ? i + half : 2 * i + 1;
        const Acc cos_t = Acc(std::cos(theta[size_t(i)]));
        const Acc sin_t = Acc(std::sin(theta[size_t(i)]));
        const Acc x0 = r[a];
        const Acc x1 = r[b];
        r[a] = float(x0 * cos_t - x1 * sin_t);
        r[b] = float(x0 * sin_t + x1 * cos_t);
      }
    }
  }
}

}  // namespace

// x [head_dim, n_heads, n_tokens] f32, in place; positions [n_tokens]
void rope(Tensor& x, std::span<const int32_t> positions, const RopeConfig& config, Accumulation acc) {
  check_rope_args(x, positions, config);
  if (acc == Accumulation::f64) {
    rope_rows<double>(x, positions, config);
  } else {
    rope_rows<float>(x, positions, config);
  }
}

}  // namespace strata::cpu_ref
