// Bad arguments to the fast CPU backend, on every ISA path this CPU has, throw strata::Error
// with the message cpu_ref gives for the same call (the shared checks of backend/op_checks.h;
// cpu_ref_errors_test.cpp checks what those messages say). Only the backend's name in a
// type check differs.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_harness.h"

namespace strata::test {
namespace {

Tensor f32(ShapeRef ne, std::string name) {
  return Tensor::empty(DType::F32, ne, std::move(name));
}

struct BadCall {
  std::string what;
  std::function<void(Backend&)> call;
};

std::vector<BadCall> bad_calls() {
  const auto q4 =
      std::make_shared<Tensor>(Tensor::from_f32(random_values(64 * 3, 1), {64, 3}, DType::Q4_0, "blk.0.attn_q.weight"));
  const auto q8 =
      std::make_shared<Tensor>(Tensor::from_f32(random_values(32 * 9, 3), {32, 9}, DType::Q8_0, "token_embd.weight"));
  const auto iq1 = std::make_shared<Tensor>(Tensor::empty(DType::IQ1_S, {256, 4}, "token_embd.weight"));
  const auto rope = [](int n_rot, std::vector<float> factors = {}) {
    return RopeConfig{n_rot, 10000.0f, 1.0f, false, std::move(factors)};
  };
  return {
      {"matmul k",
       [=](Backend& b) {
         Tensor o = f32({3, 2}, "out");
         b.matmul(*q4, f32({32, 2}, "x"), o);
       }},
      {"matmul out",
       [=](Backend& b) {
         Tensor o = f32({4, 2}, "out");
         b.matmul(*q4, f32({64, 2}, "x"), o);
       }},
      {"get_rows id",
       [=](Backend& b) {
         Tensor o = f32({32, 2}, "out");
         b.get_rows(*q8, std::vector<int32_t>{1, 9}, o);
       }},
      {"get_rows negative",
       [=](Backend& b) {
         Tensor o = f32({32, 2}, "out");
         b.get_rows(*q8, std::vector<int32_t>{-1, 0}, o);
       }},
      {"get_rows type",
       [=](Backend& b) {
         Tensor o = f32({256, 1}, "out");
         b.get_rows(*iq1, std::vector<int32_t>{0}, o);
       }},
      {"rms_norm weight",
       [](Backend& b) {
         Tensor o = f32({8, 3}, "out");
         b.rms_norm(f32({8, 3}, "x"), f32({7}, "w"), 1e-5f, o);
       }},
      {"rms_norm alias",
       [](Backend& b) {
         Tensor x = f32({8, 3}, "x");
         b.rms_norm(x, f32({8}, "w"), 1e-5f, x);
       }},
      {"add shape",
       [](Backend& b) {
         Tensor o = f32({8, 3}, "out");
         b.add(f32({8, 3}, "a"), f32({8, 2}, "b"), o);
       }},
      {"swiglu alias",
       [](Backend& b) {
         Tensor g = f32({8, 3}, "g");
         b.swiglu(g, f32({8, 3}, "up"), g);
       }},
      {"rope positions",
       [=](Backend& b) {
         Tensor x = f32({8, 2, 3}, "q");
         b.rope(x, std::vector<int32_t>{0, 1}, rope(8));
       }},
      {"rope n_rot",
       [=](Backend& b) {
         Tensor x = f32({8, 2, 3}, "q");
         b.rope(x, std::vector<int32_t>{0, 1, 2}, rope(10));
       }},
      {"rope factors",
       [=](Backend& b) {
         Tensor x = f32({8, 2, 3}, "q");
         b.rope(x, std::vector<int32_t>{0, 1, 2}, rope(8, {1, 0, 1, 1}));
       }},
      {"store_kv range",
       [](Backend& b) {
         Tensor c = Tensor::empty(DType::F16, {8, 2, 5}, "cache_k");
         b.store_kv(f32({8, 2, 3}, "k"), c, DenseKvLayout(3, 3, 5));
       }},
      {"store_kv type",
       [](Backend& b) {
         Tensor c = Tensor::empty(DType::Q8_0, {32, 2, 5}, "cache_q8");
         b.store_kv(f32({32, 2, 1}, "k"), c, DenseKvLayout(0, 1, 5));
       }},
      {"attention heads",
       [](Backend& b) {
         Tensor o = f32({8, 4, 2}, "out");
         b.attention(f32({8, 4, 2}, "q"), f32({8, 3, 6}, "k_cache"), f32({8, 3, 6}, "v_cache"), DenseKvLayout(0, 2, 6),
                     1.0f, 0, o);
       }},
      {"attention positions",
       [](Backend& b) {
         Tensor o = f32({8, 4, 2}, "out");
         b.attention(f32({8, 4, 2}, "q"), f32({8, 2, 6}, "k_cache"), f32({8, 2, 6}, "v_cache"), DenseKvLayout(5, 2, 6),
                     1.0f, 0, o);
       }},
      {"attention alias",
       [](Backend& b) {
         Tensor q = f32({8, 4, 2}, "q");
         b.attention(q, f32({8, 2, 6}, "k_cache"), f32({8, 2, 6}, "v_cache"), DenseKvLayout(0, 2, 6), 1.0f, 0, q);
       }},
  };
}

TEST(CpuErrors, SameMessagesAsCpuRefOnEveryPath) {
  CpuRefBackend reference;
  for (const BadCall& bad : bad_calls()) {
    std::string want = error_of([&] { bad.call(reference); });
    ASSERT_FALSE(want.empty()) << bad.what << ": cpu_ref throws no error";
    if (const size_t at = want.find("the cpu_ref backend"); at != std::string::npos) {
      want.replace(at, std::string("the cpu_ref backend").size(), "the cpu backend");
    }
    for (cpu::Isa isa : cpu::available_isas()) {
      CpuBackend b(2, isa);
      EXPECT_EQ(error_of([&] { bad.call(b); }), want) << bad.what << " on " << cpu::isa_name(isa);
    }
  }
}

}  // namespace
}  // namespace strata::test
