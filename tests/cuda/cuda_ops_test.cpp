// The CUDA cases (cuda_op_cases.h: the shapes that reach each kernel path, at model sizes) on
// the CUDA backend: each against its double-precision expectation and against cpu_ref, under
// the op's NMSE threshold. The shared op table runs on CUDA in the generic suite
// (tests/backend/backend_ops_test.cpp). Without a GPU every test is skipped.
//
//   build/bin/cuda_tests --gtest_filter='*matmul_q4_K*'   # one op and type
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

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

INSTANTIATE_TEST_SUITE_P(Gpu, CudaOps, ::testing::ValuesIn(cuda_op_cases()), case_test_name);

}  // namespace
}  // namespace strata::test
