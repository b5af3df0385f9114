// The K-quant dot-product tiles of the fast CPU backend (k_quant_kernels*.cpp), for every
// type and every ISA path this CPU has: against double-precision sums of the reference
// dequantized weights and activations, against the portable path, across tile shapes, and
// on edge values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu/kernel_groups.h"
#include "core/dtype.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/quant_blocks.h"

namespace strata::cpu {
namespace {

constexpr DType kTypes[] = {DType::Q4_K, DType::Q6_K, DType::Q5_K, DType::Q3_K, DType::Q2_K};
constexpr int64_t kLengths[] = {256, 512, 2816};

std::string label(DType type, Isa isa, int64_t k) {
  return std::string(dtype_name(type)) + " " + std::string(isa_name(isa)) + " k=" + std::to_string(k);
}

double nmse(const std::vector<double>& want, const std::vector<float>& got) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = want[i] - double(got[i]);
    err += d * d;
    ref += want[i] * want[i];
  }
  if (!std::isfinite(err) || !std::isfinite(ref)) return std::numeric_limits<double>::infinity();
  return ref > 0 ? err / ref : err;
}

// A matrix of `rows` rows of k elements in a quantized type, row after row.
struct Rows {
  DType type;
  int64_t k;
  int rows;
  size_t stride;
  std::vector<uint8_t> data;
  const uint8_t* row(int r) const { return data.data() + r * stride; }
};

Rows empty_rows(DType type, int64_t k, int rows) {
  const size_t stride = row_bytes(type, k);
  return {type, k, rows, stride, std::vector<uint8_t>(stride * rows)};
}

// Rows quantized by the reference quantizer from N(0, 1) values (times `scale`).
Rows quantized_rows(DType type, int64_t k, int rows, std::mt19937& rng, float scale = 1.f) {
  Rows w = empty_rows(type, k, rows);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> x(k);
  for (int r = 0; r < rows; ++r) {
    for (float& v : x) v = dist(rng);
    type_traits(type).quantize(x.data(), w.data.data() + r * w.stride, k);
  }
  return w;
}

// The f16 scales (d, and dmin where the type has one) of every super-block of a row.
std::vector<uint16_t*> block_scales(DType type, uint8_t* row, int64_t k) {
  std::vector<uint16_t*> scales;
  for (int64_t b = 0; b < k / QK_K; ++b) {
    uint8_t* p = row + b * type_traits(type).type_size;
    switch (type) {
      case DType::Q2_K:
        scales.push_back(&reinterpret_cast<BlockQ2_K*>(p)->d);
        scales.push_back(&reinterpret_cast<BlockQ2_K*>(p)->dmin);
        break;
      case DType::Q3_K:
        scales.push_back(&reinterpret_cast<BlockQ3_K*>(p)->d);
        break;
      case DType::Q4_K:
        scales.push_back(&reinterpret_cast<BlockQ4_K*>(p)->d);
        scales.push_back(&reinterpret_cast<BlockQ4_K*>(p)->dmin);
        break;
      case DType::Q5_K:
        scales.push_back(&reinterpret_cast<BlockQ5_K*>(p)->d);
        scales.push_back(&reinterpret_cast<BlockQ5_K*>(p)->dmin);
        break;
      case DType::Q6_K:
        scales.push_back(&reinterpret_cast<BlockQ6_K*>(p)->d);
        break;
      default:
        ADD_FAILURE() << "not a K-quant";
    }
  }
  return scales;
}

// Rows of random bytes (every level, scale and high bit pattern) whose f16 scales are set to
// random values of magnitude about `scale` (or exactly `fixed_scale` bits if nonzero).
Rows random_rows(DType type, int64_t k, int rows, std::mt19937& rng, float scale = 0.01f, uint16_t fixed_scale = 0) {
  Rows w = empty_rows(type, k, rows);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> factor(0.25f, 1.f);
  for (uint8_t& v : w.data) v = uint8_t(byte(rng));
  for (int r = 0; r < rows; ++r) {
    for (uint16_t* s : block_scales(type, w.data.data() + r * w.stride, k)) {
      *s = fixed_scale ? fixed_scale : f32_to_f16(scale * factor(rng));
    }
  }
  return w;
}

// Activation columns in BlockQ8_K form, and their f32 values before quantization.
struct Cols {
  int64_t k;
  int cols;
  size_t stride;
  std::vector<float> values;      // [k, cols]
  std::vector<BlockQ8_K> blocks;  // [k / QK_K, cols]
  const BlockQ8_K* col(int c) const { return blocks.data() + c * (k / QK_K); }
};

Cols quantize_cols(std::vector<float> values, int64_t k, int cols) {
  Cols x{k, cols, size_t(k / QK_K) * sizeof(BlockQ8_K), std::move(values), std::vector<BlockQ8_K>((k / QK_K) * cols)};
  for (int c = 0; c < cols; ++c) quantize_row_q8_k(x.values.data() + c * k, x.blocks.data() + c * (k / QK_K), k);
  return x;
}

Cols random_cols(int64_t k, int cols, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> values(k * cols);
  for (float& v : values) v = dist(rng);
  return quantize_cols(std::move(values), k, cols);
}

std::vector<double> dequantized_rows(const Rows& w) {
  std::vector<float> f(w.k * w.rows);
  for (int r = 0; r < w.rows; ++r) type_traits(w.type).dequantize(w.row(r), f.data() + r * w.k, w.k);
  return {f.begin(), f.end()};
}

// out[c * rows + r] = sum_l w[l, r] * x[l, c] in double, x either the dequantized q8 blocks
// (what the kernel computes exactly) or the f32 values (what the 8-bit path approximates).
std::vector<double> expected(const Rows& w, const Cols& x, bool dequantized_x) {
  const std::vector<double> wd = dequantized_rows(w);
  std::vector<float> xf(w.k * x.cols);
  if (dequantized_x) {
    for (int c = 0; c < x.cols; ++c) dequantize_row_q8_k(x.col(c), xf.data() + c * w.k, w.k);
  } else {
    xf = x.values;
  }
  std::vector<double> out(size_t(w.rows) * x.cols);
  for (int c = 0; c < x.cols; ++c) {
    for (int r = 0; r < w.rows; ++r) {
      double s = 0;
      for (int64_t l = 0; l < w.k; ++l) s += wd[r * w.k + l] * double(xf[c * w.k + l]);
      out[c * w.rows + r] = s;
    }
  }
  return out;
}

// The whole [rows, cols] output by tiles of up to tile_rows x tile_cols (partial at the edges).
std::vector<float> run_tiles(const TypeKernels& kern, const Rows& w, const Cols& x, int tile_rows, int tile_cols) {
  std::vector<float> out(size_t(w.rows) * x.cols, std::numeric_limits<float>::quiet_NaN());
  for (int c0 = 0; c0 < x.cols; c0 += tile_cols) {
    for (int r0 = 0; r0 < w.rows; r0 += tile_rows) {
      const int nr = std::min(tile_rows, w.rows - r0), nc = std::min(tile_cols, x.cols - c0);
      kern.dot_tile(w.k, w.row(r0), w.stride, nr, x.col(c0), x.stride, nc, out.data() + c0 * w.rows + r0, w.rows);
    }
  }
  return out;
}

const TypeKernels& kernels(DType type, Isa isa) {
  const TypeKernels* k = k_quant_kernels(type, isa);
  EXPECT_NE(k, nullptr);
  EXPECT_EQ(k->act, ActFormat::q8_256);
  return *k;
}

TEST(CpuKQuantKernels, CoversTheKQuantsOnly) {
  for (Isa isa : available_isas()) {
    for (DType type : kTypes) {
      const TypeKernels* k = k_quant_kernels(type, isa);
      ASSERT_NE(k, nullptr) << label(type, isa, 0);
      EXPECT_GE(k->max_rows, 1);
      EXPECT_GE(k->max_cols, 1);
    }
    for (DType type : {DType::F32, DType::Q4_0, DType::Q8_0, DType::Q8_K, DType::IQ4_XS}) {
      EXPECT_EQ(k_quant_kernels(type, isa), nullptr) << dtype_name(type);
    }
  }
}

// Enough rows and columns for partial tiles of every path (up to 16 x 64 per call).
constexpr int kRows = 19, kCols = 69;

// Random bytes hit every level, scale, sign and high-bit pattern: the kernel against the
// exact sum of the reference-dequantized weights times the dequantized activations.
TEST(CpuKQuantKernels, EqualsTheExactSumOfTheDequantizedValues) {
  std::mt19937 rng(17);
  double worst = 0;
  for (DType type : kTypes) {
    for (int64_t k : kLengths) {
      const Rows w = random_rows(type, k, kRows, rng);
      const Cols x = random_cols(k, kCols, rng);
      const std::vector<double> want = expected(w, x, true);
      for (Isa isa : available_isas()) {
        const TypeKernels& kern = kernels(type, isa);
        const std::vector<float> got = run_tiles(kern, w, x, kern.max_rows, kern.max_cols);
        const double e = nmse(want, got);
        EXPECT_LT(e, 1e-10) << label(type, isa, k);
        worst = std::max(worst, e);
      }
    }
  }
  std::printf("worst NMSE against the exact integer math: %.3g\n", worst);
}

// The 8-bit path as a whole: weights quantized from f32 values, activations rounded to q8,
// against the double sum over the dequantized weights and the f32 activations.
TEST(CpuKQuantKernels, EightBitPathIsCloseToTheF32Activations) {
  std::mt19937 rng(18);
  for (DType type : kTypes) {
    double worst = 0;
    for (int64_t k : kLengths) {
      const Rows w = quantized_rows(type, k, 5, rng);
      const Cols x = random_cols(k, 3, rng);
      const std::vector<double> want = expected(w, x, false);
      for (Isa isa : available_isas()) {
        const TypeKernels& kern = kernels(type, isa);
        const double e = nmse(want, run_tiles(kern, w, x, kern.max_rows, kern.max_cols));
        EXPECT_LT(e, 5e-4) << label(type, isa, k);
        worst = std::max(worst, e);
      }
    }
    std::printf("%s: worst NMSE of the 8-bit path against f32 activations: %.3g\n",
                std::string(dtype_name(type)).c_str(), worst);
  }
}

// Tile sizes worth trying up to `max`: the smallest ones and the largest ones.
std::vector<int> tile_sizes(int max) {
  std::vector<int> sizes;
  for (int v : {1, 2, 3, 4, 5, max / 2, max - 1, max}) {
    if (v >= 1 && v <= max && std::find(sizes.begin(), sizes.end(), v) == sizes.end()) sizes.push_back(v);
  }
  return sizes;
}

// Each output is summed in an order that depends on k and the path only: every tile shape,
// partial tiles included, gives bitwise the same outputs as 1x1 tiles.
TEST(CpuKQuantKernels, OutputsDoNotDependOnTheTileShape) {
  std::mt19937 rng(19);
  for (DType type : kTypes) {
    const int64_t k = 512;
    const Rows w = random_rows(type, k, kRows, rng);
    const Cols x = random_cols(k, kCols, rng);
    for (Isa isa : available_isas()) {
      const TypeKernels& kern = kernels(type, isa);
      const std::vector<float> single = run_tiles(kern, w, x, 1, 1);
      for (int tr : tile_sizes(kern.max_rows)) {
        for (int tc : tile_sizes(kern.max_cols)) {
          const std::vector<float> got = run_tiles(kern, w, x, tr, tc);
          ASSERT_EQ(0, std::memcmp(got.data(), single.data(), got.size() * sizeof(float)))
              << label(type, isa, k) << " tile " << tr << "x" << tc;
        }
      }
    }
  }
}

// Every ISA path against the portable one: the same integers, so only float rounding apart.
TEST(CpuKQuantKernels, PathsAgreeWithPortable) {
  std::mt19937 rng(20);
  for (DType type : kTypes) {
    for (int64_t k : kLengths) {
      const Rows w = random_rows(type, k, kRows, rng);
      const Cols x = random_cols(k, kCols, rng);
      const TypeKernels& portable = kernels(type, Isa::portable);
      const std::vector<float> base = run_tiles(portable, w, x, portable.max_rows, portable.max_cols);
      const std::vector<double> want(base.begin(), base.end());
      for (Isa isa : available_isas()) {
        const TypeKernels& kern = kernels(type, isa);
        EXPECT_LT(nmse(want, run_tiles(kern, w, x, kern.max_rows, kern.max_cols)), 1e-12) << label(type, isa, k);
      }
    }
  }
}

// All-zero weight blocks and all-zero activation blocks give exact zeros.
TEST(CpuKQuantKernels, ZeroBlocksGiveZero) {
  std::mt19937 rng(21);
  for (DType type : kTypes) {
    const int64_t k = 512;
    const Rows zero_w = empty_rows(type, k, kRows);
    const Rows w = random_rows(type, k, kRows, rng);
    const Cols x = random_cols(k, 9, rng);
    const Cols zero_x = quantize_cols(std::vector<float>(k * 9, 0.f), k, 9);
    for (Isa isa : available_isas()) {
      const TypeKernels& kern = kernels(type, isa);
      for (float v : run_tiles(kern, zero_w, x, kern.max_rows, kern.max_cols)) EXPECT_EQ(v, 0.f) << label(type, isa, k);
      for (float v : run_tiles(kern, w, zero_x, kern.max_rows, kern.max_cols)) EXPECT_EQ(v, 0.f) << label(type, isa, k);
    }
  }
}

// Extreme values: the largest f16 scales with the largest levels and |activations| (the
// int16 and int32 intermediates at their bounds), large and tiny magnitudes.
TEST(CpuKQuantKernels, ExtremeScalesAndLevels) {
  std::mt19937 rng(22);
  constexpr uint16_t kHalfMax = 0x7bff;  // 65504
  for (DType type : kTypes) {
    const int64_t k = 512;
    // Every byte 0xff: the largest levels, scales and mins (and Q3_K/Q6_K's most negative
    // scales); activations all +-1 become +-127.
    Rows ones = empty_rows(type, k, kRows);
    std::fill(ones.data.begin(), ones.data.end(), uint8_t(0xff));
    for (int r = 0; r < ones.rows; ++r) {
      for (uint16_t* s : block_scales(type, ones.data.data() + r * ones.stride, k)) *s = kHalfMax;
    }
    std::vector<float> signs(k * 8);
    for (size_t i = 0; i < signs.size(); ++i) signs[i] = i < size_t(k) ? -1.f : ((i / 3) % 2 ? 1.f : -1.f);
    const Cols big_x = quantize_cols(signs, k, 8);

    const Rows huge_w = random_rows(type, k, kRows, rng, 0.f, kHalfMax);
    const Cols huge_x = random_cols(k, 8, rng, 1e20f);
    const Rows tiny_w = random_rows(type, k, kRows, rng, 1e-4f);
    const Cols tiny_x = random_cols(k, 8, rng, 1e-12f);
    for (Isa isa : available_isas()) {
      const TypeKernels& kern = kernels(type, isa);
      EXPECT_LT(nmse(expected(ones, big_x, true), run_tiles(kern, ones, big_x, kern.max_rows, kern.max_cols)), 1e-10)
          << label(type, isa, k) << " all-ones bytes";
      EXPECT_LT(nmse(expected(huge_w, huge_x, true), run_tiles(kern, huge_w, huge_x, kern.max_rows, kern.max_cols)),
                1e-10)
          << label(type, isa, k) << " huge";
      EXPECT_LT(nmse(expected(tiny_w, tiny_x, true), run_tiles(kern, tiny_w, tiny_x, kern.max_rows, kern.max_cols)),
                1e-10)
          << label(type, isa, k) << " tiny";
    }
  }
}

}  // namespace
}  // namespace strata::cpu
