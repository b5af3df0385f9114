// The op table (op_cases.h) on the reference CPU backend, held to tighter bars than a backend
// under test (backend_ops_test.cpp runs it there too): it is the oracle, so its only error
// should be float rounding. `op_accuracy` (bench/) prints the measured figures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_cases.h"

namespace strata::test {
namespace {

// Bars for the reference itself.
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

std::string case_test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;
  std::ranges::replace_if(
      s, [](char ch) { return !std::isalnum(uint8_t(ch)); }, '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(Table, CpuRefOps, ::testing::ValuesIn(all_op_cases()), case_test_name);

}  // namespace
}  // namespace strata::test
