// The op table (op_cases.h) on every backend of the registry (backends_under_test.h): each case
// against its double-precision expectation and against cpu_ref64 under the op's NMSE
// threshold, and twice with the same bits (no races, no reads of unwritten memory).
//
//   build/bin/backend_tests --gtest_filter='*cuda*matmul_q4_K*'   # one backend, op and type
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <tuple>

#include "backend/backends_under_test.h"
#include "backend/op_cases.h"

namespace strata::test {
namespace {

class BackendOps : public ::testing::TestWithParam<std::tuple<std::string, OpCase>> {};

// The op's bar, or for a single dot product on 8-bit activations (rounds_activations) only
// the size and finiteness of the result.
void expect_within_bar(const std::string& name, const OpCase& c, std::span<const double> want,
                       std::span<const float> got) {
  if (!nmse_bar_applies(c.op, rounds_activations(name), got.size())) {
    EXPECT_EQ(want.size(), 1u) << c.name;
    EXPECT_TRUE(std::isfinite(got[0])) << c.name;
    return;
  }
  EXPECT_LE(nmse(want, got), c.max_nmse) << c.name;
}

TEST_P(BackendOps, MatchesExpectation) {
  const auto& [name, c] = GetParam();
  STRATA_BACKEND_OR_SKIP(b, name);
  expect_within_bar(name, c, c.expect(), c.run(b));
}

TEST_P(BackendOps, AgreesWithReference) {
  const auto& [name, c] = GetParam();
  STRATA_BACKEND_OR_SKIP(b, name);
  expect_within_bar(name, c, to_double(c.run(reference_backend())), c.run(b));
}

TEST_P(BackendOps, Deterministic) {
  const auto& [name, c] = GetParam();
  STRATA_BACKEND_OR_SKIP(b, name);
  EXPECT_EQ(c.run(b), c.run(b)) << c.name;
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<std::string, OpCase>>& info) {
  return test_name_of(std::get<0>(info.param) + "_" + std::get<1>(info.param).name);
}

INSTANTIATE_TEST_SUITE_P(Table, BackendOps,
                         ::testing::Combine(::testing::ValuesIn(backend_names()), ::testing::ValuesIn(all_op_cases())),
                         param_name);

}  // namespace
}  // namespace strata::test
