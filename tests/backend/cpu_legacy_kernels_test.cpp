// Tests of the fast CPU backend's activation quantization (act_quant.cpp) and of the float
// and legacy kernel groups (float_kernels*.cpp, legacy_kernels*.cpp), on every ISA path this
// CPU has (the portable path always):
//  - quantize_act writes the same bytes on every path; q8_32 follows its definition and
//    q8_256 equals core's quantize_row_q8_k, also for zero, tiny, huge and non-finite blocks;
//  - every tile kernel against a double-precision sum of the dequantized weights times the
//    activations as the kernel reads them (near-exact), and against the true product with
//    f32 activations (the 8-bit activation error, under design.md's 5e-4);
//  - every path against the portable path to within float rounding;
//  - a tile's outputs do not depend on its shape (nr x nc), and nothing outside them is written;
//  - the packed prompt kernels (packed_gemm.h) against the same expectation, for any tile shape;
//  - the SIMD row dequantizers (row_dequantize.h) give the reference's floats bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/isa.h"
#include "backend/cpu/kernel_groups.h"
#include "backend/cpu/packed_gemm.h"
#include "backend/cpu/row_dequantize.h"
#include "backend/cpu/type_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/tensor.h"

namespace strata::cpu {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

std::string isa_label(Isa isa) {
  return std::string(isa_name(isa));
}

// ---- activation quantization -------------------------------------------------------------

// k activations: blocks of 32 that probe the edge cases, then random ones.
std::vector<float> probe_activations(int64_t k, uint32_t seed) {
  std::vector<float> x = random_values(size_t(k), seed, 3.0f);
  auto block = [&](int64_t b) { return x.data() + 32 * b; };
  const int64_t nb = k / 32;
  if (nb > 0) std::fill_n(block(0), 32, 0.0f);                        // all zeros
  if (nb > 1) std::fill_n(block(1), 32, 1e-35f);                      // below the tiny limit
  if (nb > 2) block(2)[5] = 1e32f;                                    // huge
  if (nb > 3) block(3)[7] = std::numeric_limits<float>::infinity();   // inf
  if (nb > 4) block(4)[9] = std::numeric_limits<float>::quiet_NaN();  // NaN
  if (nb > 5) block(5)[3] = -9.0f, block(5)[4] = 9.0f;                // a tie of +-max
  if (nb > 6) {  // d = 1: x / d lands on halves, which round to even
    for (int i = 0; i < 32; ++i) block(6)[i] = float(i - 16) + 0.5f;
    block(6)[0] = 127.0f;
  }
  return x;
}

TEST(CpuActQuant, BytesAndBlocks) {
  EXPECT_EQ(act_block(ActFormat::f32), 1);
  EXPECT_EQ(act_block(ActFormat::q8_32), 32);
  EXPECT_EQ(act_block(ActFormat::q8_256), 256);
  EXPECT_EQ(act_bytes(ActFormat::f32, 7), 28u);
  EXPECT_EQ(act_bytes(ActFormat::q8_32, 64), 2 * sizeof(ActQ8_32));
  EXPECT_EQ(act_bytes(ActFormat::q8_256, 512), 2 * sizeof(BlockQ8_K));
  std::vector<uint8_t> out(1024);
  const std::vector<float> x(40, 1.0f);
  EXPECT_THROW(quantize_act(ActFormat::q8_32, Isa::portable, x.data(), 40, out.data()), Error);
}

TEST(CpuActQuant, Q8_32FollowsItsDefinition) {
  const int64_t k = 32 * 64;
  const std::vector<float> x = probe_activations(k, 1);
  std::vector<ActQ8_32> q(size_t(k / 32));
  quantize_act(ActFormat::q8_32, Isa::portable, x.data(), k, q.data());
  for (int64_t b = 6; b < k / 32; ++b) {  // the finite blocks
    const float* xb = x.data() + 32 * b;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    ASSERT_EQ(q[size_t(b)].d, amax / 127.0f) << "block " << b;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      EXPECT_LE(std::fabs(xb[i] - q[size_t(b)].d * float(q[size_t(b)].qs[i])), 0.5001f * q[size_t(b)].d);
      sum += q[size_t(b)].qs[i];
    }
    EXPECT_EQ(q[size_t(b)].s, q[size_t(b)].d * float(sum));
  }
  for (int64_t b : {0, 1}) {  // zero and tiny blocks are all zeros
    EXPECT_EQ(q[size_t(b)].d, 0.0f);
    EXPECT_EQ(q[size_t(b)].s, 0.0f);
    for (int i = 0; i < 32; ++i) EXPECT_EQ(q[size_t(b)].qs[i], 0);
  }
}

TEST(CpuActQuant, SameBytesOnEveryPath) {
  const int64_t k = 256 * 12;
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    std::vector<float> x = probe_activations(k, seed);
    // Super-block probes for q8_256: a tie of +-max (the first wins) and a subnormal block.
    x[256 * 8 + 10] = -50.0f;
    x[256 * 8 + 20] = 50.0f;
    std::fill_n(x.begin() + 256 * 9, 256, 1e-39f);
    std::vector<uint8_t> ref32(act_bytes(ActFormat::q8_32, k)), ref256(act_bytes(ActFormat::q8_256, k));
    quantize_act(ActFormat::q8_32, Isa::portable, x.data(), k, ref32.data());
    quantize_row_q8_k(x.data(), ref256.data(), k);
    for (Isa isa : available_isas()) {
      SCOPED_TRACE(isa_label(isa));
      std::vector<uint8_t> got32(ref32.size()), got256(ref256.size()), got_f32(act_bytes(ActFormat::f32, k));
      quantize_act(ActFormat::q8_32, isa, x.data(), k, got32.data());
      quantize_act(ActFormat::q8_256, isa, x.data(), k, got256.data());
      quantize_act(ActFormat::f32, isa, x.data(), k, got_f32.data());
      EXPECT_EQ(got32, ref32);
      EXPECT_EQ(got256, ref256);
      EXPECT_EQ(std::memcmp(got_f32.data(), x.data(), got_f32.size()), 0);
    }
  }
}

// ---- tile kernels --------------------------------------------------------------------------

const TypeKernels* group_kernels(DType type, Isa isa) {
  if (const TypeKernels* k = float_kernels(type, isa)) return k;
  return legacy_kernels(type, isa);
}

// n weight rows of k elements of `type` (quantized from random values by core's reference)
// and their dequantized values.
struct Weights {
  std::vector<uint8_t> bytes;  // n rows of row_stride bytes
  size_t row_stride;
  std::vector<double> values;  // [k, n] dequantized
};

Weights make_weights(DType type, int64_t k, int64_t n, uint32_t seed) {
  const std::vector<float> v = random_values(size_t(k * n), seed);
  const Tensor t = Tensor::from_f32(v, {k, n}, type);
  Weights w;
  w.row_stride = t.nb(1) + 8;  // rows spaced wider than packed: the kernels must honour w_stride
  w.bytes.assign(w.row_stride * size_t(n), 0xEE);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    std::memcpy(w.bytes.data() + size_t(r) * w.row_stride, t.row(r), t.nb(1));
    t.dequantize_row(row.data(), r);
    w.values.insert(w.values.end(), row.begin(), row.end());
  }
  return w;
}

// m activation columns of k values, in `format`, and the values the kernels read.
struct Activations {
  std::vector<float> f32;      // [k, m] the true activations
  std::vector<uint8_t> bytes;  // m columns of col_stride bytes in the format
  size_t col_stride;
  std::vector<double> values;  // [k, m] as the kernels read them (dequantized)
};

Activations make_activations(ActFormat format, int64_t k, int64_t m, uint32_t seed) {
  Activations a;
  a.f32 = random_values(size_t(k * m), seed);
  a.col_stride = act_bytes(format, k) + 40;  // wider than packed, a multiple of 4 and of 40
  a.bytes.assign(a.col_stride * size_t(m), 0);
  for (int64_t c = 0; c < m; ++c) {
    const float* xc = a.f32.data() + c * k;
    uint8_t* dst = a.bytes.data() + size_t(c) * a.col_stride;
    quantize_act(format, Isa::portable, xc, k, dst);
    if (format == ActFormat::f32) {
      a.values.insert(a.values.end(), xc, xc + k);
    } else {
      const auto* blocks = reinterpret_cast<const ActQ8_32*>(dst);
      for (int64_t i = 0; i < k; ++i) a.values.push_back(double(blocks[i / 32].d) * blocks[i / 32].qs[i % 32]);
    }
  }
  return a;
}

// out [n, m] by tiles of at most tr x tc, out column stride n + 3; every entry the tiles do
// not write keeps its NaN sentinel (checked).
std::vector<float> run_tiles(const TypeKernels& kern, int64_t k, const Weights& w, int64_t n, const Activations& a,
                             int64_t m, int tr, int tc) {
  const size_t out_stride = size_t(n) + 3;
  std::vector<float> out(out_stride * size_t(m), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < n; r += tr) {
    for (int64_t c = 0; c < m; c += tc) {
      const int nr = int(std::min<int64_t>(tr, n - r)), nc = int(std::min<int64_t>(tc, m - c));
      kern.dot_tile(k, w.bytes.data() + size_t(r) * w.row_stride, w.row_stride, nr,
                    a.bytes.data() + size_t(c) * a.col_stride, a.col_stride, nc,
                    out.data() + size_t(c) * out_stride + size_t(r), out_stride);
    }
  }
  std::vector<float> packed;  // [n, m]
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t r = 0; r < n; ++r) packed.push_back(out[size_t(c) * out_stride + size_t(r)]);
    for (size_t r = size_t(n); r < out_stride; ++r) EXPECT_TRUE(std::isnan(out[size_t(c) * out_stride + r]));
  }
  return packed;
}

// sum_l w[l, r] * x[l, c] in double: [n, m].
std::vector<double> expected_product(const std::vector<double>& w, const std::vector<double>& x, int64_t k, int64_t n,
                                     int64_t m) {
  std::vector<double> out(size_t(n * m));
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t r = 0; r < n; ++r) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l) s += w[size_t(r * k + l)] * x[size_t(c * k + l)];
      out[size_t(c * n + r)] = s;
    }
  }
  return out;
}

double nmse(const std::vector<double>& want, const std::vector<float>& got) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += (want[i] - got[i]) * (want[i] - got[i]);
    ref += want[i] * want[i];
  }
  return std::isfinite(err) ? err / ref : std::numeric_limits<double>::infinity();
}

struct KernelCase {
  DType type;
  int64_t k;
};

std::vector<KernelCase> kernel_cases() {
  std::vector<KernelCase> cases;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t k : {1, 7, 16, 17, 33, 100, 257, 1024}) cases.push_back({t, k});
  }
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0}) {
    for (int64_t k : {32, 64, 96, 320, 2048}) cases.push_back({t, k});
  }
  return cases;
}

class CpuTileKernels : public ::testing::TestWithParam<KernelCase> {};

TEST_P(CpuTileKernels, EveryPathAgainstTheExpectation) {
  const auto [type, k] = GetParam();
  const int64_t n = 7, m = 5;
  const Weights w = make_weights(type, k, n, uint32_t(k) * 31 + uint32_t(type));
  const TypeKernels* portable = group_kernels(type, Isa::portable);
  ASSERT_NE(portable, nullptr);
  const Activations a = make_activations(portable->act, k, m, uint32_t(k) + 7);
  std::vector<double> x_true(a.f32.begin(), a.f32.end());
  const std::vector<double> want = expected_product(w.values, a.values, k, n, m);
  const std::vector<double> want_true = expected_product(w.values, x_true, k, n, m);
  const std::vector<float> ref = run_tiles(*portable, k, w, n, a, m, 1, 1);

  for (Isa isa : available_isas()) {
    SCOPED_TRACE(isa_label(isa));
    const TypeKernels* kern = group_kernels(type, isa);
    ASSERT_NE(kern, nullptr);
    ASSERT_EQ(kern->act, portable->act);
    const std::vector<float> got = run_tiles(*kern, k, w, n, a, m, kern->max_rows, kern->max_cols);
    EXPECT_LT(nmse(want, got), 1e-11) << "against the activations the kernel reads";
    const double e_true = nmse(want_true, got);
    EXPECT_LT(e_true, 5e-4) << "against the f32 activations";
    if (kern->act != ActFormat::f32 && k >= 2048)
      std::printf("  %s %s k=%ld: NMSE against f32 activations %.3g\n", std::string(dtype_name(type)).c_str(),
                  isa_label(isa).c_str(), long(k), e_true);
    for (size_t i = 0; i < got.size(); ++i) {  // against portable, within float rounding
      double scale = 0;
      const int64_t r = int64_t(i) % n, c = int64_t(i) / n;
      for (int64_t l = 0; l < k; ++l) scale += std::fabs(w.values[size_t(r * k + l)] * a.values[size_t(c * k + l)]);
      EXPECT_NEAR(got[i], ref[i], 1e-5 * scale + 1e-30) << "output " << i;
    }
    // Any tile shape gives the same bits.
    for (int tr = 1; tr <= kern->max_rows; ++tr) {
      for (int tc = 1; tc <= kern->max_cols; ++tc) {
        const std::vector<float> other = run_tiles(*kern, k, w, n, a, m, tr, tc);
        EXPECT_EQ(std::memcmp(other.data(), got.data(), got.size() * sizeof(float)), 0) << tr << "x" << tc;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CpuTileKernels, ::testing::ValuesIn(kernel_cases()),
                         [](const ::testing::TestParamInfo<KernelCase>& info) {
                           return std::string(dtype_name(info.param.type)) + "_k" + std::to_string(info.param.k);
                         });

// ---- packed prompt kernels ----------------------------------------------------------------

// out [n, m] by the packed kernels: rows repacked tr <= 16 at a time, columns (biased) taken
// tc at a time.
std::vector<float> run_packed(const PackedKernels& kern, int64_t k, const Weights& w, int64_t n, Activations a,
                              int64_t m, int tr, int tc) {
  for (int64_t c = 0; c < m; ++c) bias_q8_32(k, a.bytes.data() + size_t(c) * a.col_stride);
  std::vector<float> out(size_t(n * m), std::numeric_limits<float>::quiet_NaN());
  std::vector<RowPackedBlock> rows(size_t(k / 32));
  for (int64_t r = 0; r < n; r += tr) {
    const int nr = int(std::min<int64_t>(tr, n - r));
    kern.repack(k, w.bytes.data() + size_t(r) * w.row_stride, w.row_stride, nr, rows.data());
    for (int64_t c = 0; c < m; c += tc) {
      kern.tile(k, rows.data(), nr, a.bytes.data() + size_t(c) * a.col_stride, a.col_stride,
                int(std::min<int64_t>(tc, m - c)), out.data() + size_t(c * n + r), size_t(n));
    }
  }
  return out;
}

class CpuPackedKernels : public ::testing::TestWithParam<DType> {};

TEST_P(CpuPackedKernels, AgainstTheExpectationAndAnyTileShape) {
  const DType type = GetParam();
  const int64_t k = 320, n = 11, m = 19;
  const Weights w = make_weights(type, k, n, 8);
  const Activations a = make_activations(ActFormat::q8_32, k, m, 9);
  const std::vector<double> want = expected_product(w.values, a.values, k, n, m);
  int paths = 0;
  for (Isa isa : available_isas()) {
    const PackedKernels* kern = packed_kernels(type, isa);
    if (kern == nullptr) continue;
    ++paths;
    SCOPED_TRACE(isa_label(isa));
    const std::vector<float> got = run_packed(*kern, k, w, n, a, m, kPackRows, kern->max_cols);
    EXPECT_LT(nmse(want, got), 1e-11);
    for (int tr : {1, 3, kPackRows}) {
      for (int tc : {1, std::min(5, kern->max_cols), kern->max_cols}) {
        const std::vector<float> other = run_packed(*kern, k, w, n, a, m, tr, tc);
        EXPECT_EQ(std::memcmp(other.data(), got.data(), got.size() * sizeof(float)), 0) << tr << "x" << tc;
      }
    }
  }
  if (paths == 0) GTEST_SKIP() << "no packed kernels on this CPU";
}

// The largest products the packed kernels meet: Q5_1 levels of 31 against activations of
// +127 (biased to 255), and Q5_0 levels of -16, where 16-bit partial sums come closest to
// overflowing (legacy_kernels_avx2.cpp).
TEST(CpuPackedKernelsExtremes, LargestLevelsAndActivations) {
  const int64_t k = 256, n = 3, m = 2;
  for (DType type : {DType::Q5_1, DType::Q5_0, DType::Q4_1, DType::Q8_0}) {
    std::vector<float> v(size_t(k * n), type == DType::Q5_0 ? -16.0f : 31.0f);
    for (int64_t i = 0; i < k * n; i += 32) v[size_t(i)] = type == DType::Q5_0 ? 15.0f : 0.0f;  // spans the levels
    const Tensor t = Tensor::from_f32(v, {k, n}, type);
    Weights w;
    w.row_stride = t.nb(1);
    w.bytes.assign(t.data(), t.data() + t.n_bytes());
    w.values.resize(size_t(k * n));
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
      t.dequantize_row(row.data(), r);
      std::copy(row.begin(), row.end(), w.values.begin() + r * k);
    }
    Activations a = make_activations(ActFormat::q8_32, k, m, 3);
    for (int64_t c = 0; c < m; ++c) {  // every activation at +max
      auto* blocks = reinterpret_cast<ActQ8_32*>(a.bytes.data() + size_t(c) * a.col_stride);
      for (int64_t b = 0; b < k / 32; ++b) {
        for (int i = 0; i < 32; ++i) blocks[b].qs[i] = 127;
        blocks[b].s = blocks[b].d * 127.0f * 32.0f;
        for (int i = 0; i < 32; ++i) a.values[size_t(c * k + b * 32 + i)] = double(blocks[b].d) * 127.0;
      }
    }
    const std::vector<double> want = expected_product(w.values, a.values, k, n, m);
    for (Isa isa : available_isas()) {
      const PackedKernels* kern = packed_kernels(type, isa);
      if (kern == nullptr) continue;
      SCOPED_TRACE(std::string(dtype_name(type)) + " " + isa_label(isa));
      EXPECT_LT(nmse(want, run_packed(*kern, k, w, n, a, m, kPackRows, kern->max_cols)), 1e-11);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(LegacyTypes, CpuPackedKernels,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

// Q8_0 blocks may hold -128 (GGUF allows it; our quantizer never writes it): every path agrees.
TEST(CpuTileKernels, Q8_0FullLevelRange) {
  const int64_t k = 64;
  Weights w = make_weights(DType::Q8_0, k, 2, 3);
  for (int r = 0; r < 2; ++r) {
    auto* blocks = reinterpret_cast<BlockQ8_0*>(w.bytes.data() + size_t(r) * w.row_stride);
    for (int b = 0; b < 2; ++b) {
      for (int i = 0; i < 32; i += 3) {
        blocks[b].qs[i] = -128;
        w.values[size_t(r * k + b * 32 + i)] = -128.0 * double(f16_to_f32(blocks[b].d));
      }
    }
  }
  const Activations a = make_activations(ActFormat::q8_32, k, 3, 4);
  const std::vector<double> want = expected_product(w.values, a.values, k, 2, 3);
  for (Isa isa : available_isas()) {
    SCOPED_TRACE(isa_label(isa));
    const TypeKernels* kern = legacy_kernels(DType::Q8_0, isa);
    EXPECT_LT(nmse(want, run_tiles(*kern, k, w, 2, a, 3, kern->max_rows, kern->max_cols)), 1e-12);
  }
}

// The SIMD row dequantizers write the reference's floats bit for bit, also for blocks with
// subnormal, negative, zero and largest f16 scales and mins.
TEST(CpuRowDequantize, SameFloatsAsTheReference) {
  for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::IQ4_NL, DType::F16}) {
    const int64_t k = 32 * 12;
    Weights w = make_weights(type, k, 1, 21);
    const size_t block_bytes = type_traits(type).type_size;
    if (type_traits(type).is_quantized) {
      const uint16_t scales[] = {0x0001, 0x8001, 0x0000, 0x7bff, 0xfbff, 0x3c00};  // subnormal, -subnormal, 0, +-max, 1
      for (size_t b = 0; b < std::size(scales); ++b) {
        std::memcpy(w.bytes.data() + b * block_bytes, &scales[b], 2);
        if (type == DType::Q4_1 || type == DType::Q5_1)
          std::memcpy(w.bytes.data() + b * block_bytes + 2, &scales[5 - b], 2);
      }
    }
    std::vector<float> want(static_cast<size_t>(k));
    type_traits(type).dequantize(w.bytes.data(), want.data(), k);
    for (Isa isa : available_isas()) {
      SCOPED_TRACE(std::string(dtype_name(type)) + " " + isa_label(isa));
      const DequantizeRowFn fn = dequantize_row_fn(type, isa);
      ASSERT_NE(fn, nullptr);
      std::vector<float> got(static_cast<size_t>(k), -1.0f);
      fn(w.bytes.data(), got.data(), k);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
    }
  }
}

TEST(CpuKernelGroups, CoverTheirTypesOnly) {
  for (Isa isa : available_isas()) {
    EXPECT_EQ(float_kernels(DType::Q4_0, isa), nullptr);
    EXPECT_EQ(legacy_kernels(DType::F16, isa), nullptr);
    EXPECT_EQ(legacy_kernels(DType::Q4_K, isa), nullptr);
    EXPECT_EQ(float_kernels(DType::Q6_K, isa), nullptr);
    EXPECT_EQ(legacy_kernels(DType::IQ4_NL, isa), nullptr);
  }
  // The VNNI kernels only at the VNNI level: plain AVX-512 takes the AVX2 ones.
  EXPECT_EQ(legacy_kernels(DType::Q4_0, Isa::avx512), legacy_kernels(DType::Q4_0, Isa::avx2));
}

}  // namespace
}  // namespace strata::cpu
