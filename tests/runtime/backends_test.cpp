#include "runtime/backends.h"

#include <gtest/gtest.h>

#include <string>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace strata {
namespace {

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CpuIsaOption, EmptyIsTheDetectedPath) {
  EXPECT_EQ(cpu_isa_from_option("", cpu::Isa::avx2), cpu::Isa::avx2);
  EXPECT_EQ(cpu_isa_from_option(""), cpu::detected_isa());
}

TEST(CpuIsaOption, NamesAPathAtOrBelowTheDetectedOne) {
  EXPECT_EQ(cpu_isa_from_option("portable", cpu::Isa::avx2), cpu::Isa::portable);
  EXPECT_EQ(cpu_isa_from_option("avx2", cpu::Isa::avx2), cpu::Isa::avx2);
  EXPECT_EQ(cpu_isa_from_option("avx512-vnni", cpu::Isa::avx512_vnni), cpu::Isa::avx512_vnni);
}

TEST(CpuIsaOption, UnknownNameNamesThePathsTheCpuHas) {
  const std::string e = error_of([] { cpu_isa_from_option("sse9", cpu::Isa::avx2); });
  EXPECT_NE(e.find("unknown CPU path 'sse9'"), std::string::npos) << e;
  EXPECT_NE(e.find("this CPU has: portable, avx2)"), std::string::npos) << e;
}

TEST(CpuIsaOption, PathAboveTheCpuIsRefused) {
  const std::string e = error_of([] { cpu_isa_from_option("avx512", cpu::Isa::avx2); });
  EXPECT_NE(e.find("cannot run the 'avx512' path"), std::string::npos) << e;
  EXPECT_NE(e.find("it has: portable, avx2)"), std::string::npos) << e;
}

TEST(MakeBackend, CpuIsTheFastBackendWithItsSettings) {
  auto b = make_backend("cpu", 2, CpuOptions{"portable", true});
  EXPECT_EQ(b->name(), "cpu");
  EXPECT_EQ(describe_backend(*b), "cpu (portable, f32 activations, 2 threads)");
  auto ref = make_backend("cpu_ref", 1);
  EXPECT_EQ(ref->name(), "cpu_ref");
  EXPECT_EQ(describe_backend(*ref), "cpu_ref");
  EXPECT_EQ(make_backend("cpu_ref64", 1)->name(), "cpu_ref64");
}

TEST(MakeBackend, DefaultThreadsAreThePhysicalCores) {
  auto b = make_backend("cpu");
  EXPECT_EQ(dynamic_cast<CpuBackend&>(*b).n_threads(), ThreadPool::physical_cores());
}

TEST(MakeBackend, UnknownNameFails) {
  EXPECT_NE(error_of([] { make_backend("gpu"); }).find("unknown backend 'gpu'"), std::string::npos);
}

}  // namespace
}  // namespace strata
