// rope: rotary position embedding, the contract of backend.h and the angles of cpu_ref's
// rope.cpp:
//   pair i (0 <= i < n_rot/2) of a head at position p turns by
//     theta_i = p * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i]   (in double)
//   normal (llama): pair i is elements (2i, 2i+1); NEOX: (i, i + n_rot/2)
//   (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos) in f32; elements n_rot.. are kept.
// cos and sin are tabulated once per set of positions (RopeTable) and shared by every head
// and every call with the same positions.
#include <cmath>

#include "backend/cpu/ops.h"
#include "backend/op_checks.h"

namespace strata::cpu {
namespace {

bool same_config(const RopeConfig& a, const RopeConfig& b) {
  return a.n_rot == b.n_rot && a.freq_base == b.freq_base && a.freq_scale == b.freq_scale &&
         a.freq_factors == b.freq_factors;  // neox does not change the angles
}

}  // namespace

void rotate_head(float* x, const float* cs, int64_t half, bool neox) {
  if (neox) {
    for (int64_t i = 0; i < half; ++i) {
      const float x0 = x[i], x1 = x[i + half];
      const float c = cs[2 * i], s = cs[2 * i + 1];
      x[i] = x0 * c - x1 * s;
      x[i + half] = x0 * s + x1 * c;
    }
  } else {
    for (int64_t i = 0; i < half; ++i) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      const float c = cs[2 * i], s = cs[2 * i + 1];
      x[2 * i] = x0 * c - x1 * s;
      x[2 * i + 1] = x0 * s + x1 * c;
    }
  }
}

const float* RopeTable::cos_sin(std::span<const int32_t> positions, const RopeConfig& c) {
  const size_t half = size_t(c.n_rot / 2);
  if (valid_ && same_config(config_, c) && std::ranges::equal(positions_, positions)) return table_.data();
  if (!valid_ || !same_config(config_, c)) {
    config_ = c;
    inv_freq_.resize(half);
    for (size_t i = 0; i < half; ++i) inv_freq_[i] = std::pow(double(c.freq_base), -2.0 * double(i) / double(c.n_rot));
  }
  positions_.assign(positions.begin(), positions.end());
  table_.resize(positions.size() * half * 2);
  for (size_t t = 0; t < positions.size(); ++t) {
    for (size_t i = 0; i < half; ++i) {
      const double factor = c.freq_factors.empty() ? 1.0 : double(c.freq_factors[i]);
      const double theta = double(positions[t]) * double(c.freq_scale) * inv_freq_[i] / factor;
      table_[(t * half + i) * 2] = float(std::cos(theta));
      table_[(t * half + i) * 2 + 1] = float(std::sin(theta));
    }
  }
  valid_ = true;
  return table_.data();
}

// x [head_dim, n_heads, n_tokens] f32, in place; positions [n_tokens]
void rope(const OpContext& ctx, RopeTable& table, Tensor& x, std::span<const int32_t> positions,
          const RopeConfig& config) {
  check_rope_args(x, positions, config);
  const int64_t n_heads = x.ne(1);
  const int64_t half = config.n_rot / 2;
  const float* cs = table.cos_sin(positions, config);  // [n_tokens][half] (cos, sin)
  const Rows rows(x);                                  // row h + t * n_heads: head h of token t
  parallel_chunks(*ctx.pool, x.n_rows(), min_rows(config.n_rot), [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      rotate_head(rows.mutable_f32(r), cs + (r / n_heads) * half * 2, half, config.neox);
    }
  });
}

}  // namespace strata::cpu
