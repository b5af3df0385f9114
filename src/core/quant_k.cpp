// Reference quantize / dequantize of the K-quants: 256-element super-blocks split into
// sub-blocks of 16 or 32 elements, each sub-block with its own small integer scale (and
// min), which are in turn quantized against one f16 scale per super-block. The bit
// layouts are those of GGUF files (see quant_blocks.h); the quantizers follow the ideas of
// ggml's reference quantizers (no importance matrix) but are written independently:
//
//   1. fit each sub-block on its own with a small search over the step size followed by a
//      weighted least-squares solve (fit_affine / fit_symmetric),
//   2. quantize the sub-block scales (and mins) to 4, 6 or 8 bits against a super-block
//      scale (quantize_affine_superblock / quantize_symmetric_superblock),
//   3. re-pick every element's level against the scales as they will be decoded.
//
// Robustness: every super-block is fitted in units of its largest magnitude, so no square
// or sum can overflow; every float -> int conversion is clamped first; f16 scales saturate
// at 65504 instead of becoming inf. So no finite input can produce a NaN or inf.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/k_scales.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace strata {
namespace {

// Super-blocks whose largest magnitude is below this are stored as all zero: no f16 scale
// could represent them anyway (the smallest f16 is 6e-8).
constexpr float kTinyBlock = 1e-20f;
// Sub-blocks are fitted in units of their super-block's largest magnitude; one whose spread
// is below this is treated as constant (its step sizes would overflow, and no 6-bit scale
// could resolve it anyway).
constexpr float kNegligible = 1e-30f;

int64_t super_blocks(const char* type, int64_t n) {
  if (n < 0 || n % QK_K != 0) {
    fail("{}: row of {} elements is not a multiple of the super-block size {}", type, n, QK_K);
  }
  return n / QK_K;
}

// Nearest integer to v within [lo, hi], as a float (ties to even). Clamping first keeps
// huge values, infinities and NaN (mapped to lo) in range, so a later int cast is safe.
inline float round_clamped(float v, float lo, float hi) {
  v = std::max(lo, std::min(v, hi));
  constexpr float kRounder = 12582912.f;  // 1.5 * 2^23: the sum keeps no fraction bits
  return (v + kRounder) - kRounder;
}

// The same for the inner loops of the searches, where |v| <= nmax + 1 by construction: the
// clamp is done on integers, which lets the compiler vectorize the loop (a float compare may
// trap, so it would not).
inline float search_level(float v, int lo, int hi) {
  constexpr float kRounder = 12582912.f;
  int l = int((v + kRounder) - kRounder);
  l = l < lo ? lo : l;
  l = l > hi ? hi : l;
  return float(l);
}

// f16 bits of a scale, saturated at the largest finite half so that it is never inf.
uint16_t f16_saturated(float v) {
  constexpr float kHalfMax = 65504.f;
  return f32_to_f16(std::clamp(v, -kHalfMax, kHalfMax));
}

float max_abs(const float* x, int n) {
  float m = 0.f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// The element of largest magnitude, with its sign (the first one on ties).
float signed_max(const float* x, int n) {
  float best = 0.f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(best)) best = x[i];
  }
  return best;
}

// ---- Element layouts shared by several types ---------------------------------------------
// 2-bit fields (Q2_K, Q3_K low bits): element e = 128*c + 32*k + l lives in
// qs[32*c + l] at bits 2k..2k+1.
inline int get_2bit(const uint8_t* qs, int e) {
  return (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}
inline void set_2bit(uint8_t* qs, int e, int v) {
  qs[(e / 128) * 32 + e % 32] |= uint8_t(v << (2 * ((e % 128) / 32)));
}

// 4-bit fields (Q4_K, Q5_K low bits): element e = 64*c + 32*h + l lives in qs[32*c + l],
// low nibble for h = 0 and high nibble for h = 1.
inline int get_4bit(const uint8_t* qs, int e) {
  return (qs[(e / 64) * 32 + e % 32] >> (4 * ((e % 64) / 32))) & 15;
}
inline void set_4bit(uint8_t* qs, int e, int v) {
  qs[(e / 64) * 32 + e % 32] |= uint8_t(v << (4 * ((e % 64) / 32)));
}

// One extra high bit per element (Q3_K hmask, Q5_K qh): bit e/32 of byte e%32.
inline int get_hbit(const uint8_t* h, int e) {
  return (h[e % 32] >> (e / 32)) & 1;
}
inline void set_hbit(uint8_t* h, int e) {
  h[e % 32] |= uint8_t(1u << (e / 32));
}

// Q4_K / Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes: scale_min_6bit
// (k_scales.h) reads them; this writes them the same way, into zeroed bytes.
void set_scale_min_6bit(uint8_t* s, int j, int scale, int min) {
  if (j < 4) {
    s[j] |= uint8_t(scale);
    s[j + 4] |= uint8_t(min);
  } else {
    s[j + 4] |= uint8_t((scale & 15) | ((min & 15) << 4));
    s[j - 4] |= uint8_t((scale >> 4) << 6);
    s[j] |= uint8_t((min >> 4) << 6);
  }
}

// Q3_K packs 16 six-bit scales (stored + 32) into 12 bytes: the low 4 bits of scale j in
// byte j%8 (low nibble for j < 8, high nibble for j >= 8), its top 2 bits in byte
// 8 + j%4 at bits 2*(j/4).
int get_scale_q3(const uint8_t* s, int j) {
  const int low = (s[j % 8] >> (4 * (j / 8))) & 15;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}
void set_scale_q3(uint8_t* s, int j, int scale) {
  const int u = scale + 32;  // 0..63
  s[j % 8] |= uint8_t((u & 15) << (4 * (j / 8)));
  s[8 + j % 4] |= uint8_t((u >> 4) << (2 * (j / 4)));
}

// ---- Step 1a: affine sub-block fit, x ~ scale * l - min with l in 0..nmax ---------------
// Used by Q2_K, Q4_K, Q5_K. The search tries step sizes (max - min0) / (nmax + r) for r
// in rmin, rmin + rdelta, ..., snaps every element to its level, and solves the weighted
// least-squares problem for (scale, min) given those levels; the best fit wins.
struct AffineFit {
  float scale = 0.f;  // >= 0
  float min = 0.f;    // >= 0, subtracted
};
struct StepSearch {
  float rmin;
  float rdelta;
  int nstep;
};

// Weighted sums of one sub-block for a fixed set of levels l: w = sum(w), x = sum(w x),
// l = sum(w l), ll = sum(w l^2), lx = sum(w l x).
struct LevelSums {
  float w = 0, x = 0;  // independent of the levels
  float l = 0, ll = 0, lx = 0;
};

// Weighted squared error of x ~ scale*l + offset, from the sums alone (minus the constant
// sum of w*x^2, which does not change the ranking).
float affine_error(const LevelSums& s, float scale, float offset) {
  return scale * scale * s.ll + 2 * scale * offset * s.l + offset * offset * s.w - 2 * scale * s.lx - 2 * offset * s.x;
}

// Best (scale, offset <= 0) for fixed levels; false when the levels do not determine it.
bool solve_affine(const LevelSums& s, float& scale, float& offset) {
  const float det = s.w * s.ll - s.l * s.l;
  if (!(det > 0)) return false;
  scale = (s.w * s.lx - s.x * s.l) / det;
  offset = (s.ll * s.x - s.l * s.lx) / det;
  if (offset > 0) {  // the format only subtracts a min: refit the scale alone
    offset = 0;
    scale = s.lx / s.ll;
  }
  return scale > 0;
}

// Sum of a[i] * b[i] in 8 interleaved partial sums: a fixed order (so results do not depend
// on the compiler) that still lets the compiler use SIMD lanes.
template <int N>
float dot(const float* a, const float* b) {
  static_assert(N % 8 == 0);
  float acc[8] = {};
  for (int i = 0; i < N; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Snaps the elements to levels l = round((x - offset) * inv_step) in lo..hi; also w * l.
template <int N>
[[gnu::noinline]] void snap_levels(const float* x, const float* w, float offset, float inv_step, int lo, int hi,
                                   float* l, float* wl) {
  for (int i = 0; i < N; ++i) {
    l[i] = search_level((x[i] - offset) * inv_step, lo, hi);
    wl[i] = w[i] * l[i];
  }
}

// Snaps the elements to levels 0..nmax (as snap_levels) and returns their sums.
template <int N>
LevelSums affine_level_sums(const float* x, const float* w, const float* wx, float offset, float inv_step, int nmax,
                            LevelSums sums) {
  float l[N], wl[N];
  snap_levels<N>(x, w, offset, inv_step, 0, nmax, l, wl);
  sums.l = dot<N>(w, l);
  sums.ll = dot<N>(wl, l);
  sums.lx = dot<N>(wx, l);
  return sums;
}

// Lloyd iterations from a fit: snap every element to its nearest level under (scale, min),
// then solve for (scale, min) given those levels; each round is kept only if it lowers
// the error. Both steps are exact, so this finds what a grid of step sizes missed.
template <int N>
void polish_affine(const float* x, const float* w, const float* wx, int nmax, const LevelSums& base, AffineFit& fit,
                   float& error) {
  constexpr int kRounds = 2;
  for (int round = 0; round < kRounds && fit.scale > 0; ++round) {
    const float inv_step = 1.f / fit.scale;
    float l[N], wl[N];
    for (int i = 0; i < N; ++i) {
      l[i] = round_clamped((x[i] + fit.min) * inv_step, 0.f, float(nmax));
      wl[i] = w[i] * l[i];
    }
    LevelSums s = base;
    s.l = dot<N>(w, l);
    s.ll = dot<N>(wl, l);
    s.lx = dot<N>(wx, l);
    float scale, offset;
    if (!solve_affine(s, scale, offset)) return;
    const float e = affine_error(s, scale, offset);
    if (!(e < error)) return;
    error = e;
    fit = {scale, -offset};
  }
}

template <int N>
AffineFit fit_affine(const float* x, const float* w, int nmax, const StepSearch& search) {
  float lo = 0.f, hi = x[0];
  LevelSums base;
  float wx[N];
  for (int i = 0; i < N; ++i) {
    lo = std::min(lo, x[i]);  // the min is never positive: the format subtracts it
    hi = std::max(hi, x[i]);
    wx[i] = w[i] * x[i];
    base.w += w[i];
    base.x += wx[i];
  }
  if (!(hi - lo > kNegligible)) return {0.f, -lo};  // constant sub-block
  const float fmax = float(nmax);

  // Candidate 0: the plain min-max grid.
  AffineFit best{(hi - lo) / fmax, -lo};
  float best_error = affine_error(affine_level_sums<N>(x, w, wx, lo, fmax / (hi - lo), nmax, base), best.scale, lo);
  for (int k = 0; k <= search.nstep; ++k) {
    const float inv_step = (fmax + search.rmin + search.rdelta * float(k)) / (hi - lo);
    const LevelSums s = affine_level_sums<N>(x, w, wx, lo, inv_step, nmax, base);
    float scale, offset;
    if (!solve_affine(s, scale, offset)) continue;
    const float error = affine_error(s, scale, offset);
    if (error < best_error) {
      best_error = error;
      best = {scale, -offset};
    }
  }
  polish_affine<N>(x, w, wx, nmax, base, best, best_error);
  return best;
}

// ---- Step 1b: symmetric sub-block fit, x ~ scale * l with l in -nmax..nmax-1 -----------
// Used by Q3_K, Q6_K. The element of largest magnitude maps to -nmax (the level without a
// positive twin), so the scale carries that element's sign. Step sizes max / (nmax + r),
// r in -0.9..0.9, are tried; for fixed levels the best scale is sum(w x l) / sum(w l^2) and
// leaves the weighted error sum(w x^2) - sum(w x l)^2 / sum(w l^2): the largest
// sum(w x l)^2 / sum(w l^2) wins. Weights are x^2, which favours the large elements.
template <int N>
float fit_symmetric(const float* x, int nmax) {
  const float max = signed_max(x, N);
  if (!(std::fabs(max) > kNegligible)) return 0.f;
  float w[N];
  for (int i = 0; i < N; ++i) w[i] = x[i] * x[i];

  float best_scale = 0.f, best_score = -1.f;
  for (int k = -9; k <= 9; ++k) {
    const float inv_scale = -(float(nmax) + 0.1f * float(k)) / max;
    float l[N], wl[N];
    snap_levels<N>(x, w, 0.f, inv_scale, -nmax, nmax - 1, l, wl);
    const float lx = dot<N>(wl, x), ll = dot<N>(wl, l);
    if (ll > 0 && lx * lx > best_score * ll) {
      best_score = lx * lx / ll;
      best_scale = lx / ll;
    }
  }
  return best_scale;
}

// ---- Step 2 + 3: super-blocks -------------------------------------------------------------

// An affine super-block before packing: f16 scales, integer sub-block scales and mins,
// and one level per element.
struct AffineBlock {
  uint16_t d = 0, dmin = 0;
  uint8_t scale[QK_K / 16] = {};
  uint8_t min[QK_K / 16] = {};
  uint8_t level[QK_K] = {};
};

// Weights of the affine fits. Q4_K / Q5_K: rms of the sub-block + |x| (every element
// counts, large ones more); Q2_K: |x| (with 3 levels, spend them on the large elements).
enum class AffineWeights { RmsPlusAbs, Abs };

// x ~ d*scale_j * l - dmin*min_j for sub-blocks j of `Sub` elements, integer scales and mins
// in 0..scale_max, levels in 0..nmax.
template <int Sub>
AffineBlock quantize_affine_superblock(const float* x, int nmax, int scale_max, AffineWeights weighting,
                                       const StepSearch& search) {
  constexpr int kSubBlocks = QK_K / Sub;
  AffineBlock b;
  const float amax = max_abs(x, QK_K);
  if (!(amax >= kTinyBlock)) return b;

  // Step 1 in units of amax.
  const float inv_amax = 1.f / amax;
  AffineFit fit[kSubBlocks];
  float max_scale = 0.f, max_min = 0.f;
  for (int j = 0; j < kSubBlocks; ++j) {
    float xs[Sub], w[Sub];
    float sum_x2 = 0.f;
    for (int i = 0; i < Sub; ++i) {
      xs[i] = x[j * Sub + i] * inv_amax;
      sum_x2 += xs[i] * xs[i];
    }
    const float rms = weighting == AffineWeights::RmsPlusAbs ? std::sqrt(sum_x2 / Sub) : 0.f;
    for (int i = 0; i < Sub; ++i) w[i] = rms + std::fabs(xs[i]);
    fit[j] = fit_affine<Sub>(xs, w, nmax, search);
    max_scale = std::max(max_scale, fit[j].scale);
    max_min = std::max(max_min, fit[j].min);
  }

  // Step 2: the largest scale (min) maps to scale_max.
  const float fmax = float(scale_max);
  const float d = max_scale / fmax, dmin = max_min / fmax;
  for (int j = 0; j < kSubBlocks; ++j) {
    b.scale[j] = d > 0 ? uint8_t(round_clamped(fit[j].scale / d, 0.f, fmax)) : 0;
    b.min[j] = dmin > 0 ? uint8_t(round_clamped(fit[j].min / dmin, 0.f, fmax)) : 0;
  }
  b.d = f16_saturated(d * amax);
  b.dmin = f16_saturated(dmin * amax);

  // Step 3: each element's nearest level under the decoded scales.
  const float d_all = f16_to_f32(b.d), dmin_all = f16_to_f32(b.dmin);
  for (int j = 0; j < kSubBlocks; ++j) {
    const float step = d_all * float(b.scale[j]);
    const float offset = dmin_all * float(b.min[j]);
    if (step == 0.f) continue;  // every level decodes to -offset
    for (int i = 0; i < Sub; ++i) {
      b.level[j * Sub + i] = uint8_t(round_clamped((x[j * Sub + i] + offset) / step, 0.f, float(nmax)));
    }
  }
  return b;
}

// A symmetric super-block before packing: levels are stored + nmax (0..2*nmax-1).
struct SymmetricBlock {
  uint16_t d = 0;
  int scale[QK_K / 16] = {};
  uint8_t level[QK_K] = {};
};

// x ~ d*scale_j * (l - nmax) for 16 sub-blocks of 16, integer scales in
// -scale_levels..scale_levels-1 (the largest-magnitude scale maps to -scale_levels).
SymmetricBlock quantize_symmetric_superblock(const float* x, int nmax, int scale_levels) {
  constexpr int kSub = 16, kSubBlocks = QK_K / kSub;
  SymmetricBlock b;
  std::fill(std::begin(b.level), std::end(b.level), uint8_t(nmax));  // value 0
  const float amax = max_abs(x, QK_K);
  if (!(amax >= kTinyBlock)) return b;

  const float inv_amax = 1.f / amax;
  float scale[kSubBlocks];
  for (int j = 0; j < kSubBlocks; ++j) {
    float xs[kSub];
    for (int i = 0; i < kSub; ++i) xs[i] = x[j * kSub + i] * inv_amax;
    scale[j] = fit_symmetric<kSub>(xs, nmax);
  }
  const float max_scale = signed_max(scale, kSubBlocks);
  if (std::fabs(max_scale) < kTinyBlock) return b;
  const float d = max_scale / -float(scale_levels);
  for (int j = 0; j < kSubBlocks; ++j) {
    b.scale[j] = int(round_clamped(scale[j] / d, -float(scale_levels), float(scale_levels - 1)));
  }
  b.d = f16_saturated(d * amax);

  const float d_all = f16_to_f32(b.d);
  for (int j = 0; j < kSubBlocks; ++j) {
    const float step = d_all * float(b.scale[j]);
    if (step == 0.f) continue;
    for (int i = 0; i < kSub; ++i) {
      const float l = round_clamped(x[j * kSub + i] / step, -float(nmax), float(nmax - 1));
      b.level[j * kSub + i] = uint8_t(int(l) + nmax);
    }
  }
  return b;
}

constexpr StepSearch kSearchQ2{-0.5f, 0.1f, 15};
constexpr StepSearch kSearchQ4{-1.0f, 0.1f, 20};
constexpr StepSearch kSearchQ5{-0.5f, 0.1f, 15};

}  // namespace

// ---- Q2_K: x = d*(scales[j] & 15) * q - dmin*(scales[j] >> 4), j = e/16, q 2 bits ----------

void dequantize_row_q2_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ2_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q2_K", n); ib < nb; ++ib) {
    const BlockQ2_K& b = blocks[ib];
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
      const uint8_t sc = b.scales[e / 16];
      const float step = d * float(sc & 15), offset = dmin * float(sc >> 4);
      dst[ib * QK_K + e] = step * float(get_2bit(b.qs, e)) - offset;
    }
  }
}

void quantize_row_q2_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ2_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q2_K", n); ib < nb; ++ib) {
    const AffineBlock a = quantize_affine_superblock<16>(src + ib * QK_K, 3, 15, AffineWeights::Abs, kSearchQ2);
    BlockQ2_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    b.d = a.d;
    b.dmin = a.dmin;
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = uint8_t(a.scale[j] | (a.min[j] << 4));
    for (int e = 0; e < QK_K; ++e) set_2bit(b.qs, e, a.level[e]);
  }
}

// ---- Q3_K: x = d*s_j * (q - 4), q = 2 low bits | hmask bit << 2, j = e/16 ------------------

void dequantize_row_q3_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ3_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q3_K", n); ib < nb; ++ib) {
    const BlockQ3_K& b = blocks[ib];
    const float d = f16_to_f32(b.d);
    for (int e = 0; e < QK_K; ++e) {
      const float step = d * float(get_scale_q3(b.scales, e / 16));
      const int q = get_2bit(b.qs, e) | (get_hbit(b.hmask, e) << 2);
      dst[ib * QK_K + e] = step * float(q - 4);
    }
  }
}

void quantize_row_q3_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ3_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q3_K", n); ib < nb; ++ib) {
    const SymmetricBlock s = quantize_symmetric_superblock(src + ib * QK_K, 4, 32);
    BlockQ3_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    b.d = s.d;
    for (int j = 0; j < QK_K / 16; ++j) set_scale_q3(b.scales, j, s.scale[j]);
    for (int e = 0; e < QK_K; ++e) {
      set_2bit(b.qs, e, s.level[e] & 3);
      if (s.level[e] & 4) set_hbit(b.hmask, e);
    }
  }
}

// ---- Q4_K / Q5_K: x = d*scale_j * q - dmin*min_j, j = e/32, q 4 (+1) bits -----------------

void dequantize_row_q4_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q4_K", n); ib < nb; ++ib) {
    const BlockQ4_K& b = blocks[ib];
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    for (int j = 0; j < QK_K / 32; ++j) {
      int scale, min;
      scale_min_6bit(b.scales, j, scale, min);
      const float step = d * float(scale), offset = dmin * float(min);
      for (int e = 32 * j; e < 32 * j + 32; ++e) dst[ib * QK_K + e] = step * float(get_4bit(b.qs, e)) - offset;
    }
  }
}

void quantize_row_q4_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ4_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q4_K", n); ib < nb; ++ib) {
    const AffineBlock a = quantize_affine_superblock<32>(src + ib * QK_K, 15, 63, AffineWeights::RmsPlusAbs, kSearchQ4);
    BlockQ4_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    b.d = a.d;
    b.dmin = a.dmin;
    for (int j = 0; j < QK_K / 32; ++j) set_scale_min_6bit(b.scales, j, a.scale[j], a.min[j]);
    for (int e = 0; e < QK_K; ++e) set_4bit(b.qs, e, a.level[e]);
  }
}

void dequantize_row_q5_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q5_K", n); ib < nb; ++ib) {
    const BlockQ5_K& b = blocks[ib];
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    for (int j = 0; j < QK_K / 32; ++j) {
      int scale, min;
      scale_min_6bit(b.scales, j, scale, min);
      const float step = d * float(scale), offset = dmin * float(min);
      for (int e = 32 * j; e < 32 * j + 32; ++e) {
        const int q = get_4bit(b.qs, e) | (get_hbit(b.qh, e) << 4);
        dst[ib * QK_K + e] = step * float(q) - offset;
      }
    }
  }
}

void quantize_row_q5_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ5_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q5_K", n); ib < nb; ++ib) {
    const AffineBlock a = quantize_affine_superblock<32>(src + ib * QK_K, 31, 63, AffineWeights::RmsPlusAbs, kSearchQ5);
    BlockQ5_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    b.d = a.d;
    b.dmin = a.dmin;
    for (int j = 0; j < QK_K / 32; ++j) set_scale_min_6bit(b.scales, j, a.scale[j], a.min[j]);
    for (int e = 0; e < QK_K; ++e) {
      set_4bit(b.qs, e, a.level[e] & 15);
      if (a.level[e] & 16) set_hbit(b.qh, e);
    }
  }
}

// ---- Q6_K: x = d*scales[j] * (q - 32), j = e/16, q = 4 bits in ql | 2 bits in qh << 4 ------
// Element e = 128*c + 32*k + l: low nibble of ql[64*c + 32*(k&1) + l] (k < 2) or high nibble
// (k >= 2); high bits in qh[32*c + l] at bits 2k..2k+1.

namespace {
inline int get_6bit(const BlockQ6_K& b, int e) {
  const int c = e / 128, k = (e % 128) / 32, l = e % 32;
  const int low = (b.ql[64 * c + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
  const int high = (b.qh[32 * c + l] >> (2 * k)) & 3;
  return low | (high << 4);
}
inline void set_6bit(BlockQ6_K& b, int e, int q) {
  const int c = e / 128, k = (e % 128) / 32, l = e % 32;
  b.ql[64 * c + 32 * (k & 1) + l] |= uint8_t((q & 15) << (4 * (k >> 1)));
  b.qh[32 * c + l] |= uint8_t((q >> 4) << (2 * k));
}
}  // namespace

void dequantize_row_q6_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q6_K", n); ib < nb; ++ib) {
    const BlockQ6_K& b = blocks[ib];
    const float d = f16_to_f32(b.d);
    for (int e = 0; e < QK_K; ++e) {
      const float step = d * float(b.scales[e / 16]);
      dst[ib * QK_K + e] = step * float(get_6bit(b, e) - 32);
    }
  }
}

void quantize_row_q6_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ6_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q6_K", n); ib < nb; ++ib) {
    const SymmetricBlock s = quantize_symmetric_superblock(src + ib * QK_K, 32, 128);
    BlockQ6_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    b.d = s.d;
    for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = int8_t(std::min(s.scale[j], 127));
    for (int e = 0; e < QK_K; ++e) set_6bit(b, e, s.level[e]);
  }
}

// ---- Q8_K: x = d * qs[e]; bsums[j] = sum of qs[16j .. 16j+15] ------------------------------
// d = max / -127 with the signed max, so the largest-magnitude element becomes -127.

void dequantize_row_q8_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ8_K*>(src);
  for (int64_t ib = 0, nb = super_blocks("q8_K", n); ib < nb; ++ib) {
    for (int e = 0; e < QK_K; ++e) dst[ib * QK_K + e] = blocks[ib].d * float(blocks[ib].qs[e]);
  }
}

void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_K*>(dst);
  for (int64_t ib = 0, nb = super_blocks("q8_K", n); ib < nb; ++ib) {
    const float* x = src + ib * QK_K;
    BlockQ8_K& b = blocks[ib];
    std::memset(&b, 0, sizeof(b));
    const float max = signed_max(x, QK_K);
    const float inv_scale = max != 0.f ? -127.f / max : 0.f;
    if (!std::isfinite(inv_scale) || inv_scale == 0.f) continue;  // zero (or subnormal) block
    b.d = 1.f / inv_scale;
    // Near FLT_MAX, rounding can leave 127 * |d| just past it: step d toward zero.
    while (!std::isfinite(127.f * b.d)) b.d = std::nextafter(b.d, 0.f);
    for (int e = 0; e < QK_K; ++e) b.qs[e] = int8_t(search_level(x[e] * inv_scale, -127, 127));  // |x| <= |max|
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += b.qs[16 * j + i];
      b.bsums[j] = int16_t(sum);
    }
  }
}

}  // namespace strata
