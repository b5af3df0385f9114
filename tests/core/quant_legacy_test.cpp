// Tests of the reference quantizers of the 32-element block types and IQ4_XS
// (src/core/quant_legacy.cpp): round-trip error against bounds derived from each format,
// hand-built blocks that pin the bit layouts, idempotence, and edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace strata {
namespace {

enum class Scale { AbsMax, MinMax, NonLinear };

struct QuantCase {
  const char* name;
  int64_t block_size;  // elements per block
  size_t block_bytes;
  QuantizeRowFn quantize;
  DequantizeRowFn dequantize;
  Scale scale;   // how the format spends its levels
  float levels;  // AbsMax: d = amax / levels; MinMax: d = (max - min) / levels
  bool uniform;  // evenly spaced levels (everything but the IQ4 types)
};

const QuantCase kCases[] = {
    {"q4_0", QK4_0, sizeof(BlockQ4_0), quantize_row_q4_0, dequantize_row_q4_0, Scale::AbsMax, 8, true},
    {"q4_1", QK4_1, sizeof(BlockQ4_1), quantize_row_q4_1, dequantize_row_q4_1, Scale::MinMax, 15, true},
    {"q5_0", QK5_0, sizeof(BlockQ5_0), quantize_row_q5_0, dequantize_row_q5_0, Scale::AbsMax, 16, true},
    {"q5_1", QK5_1, sizeof(BlockQ5_1), quantize_row_q5_1, dequantize_row_q5_1, Scale::MinMax, 31, true},
    {"q8_0", QK8_0, sizeof(BlockQ8_0), quantize_row_q8_0, dequantize_row_q8_0, Scale::AbsMax, 127, true},
    {"iq4_nl", QK4_NL, sizeof(BlockIQ4_NL), quantize_row_iq4_nl, dequantize_row_iq4_nl, Scale::NonLinear, 127, false},
    {"iq4_xs", QK_K, sizeof(BlockIQ4_XS), quantize_row_iq4_xs, dequantize_row_iq4_xs, Scale::NonLinear, 127, false},
};

void PrintTo(const QuantCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<uint8_t> quantize(const QuantCase& c, const std::vector<float>& x) {
  std::vector<uint8_t> q(size_t(int64_t(x.size()) / c.block_size) * c.block_bytes, 0xAA);
  c.quantize(x.data(), q.data(), int64_t(x.size()));
  return q;
}

std::vector<float> dequantize(const QuantCase& c, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  c.dequantize(q.data(), y.data(), int64_t(n));
  return y;
}

std::vector<float> round_trip(const QuantCase& c, const std::vector<float>& x) {
  return dequantize(c, quantize(c, x), x.size());
}

// The test data of ggml's test-quantize-fns.
std::vector<float> cos_data(size_t n) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = 0.1f + 2.0f * std::cos(float(i));
  return x;
}

std::vector<float> gaussian_data(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

double sum_sq_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s;
}

double rmse(const std::vector<float>& a, const std::vector<float>& b) {
  return std::sqrt(sum_sq_diff(a, b) / double(a.size()));
}

// The "total error" of ggml's test-quantize-fns (array_rmse): sqrt(sum of squared
// differences) / n. Despite its name this is the RMSE divided by sqrt(n), i.e. for
// n = 4096 the RMSE / 64; its threshold 0.002 therefore allows an RMSE of up to 0.128.
double ggml_total_error(const std::vector<float>& a, const std::vector<float>& b) {
  return std::sqrt(sum_sq_diff(a, b)) / double(a.size());
}

// Quantization step of one block of 32 as the format defines it, computed from the input.
// Non-linear IQ4: the largest gap between neighbouring levels (24, between 89 and 113)
// times the scale amax / 127 that maps the extreme onto the outer level.
double format_step(const QuantCase& c, const float* x) {
  float amax = 0.0f, min = x[0], max = x[0];
  for (int j = 0; j < 32; ++j) {
    amax = std::max(amax, std::fabs(x[j]));
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  switch (c.scale) {
    case Scale::AbsMax:
      return amax / c.levels;
    case Scale::MinMax:
      return (max - min) / c.levels;
    case Scale::NonLinear:
      return 24.0 * amax / c.levels;
  }
  return 0.0;
}

// Expected RMSE of rounding to a grid of step d with uniformly spread errors: d / sqrt(12),
// averaged (as mean squares) over the blocks of 32.
double format_rmse(const QuantCase& c, const std::vector<float>& x) {
  double sum = 0.0;
  for (size_t b = 0; b < x.size(); b += 32) sum += std::pow(format_step(c, &x[b]), 2) / 12.0;
  return std::sqrt(sum / double(x.size() / 32));
}

bool all_finite(const std::vector<float>& y) {
  return std::all_of(y.begin(), y.end(), [](float v) { return std::isfinite(v); });
}

const QuantCase& find_case(const std::string& name) {
  for (const QuantCase& c : kCases) {
    if (name == c.name) return c;
  }
  throw std::runtime_error("no test case " + name);
}

std::vector<QuantCase> cases_with_uniform_levels(bool uniform) {
  std::vector<QuantCase> out;
  for (const QuantCase& c : kCases) {
    if (c.uniform == uniform) out.push_back(c);
  }
  return out;
}

class QuantLegacyTest : public testing::TestWithParam<QuantCase> {};
class QuantLegacyUniformTest : public QuantLegacyTest {};  // Q4_0 .. Q8_0
class QuantLegacyIQ4Test : public QuantLegacyTest {};      // IQ4_NL, IQ4_XS

// (a) ggml's round-trip test, plus the true RMSE against what the format can do.
TEST_P(QuantLegacyTest, RoundTripCosine) {
  const QuantCase& c = GetParam();
  const std::vector<float> x = cos_data(4096);
  const std::vector<float> y = round_trip(c, x);
  ASSERT_TRUE(all_finite(y));
  EXPECT_LT(ggml_total_error(x, y), 0.002);
  EXPECT_LT(rmse(x, y), 1.3 * format_rmse(c, x)) << "format bound " << format_rmse(c, x);
}

TEST_P(QuantLegacyTest, RoundTripGaussian) {
  const QuantCase& c = GetParam();
  const std::vector<float> x = gaussian_data(4096, 1234);
  const std::vector<float> y = round_trip(c, x);
  ASSERT_TRUE(all_finite(y));
  EXPECT_LT(rmse(x, y), 1.3 * format_rmse(c, x)) << "format bound " << format_rmse(c, x);
}

// Uniform formats: no element is off by more than one step (Q4_0/Q5_0 clip the side
// opposite the extreme by up to one step; elsewhere the error is at most half a step).
TEST_P(QuantLegacyUniformTest, MaxErrorWithinOneStep) {
  const QuantCase& c = GetParam();
  const std::vector<float> x = gaussian_data(4096, 99);
  const std::vector<float> y = round_trip(c, x);
  for (size_t i = 0; i < x.size(); ++i) {
    const double step = format_step(c, &x[i / 32 * 32]);
    ASSERT_LE(std::fabs(double(x[i]) - y[i]), 1.01 * step) << "element " << i;
  }
}

// The IQ4 levels are dense near zero and sparse at the ends, made for bell-shaped weights:
// on Gaussian data they must beat plain Q4_0 at the same bits. (On the cosine data, whose
// values crowd at the extremes, they do not, and need not.)
TEST_P(QuantLegacyIQ4Test, BeatsQ4_0OnGaussian) {
  const QuantCase& c = GetParam();
  const std::vector<float> x = gaussian_data(4096, 7);
  EXPECT_LT(rmse(x, round_trip(c, x)), rmse(x, round_trip(find_case("q4_0"), x)));
}

// Squared error of one block of 32 with IQ4 scale d and the nearest level per element.
double iq4_block_error(const float* x, double d) {
  double err = 0.0;
  for (int j = 0; j < 32; ++j) {
    double best = INFINITY;
    for (float level : {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}) {
      best = std::min(best, std::pow(x[j] - d * level, 2));
    }
    err += best;
  }
  return err;
}

// The scale search of IQ4_NL is close to the best scale found by brute force over a dense
// grid of 4000 scales of either sign.
TEST(QuantLegacyIQ4, ScaleSearchNearBruteForce) {
  const QuantCase& c = find_case("iq4_nl");
  for (const std::vector<float>& x : {cos_data(1024), gaussian_data(1024, 21)}) {
    double brute = 0.0;
    for (size_t b = 0; b < x.size(); b += 32) {
      float amax = 0.0f;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
      double best = INFINITY;
      for (int k = 1; k <= 2000; ++k) {
        const double d = amax / 127.0 * 1.5 * k / 2000.0;
        best = std::min({best, iq4_block_error(&x[b], d), iq4_block_error(&x[b], -d)});
      }
      brute += best;
    }
    const double ours = sum_sq_diff(x, round_trip(c, x));
    EXPECT_LT(ours, 1.03 * brute) << "brute-force RMSE " << std::sqrt(brute / double(x.size()));
  }
}

// (c) Quantizing the dequantized values again reproduces the same bytes.
// (The IQ4 least-squares scales are not idempotent by design: the refit moves the scale.)
TEST_P(QuantLegacyUniformTest, Idempotent) {
  const QuantCase& c = GetParam();
  for (const std::vector<float>& x : {cos_data(4096), gaussian_data(4096, 5)}) {
    const std::vector<uint8_t> q1 = quantize(c, x);
    const std::vector<uint8_t> q2 = quantize(c, dequantize(c, q1, x.size()));
    EXPECT_EQ(q1, q2);
  }
}

// (d) Edge cases.
TEST_P(QuantLegacyTest, AllZeros) {
  const QuantCase& c = GetParam();
  const std::vector<float> x(512, 0.0f);
  const std::vector<float> y = round_trip(c, x);
  for (float v : y) ASSERT_EQ(v, 0.0f);
}

TEST_P(QuantLegacyTest, SingleLargeValue) {
  const QuantCase& c = GetParam();
  std::vector<float> x = gaussian_data(512, 3);
  x[37] = 1e4f;
  const std::vector<float> y = round_trip(c, x);
  ASSERT_TRUE(all_finite(y));
  // The extreme itself is kept to within f16 precision of the scale (and half a level).
  EXPECT_NEAR(y[37], 1e4f, 1e4f * 0.02f);
  // The other blocks are untouched by it.
  EXPECT_LT(rmse(std::vector<float>(x.begin() + 256, x.end()), std::vector<float>(y.begin() + 256, y.end())),
            1.3 * format_rmse(c, std::vector<float>(x.begin() + 256, x.end())));
}

TEST_P(QuantLegacyTest, HugeValuesSaturateWithoutNaN) {
  const QuantCase& c = GetParam();
  for (float huge : {1e6f, 1e30f, 3.4e38f, -3.4e38f}) {
    std::vector<float> x = gaussian_data(512, 4);
    x[3] = huge;
    x[300] = -huge;
    const std::vector<float> y = round_trip(c, x);
    ASSERT_TRUE(all_finite(y)) << huge;
    EXPECT_GT(y[3] * huge, 0.0f) << "sign of the extreme is kept (" << huge << ")";
  }
}

TEST_P(QuantLegacyTest, TinyValues) {
  const QuantCase& c = GetParam();
  for (float tiny : {1e-6f, 1e-20f, 1e-40f}) {
    std::vector<float> x = gaussian_data(512, 8);
    for (float& v : x) v *= tiny;
    const std::vector<float> y = round_trip(c, x);
    ASSERT_TRUE(all_finite(y)) << tiny;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_LE(std::fabs(y[i]), 8.0f * tiny + 1e-6f) << tiny;
  }
}

TEST_P(QuantLegacyTest, NegativeOnly) {
  const QuantCase& c = GetParam();
  std::vector<float> x(512);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-3.0f, -1.0f);
  for (float& v : x) v = dist(rng);
  const std::vector<float> y = round_trip(c, x);
  ASSERT_TRUE(all_finite(y));
  EXPECT_LT(rmse(x, y), 1.3 * format_rmse(c, x));
  for (float v : y) EXPECT_LE(v, 0.0f);
}

TEST_P(QuantLegacyTest, RejectsPartialBlocks) {
  const QuantCase& c = GetParam();
  std::vector<float> x(size_t(c.block_size) + 1, 1.0f);
  std::vector<uint8_t> q(2 * c.block_bytes);
  EXPECT_THROW(c.quantize(x.data(), q.data(), int64_t(x.size())), Error);
  EXPECT_THROW(c.dequantize(q.data(), x.data(), int64_t(x.size())), Error);
}

std::string case_name(const testing::TestParamInfo<QuantCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Legacy, QuantLegacyTest, testing::ValuesIn(kCases), case_name);
INSTANTIATE_TEST_SUITE_P(Legacy, QuantLegacyUniformTest, testing::ValuesIn(cases_with_uniform_levels(true)), case_name);
INSTANTIATE_TEST_SUITE_P(Legacy, QuantLegacyIQ4Test, testing::ValuesIn(cases_with_uniform_levels(false)), case_name);

// (b) Hand-built blocks: the expected values are written out by hand from the GGUF layout.
constexpr uint16_t kF16One = 0x3c00, kF16Half = 0x3800, kF16Quarter = 0x3400, kF16MinusTwo = 0xc000;

template <typename Block>
std::vector<float> decode(const Block& b, DequantizeRowFn fn, int n) {
  std::vector<float> y(size_t(n), -999.0f);
  fn(&b, y.data(), n);
  return y;
}

TEST(QuantLegacyLayout, Q4_0GroupedNibbles) {
  BlockQ4_0 b{};
  b.d = kF16One;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  const std::vector<float> y = decode(b, dequantize_row_q4_0, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j - 8)) << j;       // low nibble of byte j
    EXPECT_EQ(y[j + 16], float(7 - j)) << j;  // high nibble of byte j
  }
  b.d = kF16Half;
  b.qs[0] = 0x0f;  // element 0: q = 15, element 16: q = 0
  const std::vector<float> z = decode(b, dequantize_row_q4_0, 32);
  EXPECT_EQ(z[0], 3.5f);
  EXPECT_EQ(z[16], -4.0f);
}

TEST(QuantLegacyLayout, Q4_1ScaleAndMin) {
  BlockQ4_1 b{};
  b.d = kF16Half;
  b.m = kF16MinusTwo;
  b.qs[0] = 0xf0;  // element 0: q = 0, element 16: q = 15
  b.qs[5] = 0x73;  // element 5: q = 3, element 21: q = 7
  const std::vector<float> y = decode(b, dequantize_row_q4_1, 32);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[16], 5.5f);
  EXPECT_EQ(y[5], -0.5f);
  EXPECT_EQ(y[21], 1.5f);
  EXPECT_EQ(y[1], -2.0f);
}

TEST(QuantLegacyLayout, Q5_0FifthBitsLittleEndian) {
  BlockQ5_0 b{};
  b.d = kF16One;
  b.qh[0] = 0x01;   // bit 0: element 0
  b.qh[1] = 0x02;   // bit 9: element 9
  b.qh[3] = 0x80;   // bit 31: element 31
  b.qs[0] = 0x21;   // element 0: 1 (+16), element 16: 2
  b.qs[9] = 0x00;   // element 9: 0 (+16), element 25: 0
  b.qs[15] = 0xf0;  // element 15: 0, element 31: 15 (+16)
  const std::vector<float> y = decode(b, dequantize_row_q5_0, 32);
  EXPECT_EQ(y[0], 1.0f);     // 17 - 16
  EXPECT_EQ(y[16], -14.0f);  // 2 - 16
  EXPECT_EQ(y[9], 0.0f);     // 16 - 16
  EXPECT_EQ(y[25], -16.0f);
  EXPECT_EQ(y[15], -16.0f);
  EXPECT_EQ(y[31], 15.0f);  // 31 - 16
  EXPECT_EQ(y[8], -16.0f);
}

TEST(QuantLegacyLayout, Q5_1FifthBitsLittleEndian) {
  BlockQ5_1 b{};
  b.d = kF16Quarter;
  b.m = kF16One;
  b.qh[2] = 0x10;  // bit 20: element 20
  b.qs[4] = 0xa5;  // element 4: 5, element 20: 10 (+16)
  const std::vector<float> y = decode(b, dequantize_row_q5_1, 32);
  EXPECT_EQ(y[4], 2.25f);  // 0.25 * 5 + 1
  EXPECT_EQ(y[20], 7.5f);  // 0.25 * 26 + 1
  EXPECT_EQ(y[0], 1.0f);
}

TEST(QuantLegacyLayout, Q8_0SignedBytes) {
  BlockQ8_0 b{};
  b.d = kF16Quarter;
  b.qs[0] = -128;
  b.qs[1] = 127;
  b.qs[31] = -3;
  const std::vector<float> y = decode(b, dequantize_row_q8_0, 32);
  EXPECT_EQ(y[0], -32.0f);
  EXPECT_EQ(y[1], 31.75f);
  EXPECT_EQ(y[31], -0.75f);
  EXPECT_EQ(y[2], 0.0f);
}

// The IQ4_NL levels, written out here independently of the library's table.
constexpr float kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

TEST(QuantLegacyLayout, IQ4_NLLevels) {
  BlockIQ4_NL b{};
  b.d = kF16Half;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  const std::vector<float> y = decode(b, dequantize_row_iq4_nl, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * kLevels[j]) << j;
    EXPECT_EQ(y[j + 16], 0.5f * kLevels[15 - j]) << j;
  }
}

TEST(QuantLegacyLayout, IQ4_XSSubBlockScales) {
  BlockIQ4_XS b{};
  b.d = kF16Half;
  // Low 4 bits of scales 0..7: 1..8 (low nibble first); high 2 bits: 0,1,2,3,0,1,2,3.
  const uint8_t scales_l[4] = {0x21, 0x43, 0x65, 0x87};
  std::memcpy(b.scales_l, scales_l, 4);
  b.scales_h = 0xe4e4;
  // Stored scales 1, 18, 35, 52, 5, 22, 39, 56 minus 32:
  const int scale[8] = {-31, -14, 3, 20, -27, -10, 7, 24};
  for (int s = 0; s < 8; ++s) {
    for (int j = 0; j < 16; ++j) b.qs[16 * s + j] = uint8_t(((j + s) & 15) | (15 - j) << 4);
  }
  const std::vector<float> y = decode(b, dequantize_row_iq4_xs, 256);
  for (int s = 0; s < 8; ++s) {
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[32 * s + j], 0.5f * float(scale[s]) * kLevels[(j + s) & 15]) << s << "," << j;
      EXPECT_EQ(y[32 * s + j + 16], 0.5f * float(scale[s]) * kLevels[15 - j]) << s << "," << j;
    }
  }
}

// Quantizer output pinned by hand for a block whose levels are obvious.
TEST(QuantLegacyLayout, Q4_0QuantizerBytes) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = float(i % 16) - 8.0f;  // extreme -8: d = -8 / -8 = 1
  BlockQ4_0 b{};
  quantize_row_q4_0(x.data(), &b, 32);
  EXPECT_EQ(b.d, kF16One);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], uint8_t(j | j << 4)) << j;
}

TEST(QuantLegacyLayout, Q5_0QuantizerBits) {
  std::vector<float> x(32, 0.0f);
  x[0] = -16.0f;  // extreme: d = 1, q = 0
  x[9] = 1.0f;    // q = 17: fifth bit 9 set
  x[31] = 15.0f;  // q = 31
  BlockQ5_0 b{};
  quantize_row_q5_0(x.data(), &b, 32);
  EXPECT_EQ(b.d, kF16One);
  // Elements equal to 0 have q = 16: fifth bit set, nibble 0.
  const uint32_t expected_qh = ~uint32_t(1);  // all but element 0
  EXPECT_EQ(b.qh[0], uint8_t(expected_qh));
  EXPECT_EQ(b.qh[1], uint8_t(expected_qh >> 8));
  EXPECT_EQ(b.qh[3], 0xff);
  EXPECT_EQ(b.qs[0], 0x00);   // element 0: 0, element 16: 16 -> nibble 0
  EXPECT_EQ(b.qs[9], 0x01);   // element 9: 17 -> nibble 1
  EXPECT_EQ(b.qs[15], 0xf0);  // element 31: 31 -> nibble 15
}

}  // namespace
}  // namespace strata
