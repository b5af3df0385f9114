// Bad arguments to the reference CPU backend throw strata::Error with a message that
// names the op, the argument and the shapes or values involved.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_harness.h"
#include "core/error.h"

namespace strata::test {
namespace {

// Runs `f`, expects a strata::Error, and checks that its message contains each of `parts`.
template <typename F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no strata::Error was thrown";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

RopeConfig rope_config(int n_rot, float base = 10000.0f, std::vector<float> factors = {}) {
  return RopeConfig{n_rot, base, 1.0f, false, std::move(factors)};
}

Tensor f32(ShapeRef ne, std::string name) {
  return Tensor::empty(DType::F32, ne, std::move(name));
}

class CpuRefErrors : public ::testing::Test {
protected:
  CpuRefBackend b;
};

TEST_F(CpuRefErrors, Matmul) {
  const Tensor w = Tensor::from_f32(random_values(64 * 3, 1), {64, 3}, DType::Q4_0, "blk.0.attn_q.weight");
  Tensor out = f32({3, 2}, "out");
  expect_error(
      [&] {
        b.matmul(w, f32({32, 2}, "x"), out);
      },
      {"matmul", "blk.0.attn_q.weight", "[64, 3]", "k = 64", "tensor 'x' f32 [32, 2]", "has 32"});
  expect_error(
      [&] {
        b.matmul(w, f32({64, 2}, "x"), out = f32({4, 2}, "out"));
      },
      {"matmul", "out", "[4, 2]", "should have shape [3, 2]"});
  expect_error([&] { b.matmul(w, Tensor::empty(DType::F16, {64, 2}, "x"), out); }, {"matmul", "x", "f16", "f32"});
  const Tensor iq2 = Tensor::empty(DType::IQ2_XXS, {256, 2}, "blk.3.ffn_down.weight");
  expect_error(
      [&] {
        b.matmul(iq2, f32({256, 1}, "x"), out = f32({2, 1}, "out"));
      },
      {"matmul", "blk.3.ffn_down.weight", "iq2_xxs", "no reference dequantize"});
  Tensor both = f32({64, 64}, "both");
  Tensor square = Tensor::from_f32(random_values(64 * 64, 2), {64, 64}, DType::F32, "w");
  expect_error([&] { b.matmul(square, both, both); }, {"matmul", "overlaps", "both"});
  const Tensor transposed = f32({2, 64}, "xt").transpose();  // [64, 2] with element stride 8
  expect_error([&] { b.matmul(w, transposed, out = f32({3, 2}, "out")); }, {"matmul", "x", "stride", "packed"});
  const std::vector<float> mem(6);
  Tensor read_only = Tensor::external(DType::F32, {3, 2}, mem.data(), sizeof(float) * 6, nullptr, "ro");
  expect_error([&] { b.matmul(w, f32({64, 2}, "x"), read_only); }, {"matmul", "ro", "read-only"});
}

TEST_F(CpuRefErrors, GetRows) {
  const Tensor table = Tensor::from_f32(random_values(32 * 9, 3), {32, 9}, DType::Q8_0, "token_embd.weight");
  Tensor out = f32({32, 2}, "out");
  expect_error(
      [&] {
        b.get_rows(table, std::vector<int32_t>{1, 9}, out);
      },
      {"get_rows", "id 9", "ids[1]", "token_embd.weight", "0..8"});
  expect_error([&] { b.get_rows(table, std::vector<int32_t>{-1, 0}, out); }, {"get_rows", "id -1", "ids[0]"});
  expect_error(
      [&] {
        b.get_rows(table, std::vector<int32_t>{1, 2, 3}, out);
      },
      {"get_rows", "out", "[32, 2]", "should have shape [32, 3]"});
  const Tensor iq1 = Tensor::empty(DType::IQ1_S, {256, 4}, "token_embd.weight");
  expect_error(
      [&] {
        b.get_rows(iq1, std::vector<int32_t>{0}, out = f32({256, 1}, "out"));
      },
      {"get_rows", "iq1_s", "no reference dequantize"});
}

TEST_F(CpuRefErrors, RowAndElementwiseOps) {
  Tensor x = f32({8, 3}, "x"), out = f32({8, 3}, "out");
  expect_error([&] { b.rms_norm(x, f32({7}, "attn_norm.weight"), 1e-5f, out); },
               {"rms_norm", "attn_norm.weight", "[7]", "should have shape [8]"});
  expect_error([&] { b.rms_norm(x, f32({8}, "w"), 1e-5f, x); }, {"rms_norm", "overlaps"});
  expect_error([&] { b.add(x, f32({8, 2}, "b"), out); }, {"add", "tensor 'b' f32 [8, 2]", "[8, 3]", "one row [8]"});
  expect_error([&] { b.add(x, f32({8}, "b"), out = f32({8, 4}, "out")); }, {"add", "out", "[8, 4]", "[8, 3]"});
  expect_error([&] { b.scale(x, 2.0f, out = f32({3, 8}, "out")); }, {"scale", "out", "[3, 8]", "[8, 3]"});
  expect_error([&] { b.swiglu(x, f32({8, 2}, "up"), out = f32({8, 3}, "out")); }, {"swiglu", "up", "[8, 2]"});
  expect_error([&] { b.swiglu(x, f32({8, 3}, "up"), x); }, {"swiglu", "overlaps"});
  Tensor half = Tensor::empty(DType::F16, {8, 3}, "h");
  expect_error([&] { b.softmax(half); }, {"softmax", "f16", "f32"});
}

TEST_F(CpuRefErrors, Rope) {
  Tensor x = f32({8, 2, 3}, "q");
  const std::vector<int32_t> pos = {0, 1, 2};
  expect_error(
      [&] {
        b.rope(x, std::vector<int32_t>{0, 1}, rope_config(8));
      },
      {"rope", "2 positions", "[8, 2, 3]", "3 tokens"});
  expect_error([&] { b.rope(x, pos, rope_config(7)); }, {"rope", "n_rot = 7", "even"});
  expect_error([&] { b.rope(x, pos, rope_config(10)); }, {"rope", "n_rot = 10", "head_dim = 8"});
  expect_error([&] { b.rope(x, pos, rope_config(0)); }, {"rope", "n_rot = 0"});
  expect_error(
      [&] {
        b.rope(x, pos, rope_config(8, 10000.0f, {1, 1, 1}));
      },
      {"rope", "3 freq_factors", "n_rot / 2 = 4"});
  expect_error([&] { b.rope(x, pos, rope_config(8, 10000.0f, {1, 0, 1, 1})); }, {"rope", "freq_factors[1] = 0"});
  expect_error([&] { b.rope(x, pos, rope_config(8, -1.0f)); }, {"rope", "freq_base = -1"});
}

TEST_F(CpuRefErrors, StoreKv) {
  Tensor cache = Tensor::empty(DType::F16, {8, 2, 5}, "cache_k");
  expect_error(
      [&] {
        b.store_kv(f32({8, 2, 3}, "k"), cache, 3);
      },
      {"store_kv", "positions 3..5", "cache_k", "5 positions"});
  expect_error([&] { b.store_kv(f32({8, 2, 1}, "k"), cache, -1); }, {"store_kv", "positions -1..-1"});
  expect_error([&] { b.store_kv(f32({4, 2, 1}, "k"), cache, 0); }, {"store_kv", "[4, 2]", "[8, 2, 5]", "head_dim"});
  Tensor q8 = Tensor::empty(DType::Q8_0, {32, 2, 5}, "cache_q8");
  expect_error([&] { b.store_kv(f32({32, 2, 1}, "k"), q8, 0); }, {"store_kv", "cache_q8", "q8_0", "f32 or f16"});
}

TEST_F(CpuRefErrors, Attention) {
  Tensor q = f32({8, 4, 2}, "q"), out = f32({8, 4, 2}, "out");
  Tensor k = f32({8, 3, 6}, "k_cache"), v = f32({8, 3, 6}, "v_cache");
  expect_error([&] { b.attention(q, k, v, 0, 1.0f, out); }, {"attention", "4 heads", "3 KV heads", "k_cache"});
  k = f32({8, 2, 6}, "k_cache");
  v = f32({8, 2, 6}, "v_cache");
  expect_error([&] { b.attention(q, k, v, 5, 1.0f, out); }, {"attention", "n_past 5 + 2", "6 positions"});
  expect_error(
      [&] {
        b.attention(q, k, f32({8, 2, 5}, "v_cache"), 0, 1.0f, out);
      },
      {"attention", "v_cache", "[8, 2, 5]", "k_cache"});
  expect_error(
      [&] {
        b.attention(f32({4, 4, 2}, "q"), k, v, 0, 1.0f, out = f32({4, 4, 2}, "out"));
      },
      {"attention", "head_dim 4", "k_cache", "has 8"});
  expect_error([&] { b.attention(q, k, v, 0, 1.0f, q); }, {"attention", "overlaps"});
  expect_error([&] { b.attention(q, k, v, 0, 1.0f, out = f32({8, 4, 3}, "out")); }, {"attention", "out", "[8, 4, 3]"});
}

}  // namespace
}  // namespace strata::test
