// Bad arguments to every backend of the registry throw strata::Error with the same message:
// it names the op, the argument and the shapes or values involved (backend/op_checks.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backends_under_test.h"
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

class BackendErrors : public ::testing::TestWithParam<std::string> {
protected:
  Tensor f32(ShapeRef ne, std::string name) { return backend_under_test(GetParam())->alloc(DType::F32, ne, name); }
  Tensor weight(DType type, int64_t k, int64_t n, std::string name) {
    const auto values = random_values(size_t(k * n), 1);
    return backend_under_test(GetParam())->upload(Tensor::from_f32(values, {k, n}, type, std::move(name)));
  }
};

TEST_P(BackendErrors, Matmul) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  const Tensor w = weight(DType::Q4_0, 64, 3, "blk.0.attn_q.weight");
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
  expect_error([&] { b.matmul(w, b.alloc(DType::F16, {64, 2}, "x"), out); }, {"matmul", "x", "f16", "f32"});
  Tensor both = f32({64, 64}, "both");
  const Tensor square = weight(DType::F32, 64, 64, "w");
  expect_error([&] { b.matmul(square, both, both); }, {"matmul", "overlaps", "both"});
  const Tensor transposed = f32({2, 64}, "xt").transpose();  // [64, 2] with element stride 8
  expect_error([&] { b.matmul(w, transposed, out = f32({3, 2}, "out")); }, {"matmul", "x", "stride", "packed"});
}

TEST_P(BackendErrors, UnsupportedWeightTypeIsNamed) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  const Tensor iq2 = Tensor::empty(DType::IQ2_XXS, {256, 2}, "blk.3.ffn_down.weight");
  Tensor out = f32({2, 1}, "out");
  expect_error([&] { b.matmul(b.upload(iq2), f32({256, 1}, "x"), out); }, {"blk.3.ffn_down.weight", "iq2_xxs"});
}

TEST_P(BackendErrors, GetRows) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  const Tensor table = weight(DType::Q8_0, 32, 9, "token_embd.weight");
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
}

TEST_P(BackendErrors, RowAndElementwiseOps) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  Tensor x = f32({8, 3}, "x"), out = f32({8, 3}, "out");
  expect_error([&] { b.rms_norm(x, f32({7}, "attn_norm.weight"), 1e-5f, out); },
               {"rms_norm", "attn_norm.weight", "[7]", "should have shape [8]"});
  expect_error([&] { b.rms_norm(x, f32({8}, "w"), 1e-5f, x); }, {"rms_norm", "overlaps"});
  expect_error([&] { b.add(x, f32({8, 2}, "b"), out); }, {"add", "tensor 'b' f32 [8, 2]", "[8, 3]", "one row [8]"});
  expect_error([&] { b.add(x, f32({8}, "b"), out = f32({8, 4}, "out")); }, {"add", "out", "[8, 4]", "[8, 3]"});
  expect_error([&] { b.swiglu(x, f32({8, 2}, "up"), out = f32({8, 3}, "out")); }, {"swiglu", "up", "[8, 2]"});
  expect_error([&] { b.swiglu(x, f32({8, 3}, "up"), x); }, {"swiglu", "overlaps"});
}

TEST_P(BackendErrors, Rope) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
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

TEST_P(BackendErrors, StoreKv) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  Tensor cache = b.alloc(DType::F16, {8, 2, 5}, "cache_k");
  expect_error(
      [&] {
        b.store_kv(f32({8, 2, 3}, "k"), cache, DenseKvLayout(3, 3, 5));
      },
      {"store_kv", "token 2 at position 5", "1 blocks of 5 tokens"});
  expect_error(
      [&] {
        b.store_kv(f32({8, 2, 1}, "k"), cache, DenseKvLayout(-1, 1, 5));
      },
      {"store_kv", "token 0 at position -1"});
  expect_error(
      [&] {
        b.store_kv(f32({4, 2, 1}, "k"), cache, DenseKvLayout(0, 1, 5));
      },
      {"store_kv", "[4, 2]", "[8, 2, 5]", "head_dim"});
  Tensor q8 = b.alloc(DType::Q8_0, {32, 2, 5}, "cache_q8");
  expect_error(
      [&] {
        b.store_kv(f32({32, 2, 1}, "k"), q8, DenseKvLayout(0, 1, 5));
      },
      {"store_kv", "cache_q8", "q8_0", "f32 or f16"});
}

// Paged layouts that do not describe the batch or the cache.
TEST_P(BackendErrors, KvLayout) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  Tensor cache = b.alloc(DType::F32, {8, 2, 9}, "cache_k");  // two whole blocks of 4 rows
  const Tensor k = f32({8, 2, 2}, "k");
  std::vector<int32_t> positions = {0, 1}, seq = {0, 1}, table = {0, 1};
  int64_t max_blocks = 1;
  auto layout = [&] {
    return KvLayout{
        .positions = positions, .seq = seq, .block_table = table, .max_blocks = max_blocks, .block_tokens = 4};
  };
  b.store_kv(k, cache, layout());  // valid
  table = {0, 2};
  expect_error([&] { b.store_kv(k, cache, layout()); },
               {"store_kv", "block 0 of sequence 1 is block 2", "outside the 2 blocks of 4 tokens", "cache_k"});
  table = {0, 1};
  seq = {0, 2};
  expect_error([&] { b.store_kv(k, cache, layout()); }, {"store_kv", "token 1 is of sequence 2", "outside the 2"});
  seq = {0};
  expect_error([&] { b.store_kv(k, cache, layout()); }, {"store_kv", "2 tokens", "2 positions and 1 sequence ids"});
  seq = {0, 1};
  positions = {0, 4};
  expect_error([&] { b.store_kv(k, cache, layout()); }, {"store_kv", "token 1 at position 4", "1 blocks of 4 tokens"});
  positions = {0, 1};
  table = {0, 1, 1};
  max_blocks = 2;
  expect_error([&] { b.store_kv(k, cache, layout()); }, {"store_kv", "block table of 3 entries", "whole number"});
  table = {0, 1};
  max_blocks = 1;
  Tensor q = f32({8, 4, 2}, "q"), out = f32({8, 4, 2}, "out");
  seq = {5, 0};
  expect_error([&] { b.attention(q, cache, cache, layout(), 1.0f, 0, out); },
               {"attention", "token 0 is of sequence 5"});
}

TEST_P(BackendErrors, Attention) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  Tensor q = f32({8, 4, 2}, "q"), out = f32({8, 4, 2}, "out");
  Tensor k = f32({8, 3, 6}, "k_cache"), v = f32({8, 3, 6}, "v_cache");
  const DenseKvLayout kv(0, 2, 6);
  expect_error([&] { b.attention(q, k, v, kv, 1.0f, 0, out); }, {"attention", "4 heads", "3 KV heads", "k_cache"});
  k = f32({8, 2, 6}, "k_cache");
  v = f32({8, 2, 6}, "v_cache");
  expect_error([&] { b.attention(q, k, v, DenseKvLayout(5, 2, 6), 1.0f, 0, out); },
               {"attention", "token 1 at position 6", "1 blocks of 6 tokens"});
  expect_error(
      [&] {
        b.attention(q, k, f32({8, 2, 5}, "v_cache"), kv, 1.0f, 0, out);
      },
      {"attention", "v_cache", "[8, 2, 5]", "k_cache"});
  expect_error(
      [&] {
        b.attention(f32({4, 4, 2}, "q"), k, v, kv, 1.0f, 0, out = f32({4, 4, 2}, "out"));
      },
      {"attention", "head_dim 4", "k_cache", "has 8"});
  expect_error([&] { b.attention(q, k, v, kv, 1.0f, 0, q); }, {"attention", "overlaps"});
  Tensor out2 = f32({8, 4, 2}, "out2");
  expect_error([&] { b.attention(q, k, v, kv, 1.0f, -1, out2); }, {"attention", "window -1"});
  expect_error(
      [&] {
        b.attention(q, k, v, kv, 1.0f, 0, out = f32({8, 4, 3}, "out"));
      },
      {"attention", "out", "[8, 4, 3]"});
}

// The mixture-of-experts ops: shapes, the ids' type, the number of experts chosen, aliasing,
// and (where the backend reads ids on the host) ids out of range.
TEST_P(BackendErrors, Experts) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  Tensor logits = f32({8, 3}, "logits"), weights = f32({2, 3}, "weights");
  Tensor ids = b.alloc(DType::I32, {2, 3}, "ids");
  expect_error(
      [&] {
        b.route_top_k(logits, ids, weights = f32({2, 2}, "weights"));
      },
      {"route_top_k", "weights", "[2, 2]", "should have shape [2, 3]"});
  Tensor ids9 = b.alloc(DType::I32, {9, 3}, "ids9");
  Tensor weights9 = f32({9, 3}, "weights9");
  expect_error([&] { b.route_top_k(logits, ids9, weights9); }, {"route_top_k", "chooses 9 experts", "of the 8"});
  Tensor ids_f32 = f32({2, 3}, "ids_f32");
  expect_error(
      [&] {
        b.route_top_k(logits, ids_f32, weights = f32({2, 3}, "weights"));
      },
      {"route_top_k", "ids_f32", "must be i32"});

  const auto values = random_values(64 * 4 * 8, 1);
  const Tensor w = b.upload(Tensor::from_f32(values, {64, 4, 8}, DType::Q8_0, "blk.0.ffn_up_exps.weight"));
  Tensor out = f32({4, 2, 3}, "out");
  expect_error(
      [&] {
        b.matmul_experts(w, f32({32, 1, 3}, "x"), ids, out);
      },
      {"matmul_experts", "ffn_up_exps", "k = 64", "has 32"});
  expect_error(
      [&] {
        b.matmul_experts(w, f32({64, 3, 3}, "x"), ids, out);
      },
      {"matmul_experts", "x", "[64, 3, 3]", "1 or 2"});
  expect_error(
      [&] {
        b.matmul_experts(w, f32({64, 1, 3}, "x"), ids, out = f32({4, 3, 3}, "out"));
      },
      {"matmul_experts", "out", "[4, 3, 3]", "should have shape [4, 2, 3]"});
  if (!b.alloc(DType::F32, {1}, "probe").is_device()) {
    Tensor host_ids = Tensor::empty(DType::I32, {2, 3}, "ids");
    reinterpret_cast<int32_t*>(host_ids.mutable_data())[4] = 8;
    expect_error(
        [&] {
          b.matmul_experts(w, f32({64, 1, 3}, "x"), host_ids, out = f32({4, 2, 3}, "out"));
        },
        {"matmul_experts", "ids[4] = 8", "0..7"});
  }

  Tensor y = f32({4, 2, 3}, "y"), sum = f32({4, 3}, "sum");
  expect_error(
      [&] {
        b.sum_experts(y, f32({3, 3}, "weights"), sum);
      },
      {"sum_experts", "weights", "[3, 3]", "should have shape [2, 3]"});
  expect_error(
      [&] {
        b.sum_experts(y, weights = f32({2, 3}, "weights"), sum = f32({4, 2}, "sum"));
      },
      {"sum_experts", "sum", "[4, 2]", "should have shape [4, 3]"});
}

// The fused matmul refuses what its ops refuse, naming itself, and what makes no sense as a
// whole (a gate without two jobs, rope without a config, outputs that overlap).
TEST_P(BackendErrors, FusedMatmul) {
  STRATA_BACKEND_OR_SKIP(b, GetParam());
  const Tensor w = weight(DType::Q4_0, 64, 8, "w"), w9 = weight(DType::Q4_0, 64, 9, "w9");
  Tensor x = f32({64, 1}, "x"), x32 = f32({32, 1}, "x32");
  Tensor out8 = f32({8, 1}, "out8"), acc7 = f32({7, 1}, "acc7"), gate = f32({8, 1}, "gate"), up = f32({8, 1}, "up");
  Tensor act = f32({8, 1}, "act"), up9 = f32({9, 1}, "up9");

  const MatmulJob residual7[] = {{.w = &w, .out = &out8, .residual = &acc7}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = residual7}); },
               {"matmul_fused", "residual 0", "acc7", "should have the shape of out 0"});
  const MatmulJob one[] = {{.w = &w, .out = &out8}};
  expect_error([&] { b.matmul_fused({.x = &x32, .jobs = one}); }, {"matmul_fused", "weight 0", "elements per row"});
  const MatmulJob same_out[] = {{.w = &w, .out = &out8}, {.w = &w, .out = &out8}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = same_out}); }, {"matmul_fused", "out 1", "overlaps"});
  const MatmulJob residual_is_out[] = {{.w = &w, .out = &out8, .residual = &out8}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = residual_is_out}); }, {"matmul_fused", "overlaps"});

  expect_error([&] { b.matmul_fused({.x = &x, .jobs = one, .gate = FusedMatmul::Gate::swiglu, .gated = &act}); },
               {"matmul_fused", "swiglu", "two jobs", "1 jobs"});
  const MatmulJob gate_up9[] = {{.w = &w, .out = &gate}, {.w = &w9, .out = &up9}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = gate_up9, .gate = FusedMatmul::Gate::swiglu, .gated = &act}); },
               {"swiglu", "up", "[9]"});
  const MatmulJob roped[] = {{.w = &w, .out = &out8, .rope = true}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = roped, .head_dim = 4}); },
               {"matmul_fused", "job 0", "no rope config"});
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = roped}); }, {"matmul_fused", "head_dim = 0"});
  expect_error([&] { b.matmul_fused({.x = &x, .prologue = FusedMatmul::Prologue::rms_norm, .jobs = one}); },
               {"matmul_fused", "rms_norm prologue", "norm_input"});
  const Tensor bias9 = f32({9}, "bias9");
  const MatmulJob biased[] = {{.w = &w, .out = &out8, .bias = &bias9}};
  expect_error([&] { b.matmul_fused({.x = &x, .jobs = biased}); }, {"bias 0", "bias9", "[9]", "should have shape [8]"});
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendErrors, ::testing::ValuesIn(backend_names()),
                         [](const auto& info) { return test_name_of(info.param); });

}  // namespace
}  // namespace strata::test
