// The row primitives of the cpu backend's ops (backend/cpu/op_kernels.h) on every ISA path
// this CPU has, against plain double-precision loops and core/half.h: odd lengths (the tails
// under masks or copies), exp over its whole range, f16 rounding bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/op_kernels.h"
#include "backend/op_harness.h"
#include "core/half.h"

namespace strata::cpu {
namespace {

constexpr int64_t kLengths[] = {1, 7, 8, 15, 16, 17, 31, 33, 64, 100};

TEST(CpuOpKernels, DotProducts) {
  for (Isa isa : available_isas()) {
    const OpKernels& k = op_kernels(isa);
    for (int64_t n : kLengths) {
      const std::vector<float> a = test::random_values(size_t(n), 1), b = test::random_values(size_t(n), 2);
      std::vector<uint16_t> a16(a.size());
      double want = 0, want16 = 0, scale = 0;
      for (int64_t i = 0; i < n; ++i) {
        a16[size_t(i)] = f32_to_f16(a[size_t(i)]);
        want += double(a[size_t(i)]) * b[size_t(i)];
        want16 += double(f16_to_f32(a16[size_t(i)])) * b[size_t(i)];
        scale += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
      }
      EXPECT_NEAR(k.dot_f32(a.data(), b.data(), n), want, 1e-6 * scale) << isa_name(isa) << " n " << n;
      EXPECT_NEAR(k.dot_f16(a16.data(), b.data(), n), want16, 1e-6 * scale) << isa_name(isa) << " n " << n;
    }
  }
}

TEST(CpuOpKernels, AccumulateIsAxpyOfEachRowInTurn) {
  for (Isa isa : available_isas()) {
    const OpKernels& k = op_kernels(isa);
    for (int64_t n : kLengths) {
      const int64_t n_x = 5;
      const size_t stride = size_t(n + 3);  // rows with a gap between them
      const std::vector<float> x = test::random_values(stride * n_x, 3), p = test::random_values(n_x, 4);
      std::vector<uint16_t> x16(x.size());
      for (size_t i = 0; i < x.size(); ++i) x16[i] = f32_to_f16(x[i]);
      const std::vector<float> y0 = test::random_values(size_t(n), 5);
      std::vector<float> want = y0, got = y0, want16 = y0, got16 = y0;
      for (int64_t c = 0; c < n_x; ++c) {
        k.axpy_f32(p[size_t(c)], x.data() + size_t(c) * stride, want.data(), n);
        k.axpy_f16(p[size_t(c)], x16.data() + size_t(c) * stride, want16.data(), n);
      }
      k.accumulate_f32(x.data(), stride * sizeof(float), n_x, p.data(), got.data(), n);
      k.accumulate_f16(x16.data(), stride * sizeof(uint16_t), n_x, p.data(), got16.data(), n);
      EXPECT_EQ(got, want) << isa_name(isa) << " n " << n;
      EXPECT_EQ(got16, want16) << isa_name(isa) << " n " << n;
      for (int64_t i = 0; i < n; ++i) {
        double y = y0[size_t(i)];
        for (int64_t c = 0; c < n_x; ++c) y += double(p[size_t(c)]) * x[size_t(c) * stride + size_t(i)];
        EXPECT_NEAR(got[size_t(i)], y, 1e-5) << isa_name(isa) << " n " << n << " i " << i;
      }
    }
  }
}

TEST(CpuOpKernels, ScaleAndF16RoundingBitForBit) {
  for (Isa isa : available_isas()) {
    const OpKernels& k = op_kernels(isa);
    for (int64_t n : kLengths) {
      std::vector<float> x = test::random_values(size_t(n), 6, 1000.0f);
      x[0] = 1e-6f;  // an f16 subnormal
      std::vector<uint16_t> got(size_t(n) + 1, 0xabcd);
      k.f32_to_f16(x.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(got[size_t(i)], f32_to_f16(x[size_t(i)])) << isa_name(isa) << " i " << i;
      EXPECT_EQ(got[size_t(n)], 0xabcd) << isa_name(isa) << ": wrote past n = " << n;
      std::vector<float> y = x;
      k.scale_f32(0.25f, y.data(), n);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], x[size_t(i)] * 0.25f);
    }
  }
}

TEST(CpuOpKernels, ExpOverItsRange) {
  for (Isa isa : available_isas()) {
    const OpKernels& k = op_kernels(isa);
    std::vector<float> x;
    for (float v = -85.0f; v <= 88.0f; v += 0.0371f) x.push_back(v);
    std::vector<float> got = x;
    k.exp_shifted(got.data(), int64_t(got.size()), 1.5f);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(double(x[i] - 1.5f));  // the argument the kernel sees
      worst = std::max(worst, std::fabs(got[i] - want) / want);
    }
    EXPECT_LE(worst, 3e-7) << isa_name(isa);  // 2.5 ulp, results in the normal range
    std::vector<float> tiny = {-200.0f, -150.0f, -110.0f, -std::numeric_limits<float>::infinity(), 0.0f};
    k.exp_shifted(tiny.data(), int64_t(tiny.size()), 0.0f);
    for (size_t i = 0; i + 1 < tiny.size(); ++i) EXPECT_EQ(tiny[i], 0.0f) << isa_name(isa) << " i " << i;
    EXPECT_EQ(tiny.back(), 1.0f) << isa_name(isa);
  }
}

TEST(CpuOpKernels, SiluMul) {
  for (Isa isa : available_isas()) {
    const OpKernels& k = op_kernels(isa);
    for (int64_t n : kLengths) {
      std::vector<float> g = test::random_values(size_t(n), 7, 6.0f), u = test::random_values(size_t(n), 8);
      g[0] = -95.0f;  // exp(-g) beyond f32's range
      std::vector<float> out(static_cast<size_t>(n));
      k.silu_mul(g.data(), u.data(), out.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double gi = g[size_t(i)];
        const double want = gi / (1 + std::exp(-gi)) * u[size_t(i)];
        EXPECT_NEAR(out[size_t(i)], want, 4e-7 * std::fabs(want) + 1e-30) << isa_name(isa) << " g " << gi;
      }
    }
  }
}

}  // namespace
}  // namespace strata::cpu
