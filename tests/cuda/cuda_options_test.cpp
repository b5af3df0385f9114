// CudaOptions::from_environment: the one place the CUDA backend's switches are read. Needs no
// GPU (it only parses), so it runs wherever the CUDA backend is built.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace strata {
namespace {

// Sets the variables for the scope of one test and removes them after it.
class Environment {
public:
  Environment(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [name, value] : vars) {
      setenv(name, value, 1);
      names_.push_back(name);
    }
  }
  ~Environment() {
    for (const char* name : names_) unsetenv(name);
  }

private:
  std::vector<const char*> names_;
};

TEST(CudaOptions, DefaultsWithoutTheVariables) {
  const CudaOptions o = CudaOptions::from_environment();
  EXPECT_EQ(o.gemm, CudaOptions::Gemm::f16);
  EXPECT_EQ(o.matvec, CudaOptions::Matvec::q8);
  EXPECT_TRUE(o.graphs);
  EXPECT_FALSE(o.profile);
}

TEST(CudaOptions, EachVariableSetsItsOption) {
  const Environment env{{"STRATA_CUDA_GEMM", "tf32"},
                        {"STRATA_CUDA_MATVEC", "f32"},
                        {"STRATA_CUDA_GRAPHS", "0"},
                        {"STRATA_CUDA_PROFILE", "1"}};
  const CudaOptions o = CudaOptions::from_environment();
  EXPECT_EQ(o.gemm, CudaOptions::Gemm::tf32);
  EXPECT_EQ(o.matvec, CudaOptions::Matvec::f32);
  EXPECT_FALSE(o.graphs);
  EXPECT_TRUE(o.profile);
  const Environment f32{{"STRATA_CUDA_GEMM", "f32"}};
  EXPECT_EQ(CudaOptions::from_environment().gemm, CudaOptions::Gemm::f32);
}

TEST(CudaOptions, UnknownValuesAreRefusedByName) {
  for (const auto& [name, value, allowed] : {std::tuple{"STRATA_CUDA_GEMM", "f64", "f16, tf32, f32"},
                                             {"STRATA_CUDA_MATVEC", "int4", "q8, f32"},
                                             {"STRATA_CUDA_GRAPHS", "off", "0, 1"},
                                             {"STRATA_CUDA_PROFILE", "yes", "0, 1"}}) {
    const Environment env{{name, value}};
    try {
      CudaOptions::from_environment();
      ADD_FAILURE() << name << "=" << value << " was accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(std::string(name) + "=" + value + " is not one of " + allowed), std::string::npos)
          << message;
    }
  }
}

}  // namespace
}  // namespace strata
