// The tensor-parallel backend's split paths (src/backend/tensor_parallel/), over K in-process
// cpu_ref parts against one cpu_ref: column-split and row-split matmuls (the all-reduce),
// attention over a cache split by KV heads, parts assembled for the host, and the refusals.
// Its whole-tensor paths run in the generic suite (backends_under_test.h: tp2/cpu_ref).
#include "backend/tensor_parallel/tensor_parallel_backend.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu_ref/cpu_ref_backend.h"
#include "backend/op_harness.h"

namespace strata::test {
namespace {

std::unique_ptr<TensorParallelBackend> split_over(int k) {
  return make_in_process_tensor_parallel(k, [] { return std::make_unique<CpuRefBackend>(Accumulation::f32, 1); });
}

const Placement kColumns{Placement::Kind::columns};
const Placement kRows{Placement::Kind::rows};

Tensor host_f32(std::span<const float> v, ShapeRef ne, std::string name = {}) {
  return Tensor::from_f32(v, ne, DType::F32, std::move(name));
}

class TensorParallelSplit : public ::testing::TestWithParam<int> {};

// h = w1 x (w1 split by columns: h in parts), out = w2 h (w2 split by rows: partial sums
// all-reduced): the feed-forward's shape of split.
TEST_P(TensorParallelSplit, ColumnThenRowMatmulEqualsOneDevice) {
  const int k = GetParam();
  std::unique_ptr<TensorParallelBackend> tp = split_over(k);
  CpuRefBackend one(Accumulation::f32, 1);
  const int64_t n_in = 64, n_hidden = 128, m = 3;
  const Tensor w1 = Tensor::from_f32(random_values(size_t(n_in * n_hidden), 1), {n_in, n_hidden}, DType::Q8_0, "w1");
  const Tensor w2 = Tensor::from_f32(random_values(size_t(n_hidden * n_in), 2), {n_hidden, n_in}, DType::F16, "w2");
  const Tensor x = host_f32(random_values(size_t(n_in * m), 3), {n_in, m}, "x");

  Tensor h_tp = tp->alloc(DType::F32, {n_hidden, m}, "h"), out_tp = tp->alloc(DType::F32, {n_in, m}, "out");
  const Tensor w1_tp = tp->upload_placed(w1, kColumns), w2_tp = tp->upload_placed(w2, kRows);
  tp->matmul(w1_tp, tp->upload(x), h_tp);
  tp->matmul(w2_tp, h_tp, out_tp);

  Tensor h = one.alloc(DType::F32, {n_hidden, m}, "h"), out = one.alloc(DType::F32, {n_in, m}, "out");
  one.matmul(one.upload(w1), one.upload(x), h);
  one.matmul(one.upload(w2), h, out);

  // Each row of h is the same dot product on either; out sums k partial products of it.
  EXPECT_EQ(download(*tp, h_tp), download(one, h));
  EXPECT_LE(nmse(to_double(download(one, out)), download(*tp, out_tp)), 1e-12);
  const auto bytes = tp->weight_bytes();
  EXPECT_EQ(bytes.split, (w1.n_bytes() + w2.n_bytes()) / size_t(k));
  EXPECT_EQ(bytes.whole, 0u);
}

// q, k, v split by heads; k, v stored into caches split by KV heads; attention on each part;
// its output in parts of heads, assembled for the host.
TEST_P(TensorParallelSplit, AttentionOverACacheSplitByKvHeads) {
  const int k = GetParam();
  std::unique_ptr<TensorParallelBackend> tp = split_over(k);
  CpuRefBackend one(Accumulation::f32, 1);
  const int64_t head_dim = 8, n_head = 8, n_kv = 4, n_ctx = 6, n = 3;
  const Tensor q = host_f32(random_values(size_t(head_dim * n_head * n), 4), {head_dim * n_head, n}, "q");
  const Tensor kk = host_f32(random_values(size_t(head_dim * n_kv * n), 5), {head_dim * n_kv, n}, "k");
  const Tensor v = host_f32(random_values(size_t(head_dim * n_kv * n), 6), {head_dim * n_kv, n}, "v");
  const std::vector<int32_t> positions = {2, 3, 4};
  RopeConfig rope;
  rope.n_rot = int(head_dim);

  auto run = [&](Backend& b, const Placement& cache_placement) {
    Tensor kc = b.alloc_placed(DType::F16, {head_dim, n_kv, n_ctx}, "cache_k", cache_placement);
    Tensor vc = b.alloc_placed(DType::F16, {head_dim, n_kv, n_ctx}, "cache_v", cache_placement);
    // An identity matrix split by columns makes q, k, v into parts, as the model's projections do.
    auto project = [&](const Tensor& t) {
      const int64_t rows = t.ne(0);
      std::vector<float> eye(size_t(rows * rows), 0.0f);
      for (int64_t i = 0; i < rows; ++i) eye[size_t(i * rows + i)] = 1.0f;
      Tensor out = b.alloc(DType::F32, {rows, n}, t.name());
      b.matmul(b.upload_placed(host_f32(eye, {rows, rows}), {Placement::Kind::columns, head_dim}), b.upload(t), out);
      return out;
    };
    Tensor q_b = project(q), k_b = project(kk), v_b = project(v);
    Tensor qh = split_heads(q_b, head_dim), kh = split_heads(k_b, head_dim);
    b.rope(qh, positions, rope);
    b.rope(kh, positions, rope);
    const DenseKvLayout kv(2, n, n_ctx);
    b.store_kv(kh, kc, kv);
    b.store_kv(split_heads(v_b, head_dim), vc, kv);
    Tensor att = b.alloc(DType::F32, {head_dim * n_head, n}, "att");
    Tensor att_h = split_heads(att, head_dim);
    b.attention(qh, kc, vc, kv, 0.35f, 0, att_h);
    return std::vector<std::vector<float>>{download(b, att), download(b, qh), download(b, kc)};
  };
  const auto got = run(*tp, {Placement::Kind::kv_heads});
  const auto want = run(one, {});
  EXPECT_EQ(got[1], want[1]) << "roped q";
  EXPECT_EQ(got[2], want[2]) << "the K cache, assembled";
  EXPECT_LE(nmse(to_double(want[0]), got[0]), 1e-12) << "attention";
}

INSTANTIATE_TEST_SUITE_P(Parts, TensorParallelSplit, ::testing::Values(2, 4),
                         [](const auto& info) { return fmt::format("k{}", info.param); });

TEST(TensorParallel, HeadsThatDoNotSplitAreRefusedNamingTheSizes) {
  std::unique_ptr<TensorParallelBackend> tp = split_over(2);
  const Tensor wq = host_f32(random_values(64 * 48, 1), {64, 48}, "blk.0.attn_q.weight");  // 3 heads of 16
  EXPECT_NE(error_of([&] {
              tp->upload_placed(wq, {Placement::Kind::columns, 16});
            })
                .find("tensor parallel over 2 parts: tensor 'blk.0.attn_q.weight' f32 [64, 48] has 3 heads of 16, "
                      "which do not split evenly over 2 parts"),
            std::string::npos);
  std::unique_ptr<TensorParallelBackend> tp8 = split_over(8);  // more parts than heads
  const Tensor wk = host_f32(random_values(64 * 64, 2), {64, 64}, "blk.0.attn_k.weight");
  EXPECT_NE(error_of([&] {
              tp8->upload_placed(wk, {Placement::Kind::columns, 16});
            }).find("has 4 heads of 16, which do not split evenly over 8 parts"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              tp->alloc_placed(DType::F16, {16, 3, 8}, "cache_k.0", {Placement::Kind::kv_heads});
            }).find("KV cache 'cache_k.0' [16, 3, 8] has 3 KV heads, which do not split evenly over 2 parts"),
            std::string::npos);
  const Tensor up = host_f32(random_values(8 * 9, 3), {8, 9}, "ffn_up");
  EXPECT_NE(error_of([&] { tp->upload_placed(up, kColumns); }).find("has 9 rows of output"), std::string::npos);
}

TEST(TensorParallel, RefusesTensorsOfAnotherBackend) {
  std::unique_ptr<TensorParallelBackend> tp = split_over(2);
  CpuRefBackend one(Accumulation::f32, 1);
  Tensor out = tp->alloc(DType::F32, {4}, "out");
  const Tensor foreign = one.alloc(DType::F32, {4}, "foreign");
  EXPECT_NE(error_of([&] {
              tp->scale(foreign, 2.0f, out);
            }).find("scale: tensor 'foreign' f32 [4] is not a tensor of backend tp2:cpu_ref"),
            std::string::npos);
}

TEST(TensorParallel, QuantizedRowsThatWouldCutBlocksStayWhole) {
  std::unique_ptr<TensorParallelBackend> tp = split_over(2);
  CpuRefBackend one(Accumulation::f32, 1);
  // 96 input rows in 2 parts of 48 would cut q8_0's 32-element blocks: the weight stays whole.
  const Tensor w = Tensor::from_f32(random_values(96 * 8, 7), {96, 8}, DType::Q8_0, "down");
  const Tensor x = host_f32(random_values(96 * 2, 8), {96, 2}, "x");
  Tensor out_tp = tp->alloc(DType::F32, {8, 2}, "out"), out = one.alloc(DType::F32, {8, 2}, "out");
  tp->matmul(tp->upload_placed(w, kRows), tp->upload(x), out_tp);
  one.matmul(one.upload(w), one.upload(x), out);
  EXPECT_EQ(download(*tp, out_tp), download(one, out));
  EXPECT_EQ(tp->weight_bytes().whole, w.n_bytes());
  EXPECT_EQ(tp->weight_bytes().split, 0u);
}

}  // namespace
}  // namespace strata::test
