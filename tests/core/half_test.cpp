// Tests of the f16 and bf16 conversions (src/core/half.cpp): every 16-bit pattern against
// a reference computed from sign/exponent/mantissa with std::ldexp, and f32 -> half
// rounding checked by brute force against the neighbouring representable values.
#include "core/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace strata {
namespace {

// A binary format with 1 sign bit, `exp_bits` exponent bits and `mant_bits` mantissa bits.
struct HalfFormat {
  const char* name;
  int exp_bits;
  int mant_bits;
  float (*to_f32)(uint16_t);
  uint16_t (*from_f32)(float);

  int bias() const { return (1 << (exp_bits - 1)) - 1; }
  uint16_t exp_mask() const { return uint16_t(((1 << exp_bits) - 1) << mant_bits); }
  uint16_t inf_bits() const { return exp_mask(); }
  bool is_nan(uint16_t h) const { return (h & 0x7fff) > inf_bits(); }

  // The value of pattern h computed from its fields, in double.
  double reference(uint16_t h) const {
    const int sign = h >> 15;
    const int exp = (h >> mant_bits) & ((1 << exp_bits) - 1);
    const int mant = h & ((1 << mant_bits) - 1);
    double v;
    if (exp == (1 << exp_bits) - 1) {
      v = mant == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    } else if (exp == 0) {  // zero or subnormal: mant * 2^(1 - bias - mant_bits)
      v = std::ldexp(double(mant), 1 - bias() - mant_bits);
    } else {  // normal: (2^mant_bits + mant) * 2^(exp - bias - mant_bits)
      v = std::ldexp(double((1 << mant_bits) + mant), exp - bias() - mant_bits);
    }
    return sign ? -v : v;
  }

  // Value of a non-negative magnitude pattern for rounding comparisons; the inf pattern
  // stands for the next power of two (the value an unbounded exponent would give there).
  double magnitude_value(uint16_t m) const {
    return m == inf_bits() ? std::ldexp(1.0, (1 << exp_bits) - 1 - bias()) : reference(m);
  }
};

const HalfFormat kF16{"f16", 5, 10, f16_to_f32, f32_to_f16};
const HalfFormat kBF16{"bf16", 8, 7, bf16_to_f32, f32_to_bf16};

void expect_decodes_exactly(const HalfFormat& fmt) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float got = fmt.to_f32(h);
    const double want = fmt.reference(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << fmt.name << " 0x" << std::hex << i;
      ASSERT_EQ(std::signbit(got), bool(h >> 15)) << fmt.name << " 0x" << std::hex << i;
    } else {
      ASSERT_EQ(double(got), want) << fmt.name << " 0x" << std::hex << i;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << fmt.name << " 0x" << std::hex << i;  // -0
    }
  }
}

void expect_round_trips(const HalfFormat& fmt) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const uint16_t back = fmt.from_f32(fmt.to_f32(h));
    if (fmt.is_nan(h)) {
      ASSERT_TRUE(fmt.is_nan(back)) << fmt.name << " 0x" << std::hex << i;
    } else {
      ASSERT_EQ(back, h) << fmt.name << " 0x" << std::hex << i;
    }
  }
}

// Checks that fmt.from_f32(x) is the representable value nearest to x, ties to even
// mantissa, by comparing against its neighbours; beyond the largest finite value the
// rounding goes to inf exactly as IEEE does (inf standing for the next power of two).
// Distances are computed in double: near a tie x and its neighbours share a grid fine
// enough for the subtraction to be exact, and far from a tie double rounding cannot flip
// the comparison.
::testing::AssertionResult rounds_to_nearest_even(const HalfFormat& fmt, float x) {
  const uint16_t h = fmt.from_f32(x);
  const auto fail = [&](const char* what) {
    return ::testing::AssertionFailure() << fmt.name << "(" << x << " = 0x" << std::hex << std::bit_cast<uint32_t>(x)
                                         << ") = 0x" << h << ": " << what;
  };
  if (std::isnan(x)) return fmt.is_nan(h) ? ::testing::AssertionSuccess() : fail("NaN not kept");
  if (bool(h >> 15) != std::signbit(x)) return fail("wrong sign");
  const uint16_t m = h & 0x7fff;
  if (m > fmt.inf_bits()) return fail("NaN from a number");
  if (std::isinf(x)) return m == fmt.inf_bits() ? ::testing::AssertionSuccess() : fail("inf not kept");
  const double ax = std::fabs(double(x));
  const double d = std::fabs(ax - fmt.magnitude_value(m));
  for (int step : {-1, 1}) {
    if ((m == 0 && step < 0) || (m == fmt.inf_bits() && step > 0)) continue;
    const uint16_t nb = uint16_t(m + step);
    const double dn = std::fabs(ax - fmt.magnitude_value(nb));
    if (dn < d) return fail("a neighbour is nearer");
    if (dn == d && (m & 1)) return fail("tie not rounded to even");
  }
  return ::testing::AssertionSuccess();
}

void expect_rounding(const HalfFormat& fmt, const std::vector<float>& values) {
  for (float x : values) {
    ASSERT_TRUE(rounds_to_nearest_even(fmt, x));
    ASSERT_TRUE(rounds_to_nearest_even(fmt, -x));
  }
}

// Every midpoint between neighbouring magnitudes (the ties), and the floats just beside them.
std::vector<float> ties_and_neighbours(const HalfFormat& fmt) {
  std::vector<float> v;
  for (uint16_t m = 0; m < fmt.inf_bits(); ++m) {
    const float mid = float(0.5 * (fmt.magnitude_value(m) + fmt.magnitude_value(uint16_t(m + 1))));
    v.push_back(mid);
    v.push_back(std::nextafter(mid, 0.0f));
    v.push_back(std::nextafter(mid, std::numeric_limits<float>::infinity()));
  }
  return v;
}

// Random floats: uniformly random bit patterns, and values with random exponents spread
// over (and just beyond) the range of the format.
std::vector<float> random_floats(const HalfFormat& fmt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v;
  for (int i = 0; i < 200000; ++i) v.push_back(std::bit_cast<float>(uint32_t(rng())));
  const int lo = 1 - fmt.bias() - fmt.mant_bits - 3, hi = fmt.bias() + 3;
  std::uniform_int_distribution<int> exp(lo, hi);
  std::uniform_real_distribution<float> frac(1.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) v.push_back(std::ldexp(frac(rng), exp(rng)));
  return v;
}

TEST(HalfF16, DecodesAllPatternsExactly) {
  expect_decodes_exactly(kF16);
}
TEST(HalfF16, RoundTripsAllPatterns) {
  expect_round_trips(kF16);
}
TEST(HalfF16, RoundsTiesAndNeighbours) {
  expect_rounding(kF16, ties_and_neighbours(kF16));
}
TEST(HalfF16, RoundsRandomFloats) {
  expect_rounding(kF16, random_floats(kF16, 1));
}

TEST(HalfF16, BoundaryCases) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie with 65536 -> even -> inf
  EXPECT_EQ(f32_to_f16(-65520.0f), 0xfc00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(tiny), 0x0001);
  EXPECT_EQ(f32_to_f16(tiny / 2), 0x0000);  // tie with 0 -> even
  EXPECT_EQ(f32_to_f16(-tiny / 2), 0x8000);
  EXPECT_EQ(f32_to_f16(std::nextafter(tiny / 2, 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::nextafter(tiny / 2, 0.0f)), 0x0000);
  EXPECT_EQ(f32_to_f16(1.5f * tiny), 0x0002);                       // tie between 1 and 2 -> 2
  EXPECT_EQ(f32_to_f16(2.5f * tiny), 0x0002);                       // tie between 2 and 3 -> 2
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14) - tiny / 2), 0x0400);  // 0x3ff/0x400 tie -> smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
}

TEST(HalfF16, NaNStaysNaN) {
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f802000u}) {
    const uint16_t h = f32_to_f16(std::bit_cast<float>(bits));
    EXPECT_TRUE(kF16.is_nan(h)) << std::hex << bits;
    EXPECT_EQ(h >> 15, bits >> 31) << std::hex << bits;
  }
}

TEST(HalfBF16, DecodesAllPatternsExactly) {
  expect_decodes_exactly(kBF16);
}
TEST(HalfBF16, RoundTripsAllPatterns) {
  expect_round_trips(kBF16);
}
TEST(HalfBF16, RoundsTiesAndNeighbours) {
  expect_rounding(kBF16, ties_and_neighbours(kBF16));
}
TEST(HalfBF16, RoundsRandomFloats) {
  expect_rounding(kBF16, random_floats(kBF16, 2));
}

TEST(HalfBF16, BoundaryCases) {
  const float max = std::ldexp(255.0f / 128.0f, 127);  // 0x7f7f
  EXPECT_EQ(f32_to_bf16(max), 0x7f7f);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);         // above the tie -> inf
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);               // tie -> even
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);           // tie -> even
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
}

TEST(HalfBF16, NaNStaysNaN) {
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu}) {
    const uint16_t h = f32_to_bf16(std::bit_cast<float>(bits));
    EXPECT_TRUE(kBF16.is_nan(h)) << std::hex << bits;
    EXPECT_EQ(h >> 15, bits >> 31) << std::hex << bits;
  }
}

}  // namespace
}  // namespace strata
