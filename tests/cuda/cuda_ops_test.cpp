// The op table (backend/op_cases.h) and the CUDA cases (cuda_op_cases.h) on the CUDA backend:
// each case against its double-precision expectation and against cpu_ref, under the op's
// NMSE threshold. Without a GPU every test that needs one is skipped.
//
//   build/bin/cuda_tests                                  # all
//   build/bin/cuda_tests --gtest_filter='*matmul_q4_K*'   # one op and type
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cuda/cuda_op_cases.h"

namespace strata::test {
namespace {

// One backend for the whole binary; nullptr without a usable GPU.
Backend* cuda_backend() {
  static const std::unique_ptr<Backend> backend = cuda_device_available() ? make_cuda_backend() : nullptr;
  return backend.get();
}

#define STRATA_SKIP_WITHOUT_GPU() \
  if (cuda_backend() == nullptr) GTEST_SKIP() << "no CUDA GPU"

class CudaOps : public ::testing::TestWithParam<OpCase> {};

TEST_P(CudaOps, MatchesExpectation) {
  STRATA_SKIP_WITHOUT_GPU();
  const OpCase& c = GetParam();
  EXPECT_LE(nmse(c.expect(), c.run(*cuda_backend())), c.max_nmse) << c.name;
}

TEST_P(CudaOps, AgreesWithCpuRef) {
  STRATA_SKIP_WITHOUT_GPU();
  const OpCase& c = GetParam();
  CpuRefBackend reference(Accumulation::f32, 4);
  EXPECT_LE(nmse(to_double(c.run(reference)), c.run(*cuda_backend())), c.max_nmse) << c.name;
}

// Running a case twice gives the same bits: no races, no reads of unwritten memory.
TEST_P(CudaOps, Deterministic) {
  STRATA_SKIP_WITHOUT_GPU();
  const OpCase& c = GetParam();
  EXPECT_EQ(c.run(*cuda_backend()), c.run(*cuda_backend())) << c.name;
}

std::string case_test_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string s = info.param.name;
  std::ranges::replace_if(
      s, [](char ch) { return !std::isalnum(uint8_t(ch)); }, '_');
  return s;
}

INSTANTIATE_TEST_SUITE_P(Table, CudaOps, ::testing::ValuesIn(all_op_cases()), case_test_name);
INSTANTIATE_TEST_SUITE_P(Gpu, CudaOps, ::testing::ValuesIn(cuda_op_cases()), case_test_name);

// Prints the largest NMSE per op and weight type, against the expectation and against
// cpu_ref (the figures quoted in docs/benchmarks.md).
TEST(CudaOpsReport, MeasuredFigures) {
  STRATA_SKIP_WITHOUT_GPU();
  struct Worst {
    double expect = 0, ref = 0, threshold = 0;
    int cases = 0;
  };
  std::map<std::string, Worst> worst;
  CpuRefBackend reference(Accumulation::f32, 4);
  std::vector<OpCase> cases = all_op_cases();
  for (OpCase& c : cuda_op_cases()) cases.push_back(std::move(c));
  for (const OpCase& c : cases) {
    const std::vector<float> got = c.run(*cuda_backend());
    const size_t slash = c.name.find('/');
    const std::string key = c.op == "matmul" || c.op == "get_rows" || c.op == "store_kv" || c.op == "attention"
                                ? c.op + "/" + c.name.substr(slash + 1, c.name.find('/', slash + 1) - slash - 1)
                                : c.op;
    Worst& w = worst[key];
    w.expect = std::max(w.expect, nmse(c.expect(), got));
    w.ref = std::max(w.ref, nmse(to_double(c.run(reference)), got));
    w.threshold = c.max_nmse;
    ++w.cases;
  }
  std::cout << fmt::format("{:<18} {:>5} {:>12} {:>12} {:>10}\n", "op/type", "cases", "vs exact", "vs cpu_ref",
                           "threshold");
  for (const auto& [key, w] : worst) {
    std::cout << fmt::format("{:<18} {:>5} {:>12.3e} {:>12.3e} {:>10.0e}\n", key, w.cases, w.expect, w.ref,
                             w.threshold);
  }
}

}  // namespace
}  // namespace strata::test
