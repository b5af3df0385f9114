// The op table (op_cases.h) on the reference CPU backend: in f32 and f64 accumulation
// against the double-precision expectations, and f32 against f64 under each op's
// threshold. The reference is held to tighter bars than a backend under test: it is the
// oracle, so its only error should be float rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_cases.h"

namespace strata::test {
namespace {

// Bars for the reference itself (measured figures are printed by MeasuredFigures).
// f32: float rounding only; the worst case is a single dot product that nearly cancels.
constexpr double kOracleNmseF32 = 1e-9;
constexpr double kOracleNmseF64 = 1e-13;  // f64 sums: one rounding of each output to f32

class CpuRefOps : public ::testing::TestWithParam<OpCase> {};

TEST_P(CpuRefOps, F32AccumulationMatchesExpectation) {
  const OpCase& c = GetParam();
  CpuRefBackend backend(Accumulation::f32);
  const double e = nmse(c.expect(), c.run(backend));
  EXPECT_LE(e, c.max_nmse) << c.name;
  EXPECT_LE(e, kOracleNmseF32) << c.name;
}

TEST_P(CpuRefOps, F64AccumulationMatchesExpectation) {
  const OpCase& c = GetParam();
  CpuRefBackend backend(Accumulation::f64);
  EXPECT_LE(nmse(c.expect(), c.run(backend)), kOracleNmseF64) << c.name;
}

TEST_P(CpuRefOps, F32AgreesWithF64) {
  const OpCase& c = GetParam();
  CpuRefBackend f32(Accumulation::f32), f64(Accumulation::f64);
  EXPECT_LE(nmse(to_double(c.run(f64)), c.run(f32)), c.max_nmse) << c.name;
}

std::string case_test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;
  std::ranges::replace_if(
      s, [](char ch) { return !std::isalnum(uint8_t(ch)); }, '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(Table, CpuRefOps, ::testing::ValuesIn(all_op_cases()), case_test_name);

// Prints, per op, the largest NMSE seen: f32 and f64 mode against the expectation, and f32
// against f64 (the figure a faster backend's threshold is compared with).
TEST(CpuRefOpsReport, MeasuredFigures) {
  struct Worst {
    double f32 = 0, f64 = 0, f32_vs_f64 = 0;
  };
  std::map<std::string, Worst> worst;
  CpuRefBackend f32(Accumulation::f32), f64(Accumulation::f64);
  for (const OpCase& c : all_op_cases()) {
    const std::vector<double> want = c.expect();
    const std::vector<float> got32 = c.run(f32), got64 = c.run(f64);
    Worst& w = worst[c.name.substr(0, c.name.find('/'))];
    w.f32 = std::max(w.f32, nmse(want, got32));
    w.f64 = std::max(w.f64, nmse(want, got64));
    w.f32_vs_f64 = std::max(w.f32_vs_f64, nmse(to_double(got64), got32));
  }
  std::cout << fmt::format("{:<10} {:>12} {:>12} {:>12}\n", "op", "f32 vs exp", "f64 vs exp", "f32 vs f64");
  for (const auto& [op, w] : worst) {
    std::cout << fmt::format("{:<10} {:>12.3e} {:>12.3e} {:>12.3e}\n", op, w.f32, w.f64, w.f32_vs_f64);
  }
}

}  // namespace
}  // namespace strata::test
