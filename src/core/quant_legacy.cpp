// Reference quantize / dequantize of the 32-element block types Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0 and IQ4_NL, and of IQ4_XS (256-element super-blocks with IQ4_NL's levels).
//
// The legacy quantizers (Q4_0 .. Q8_0) take the same steps with the same float operations
// as ggml's reference quantizers (quantize_row_*_ref), so a file we write is bit-identical
// to one llama.cpp writes: the scale comes from the block's extreme value(s) in f32, its
// inverse is taken before the scale is rounded to f16, and levels are found by adding an
// offset and truncating. We differ only where ggml's result would not be finite: a scale
// (or Q4_1/Q5_1 minimum) that overflows f16 saturates at +-65504 instead of becoming inf.
//
// The IQ4 quantizers are our own: per block of 32 they search for the least-squares scale
// over trial scales that map the largest value near the outer levels; they are not meant
// to match ggml bit for bit.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace strata {
namespace {

constexpr float kF16Max = 65504.0f;

// Number of blocks in a row of `n` elements; throws unless n is a multiple of `block`.
int64_t block_count(int64_t n, int64_t block, const char* type) {
  if (n < 0 || n % block != 0) {
    fail("{}: row of {} elements is not a multiple of the block size {}", type, n, block);
  }
  return n / block;
}

// A value that is about to be stored as f16, clamped to the finite f16 range so that it
// cannot become inf (values that round to a finite f16 are returned unchanged).
float saturate_f16(float v) {
  return std::fabs(v) < 65520.0f ? v : std::copysign(kF16Max, v);
}

// ggml's level of a scaled value: truncation toward zero of `v` (which already includes
// the rounding offset), limited to 0..hi. The clamp happens before the conversion, so no
// input (inf, NaN) can make the float -> int conversion undefined.
uint8_t truncated_level(float v, int hi) {
  return uint8_t(std::fmin(std::fmax(v, 0.0f), float(hi)));
}

// ---- bit layouts ------------------------------------------------------------------------
// Grouped nibbles of every 4-bit 32-element block: byte j (0..15) holds element j in its
// low nibble and element j+16 in its high nibble.
int get_nibble(const uint8_t* qs, int i) {
  return i < 16 ? qs[i] & 0x0f : qs[i - 16] >> 4;
}

void pack_nibbles(const uint8_t* levels, uint8_t* qs) {  // levels: 32 values 0..15
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((levels[j] & 0x0f) | (levels[j + 16] << 4));
}

// Fifth bits of Q5_0 / Q5_1: qh is a little-endian u32 whose bit i is bit 4 of element i.
uint32_t load_qh(const uint8_t* qh) {
  return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}

void store_qh(const uint8_t* levels, uint8_t* qh) {  // levels: 32 values 0..31
  uint32_t bits = 0;
  for (int i = 0; i < 32; ++i) bits |= uint32_t(levels[i] >> 4) << i;
  for (int b = 0; b < 4; ++b) qh[b] = uint8_t(bits >> (8 * b));
}

int get_q5(const uint8_t* qs, uint32_t qh, int i) {
  return get_nibble(qs, i) | int((qh >> i) & 1u) << 4;
}

// IQ4_XS sub-block scales, 6 bits each, stored with an offset of 32: the low 4 bits of
// scale j are nibble j%2 of scales_l[j/2] (low nibble first), the high 2 bits are bits
// 2j..2j+1 of scales_h.
int get_iq4xs_scale(const BlockIQ4_XS& b, int j) {
  const int low = (b.scales_l[j / 2] >> (4 * (j % 2))) & 0x0f;
  const int high = (b.scales_h >> (2 * j)) & 3;
  return (low | high << 4) - 32;
}

void set_iq4xs_scales(BlockIQ4_XS& b, const int* scales) {  // 8 values -32..31
  b.scales_h = 0;
  std::memset(b.scales_l, 0, sizeof(b.scales_l));
  for (int j = 0; j < QK_K / 32; ++j) {
    const int s = scales[j] + 32;
    b.scales_l[j / 2] |= uint8_t((s & 0x0f) << (4 * (j % 2)));
    b.scales_h |= uint16_t((s >> 4) << (2 * j));
  }
}

// The element of largest magnitude with its sign (the first one on ties), as ggml picks it.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// ---- Q4_0: x = d * (q - 8) ------------------------------------------------------------
// d maps the signed extreme onto level 0 (-8), so the wider side of the range holds it.
void quantize_q4_0_block(const float* x, BlockQ4_0& b) {
  const float d = saturate_f16(signed_absmax(x, 32) / -8);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = truncated_level(x[j] * id + 8.5f, 15);
  pack_nibbles(q, b.qs);
}

void dequantize_q4_0_block(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 32; ++i) y[i] = float(get_nibble(b.qs, i) - 8) * d;
}

// ---- Q4_1: x = d * q + m --------------------------------------------------------------
// m is the block minimum, d spreads [min, max] over the 16 levels.
void min_max(const float* x, int n, float& min, float& max) {
  min = 3.40282347e38f;
  max = -3.40282347e38f;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

void quantize_q4_1_block(const float* x, BlockQ4_1& b) {
  float min, max;
  min_max(x, 32, min, max);
  const float d = saturate_f16((max - min) / 15);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(saturate_f16(min));
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = truncated_level((x[j] - min) * id + 0.5f, 15);
  pack_nibbles(q, b.qs);
}

void dequantize_q4_1_block(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int i = 0; i < 32; ++i) y[i] = float(get_nibble(b.qs, i)) * d + m;
}

// ---- Q5_0: x = d * (q - 16), q = nibble | fifth bit << 4 ------------------------------
void quantize_q5_0_block(const float* x, BlockQ5_0& b) {
  const float d = saturate_f16(signed_absmax(x, 32) / -16);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = truncated_level(x[j] * id + 16.5f, 31);
  pack_nibbles(q, b.qs);
  store_qh(q, b.qh);
}

void dequantize_q5_0_block(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  const uint32_t qh = load_qh(b.qh);
  for (int i = 0; i < 32; ++i) y[i] = float(get_q5(b.qs, qh, i) - 16) * d;
}

// ---- Q5_1: x = d * q + m, q as Q5_0 ---------------------------------------------------
void quantize_q5_1_block(const float* x, BlockQ5_1& b) {
  float min, max;
  min_max(x, 32, min, max);
  const float d = saturate_f16((max - min) / 31);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(saturate_f16(min));
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = truncated_level((x[j] - min) * id + 0.5f, 31);
  pack_nibbles(q, b.qs);
  store_qh(q, b.qh);
}

void dequantize_q5_1_block(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  const uint32_t qh = load_qh(b.qh);
  for (int i = 0; i < 32; ++i) y[i] = float(get_q5(b.qs, qh, i)) * d + m;
}

// ---- Q8_0: x = d * q, q int8 in -127..127 (round to nearest, halves away from zero) ----
void quantize_q8_0_block(const float* x, BlockQ8_0& b) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = saturate_f16(amax / 127);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b.d = f32_to_f16(d);
  for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(std::fmin(std::fmax(std::round(x[j] * id), -127.0f), 127.0f));
}

void dequantize_q8_0_block(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 32; ++i) y[i] = float(b.qs[i]) * d;
}

// ---- IQ4 levels -------------------------------------------------------------------------
// Midpoints between consecutive levels of kvalues_iq4nl: the nearest level of v is the
// number of midpoints below or at v.
constexpr std::array<float, 15> kIQ4Midpoints = [] {
  std::array<float, 15> mid{};
  for (int l = 0; l < 15; ++l) mid[l] = 0.5f * float(kvalues_iq4nl[l] + kvalues_iq4nl[l + 1]);
  return mid;
}();

int nearest_iq4_level(float v) {
  return int(std::upper_bound(kIQ4Midpoints.begin(), kIQ4Midpoints.end(), v) - kIQ4Midpoints.begin());
}

// Blocks whose largest magnitude is below this are stored as zeros (their scale would be
// far below f16's smallest subnormal anyway, and 1/scale could overflow).
constexpr float kIQ4TinyBlock = 1e-30f;
// Trial scales: the signed extreme maps onto level value (outer level + t), t in -kTry..kTry,
// on either end of the (asymmetric) level table.
constexpr int kIQ4Try = 8;

// Squared-error fit of one trial scale: the levels nearest to x/trial, and for those levels
// the least-squares scale d = sum(q x) / sum(q^2). With that d the squared error is
// sum(x^2) - gain, so the larger `gain` = sum(q x)^2 / sum(q^2), the better the fit.
struct ScaleFit {
  double d = 0.0;
  double gain = 0.0;
};

ScaleFit fit_iq4_scale(const float* x, int n, float trial) {
  const float inv = 1.0f / trial;
  double sum_qx = 0.0, sum_qq = 0.0;  // double: no overflow even for x near FLT_MAX
  for (int j = 0; j < n; ++j) {
    const double q = kvalues_iq4nl[nearest_iq4_level(x[j] * inv)];
    sum_qx += q * x[j];
    sum_qq += q * q;
  }
  if (sum_qq <= 0.0) return {};
  return {sum_qx / sum_qq, sum_qx * sum_qx / sum_qq};
}

// The best scale of a block of `n` values, not yet rounded to f16 but limited to its range;
// 0 for a block of (near) zeros.
float best_iq4_scale(const float* x, int n) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kIQ4TinyBlock) return 0.0f;
  ScaleFit best;
  for (int t = -kIQ4Try; t <= kIQ4Try; ++t) {
    for (const int outer : {kvalues_iq4nl[0], kvalues_iq4nl[15]}) {
      const ScaleFit fit = fit_iq4_scale(x, n, max / float(outer + t));
      if (fit.gain > best.gain) best = fit;
    }
  }
  return float(std::clamp(best.d, -double(kF16Max), double(kF16Max)));
}

// Levels of 32 values for the stored scale `d`, packed as grouped nibbles.
void pack_iq4_levels(const float* x, float d, uint8_t* qs) {
  const float inv = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) q[j] = uint8_t(nearest_iq4_level(x[j] * inv));
  pack_nibbles(q, qs);
}

// ---- IQ4_NL: x = d * kvalues_iq4nl[q], nibbles as Q4_0 --------------------------------
void quantize_iq4_nl_block(const float* x, BlockIQ4_NL& b) {
  b.d = f32_to_f16(saturate_f16(best_iq4_scale(x, 32)));
  pack_iq4_levels(x, f16_to_f32(b.d), b.qs);
}

void dequantize_iq4_nl_block(const BlockIQ4_NL& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < 32; ++i) y[i] = d * float(kvalues_iq4nl[get_nibble(b.qs, i)]);
}

// ---- IQ4_XS: 8 sub-blocks of 32, x = d * scale_j * kvalues_iq4nl[q] --------------------
// Each sub-block's best scale is rounded to a multiple scale_j (-32..31) of the super-block
// scale d, which maps the sub-block scale of largest magnitude onto -32.
void quantize_iq4_xs_block(const float* x, BlockIQ4_XS& b) {
  constexpr int kSub = QK_K / 32;
  float sub_scales[kSub];
  for (int j = 0; j < kSub; ++j) sub_scales[j] = best_iq4_scale(x + 32 * j, 32);
  b.d = f32_to_f16(saturate_f16(signed_absmax(sub_scales, kSub) / -32));
  const float d = f16_to_f32(b.d);
  int scales[kSub];
  for (int j = 0; j < kSub; ++j) {
    const float s = d != 0.0f ? sub_scales[j] / d : 0.0f;
    scales[j] = int(std::lround(std::fmin(std::fmax(s, -32.0f), 31.0f)));
    pack_iq4_levels(x + 32 * j, d * float(scales[j]), b.qs + 16 * j);
  }
  set_iq4xs_scales(b, scales);
}

void dequantize_iq4_xs_block(const BlockIQ4_XS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < QK_K / 32; ++j) {
    const float dl = d * float(get_iq4xs_scale(b, j));
    for (int i = 0; i < 32; ++i) y[32 * j + i] = dl * float(kvalues_iq4nl[get_nibble(b.qs + 16 * j, i)]);
  }
}

// Row drivers: apply a block function to every block of the row.
template <typename Block, int kSize>
void dequantize_blocks(const void* src, float* dst, int64_t n, const char* type,
                       void (*block_fn)(const Block&, float*)) {
  const auto* blocks = static_cast<const Block*>(src);
  const int64_t nb = block_count(n, kSize, type);
  for (int64_t i = 0; i < nb; ++i) block_fn(blocks[i], dst + i * kSize);
}

template <typename Block, int kSize>
void quantize_blocks(const float* src, void* dst, int64_t n, const char* type, void (*block_fn)(const float*, Block&)) {
  auto* blocks = static_cast<Block*>(dst);
  const int64_t nb = block_count(n, kSize, type);
  for (int64_t i = 0; i < nb; ++i) block_fn(src + i * kSize, blocks[i]);
}

}  // namespace

void dequantize_row_q4_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ4_0, QK4_0>(src, dst, n, "q4_0", dequantize_q4_0_block);
}
void dequantize_row_q4_1(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ4_1, QK4_1>(src, dst, n, "q4_1", dequantize_q4_1_block);
}
void dequantize_row_q5_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ5_0, QK5_0>(src, dst, n, "q5_0", dequantize_q5_0_block);
}
void dequantize_row_q5_1(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ5_1, QK5_1>(src, dst, n, "q5_1", dequantize_q5_1_block);
}
void dequantize_row_q8_0(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockQ8_0, QK8_0>(src, dst, n, "q8_0", dequantize_q8_0_block);
}
void dequantize_row_iq4_nl(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockIQ4_NL, QK4_NL>(src, dst, n, "iq4_nl", dequantize_iq4_nl_block);
}
void dequantize_row_iq4_xs(const void* src, float* dst, int64_t n) {
  dequantize_blocks<BlockIQ4_XS, QK_K>(src, dst, n, "iq4_xs", dequantize_iq4_xs_block);
}

void quantize_row_q4_0(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockQ4_0, QK4_0>(src, dst, n, "q4_0", quantize_q4_0_block);
}
void quantize_row_q4_1(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockQ4_1, QK4_1>(src, dst, n, "q4_1", quantize_q4_1_block);
}
void quantize_row_q5_0(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockQ5_0, QK5_0>(src, dst, n, "q5_0", quantize_q5_0_block);
}
void quantize_row_q5_1(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockQ5_1, QK5_1>(src, dst, n, "q5_1", quantize_q5_1_block);
}
void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockQ8_0, QK8_0>(src, dst, n, "q8_0", quantize_q8_0_block);
}
void quantize_row_iq4_nl(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockIQ4_NL, QK4_NL>(src, dst, n, "iq4_nl", quantize_iq4_nl_block);
}
void quantize_row_iq4_xs(const float* src, void* dst, int64_t n) {
  quantize_blocks<BlockIQ4_XS, QK_K>(src, dst, n, "iq4_xs", quantize_iq4_xs_block);
}

}  // namespace strata
