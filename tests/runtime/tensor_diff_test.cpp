#include "runtime/tensor_diff.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace strata {
namespace {

TEST(TensorDiff, MetricsOfKnownVectors) {
  const std::vector<float> ref = {1, 2, 3, 4};
  const std::vector<float> test = {1, 2, 3, 5};
  const TensorDiff d = diff_values("x", {4}, test, ref);
  EXPECT_DOUBLE_EQ(d.max_abs, 1.0);
  EXPECT_DOUBLE_EQ(d.nmse, 1.0 / 30.0);
  EXPECT_NEAR(d.cosine, (1 + 4 + 9 + 20) / std::sqrt(30.0 * 39.0), 1e-12);
}

TEST(TensorDiff, IdenticalAndZeroReferences) {
  const std::vector<float> zero = {0, 0};
  EXPECT_EQ(diff_values("z", {2}, zero, zero).nmse, 0.0);
  const std::vector<float> one = {0, 1};
  EXPECT_TRUE(std::isinf(diff_values("z", {2}, one, zero).nmse));
}

TEST(TensorDiff, NanOnOneSideIsInfiniteError) {
  const std::vector<float> ref = {1, 2};
  const std::vector<float> test = {1, std::numeric_limits<float>::quiet_NaN()};
  const TensorDiff d = diff_values("n", {2}, test, ref);
  EXPECT_TRUE(std::isinf(d.nmse));
}

TEST(TensorDiff, OpThresholdsByStableName) {
  EXPECT_EQ(op_nmse_threshold("blk.3.q"), 5e-4);
  EXPECT_EQ(op_nmse_threshold("blk.3.ffn_out"), 5e-4);
  EXPECT_EQ(op_nmse_threshold("logits"), 5e-4);
  EXPECT_EQ(op_nmse_threshold("logits#2"), 5e-4);
  EXPECT_EQ(op_nmse_threshold("blk.12.attn_norm"), 1e-7);
  EXPECT_EQ(op_nmse_threshold("blk.0.q_rope"), 5e-4);  // the fused q/k/v matmul writes it
  EXPECT_EQ(op_nmse_threshold("blk.0.ffn_act"), 1e-7);
  EXPECT_EQ(op_nmse_threshold("result_norm"), 1e-7);
}

TEST(TensorDiff, UpstreamErrorRaisesDownstreamThresholds) {
  std::vector<TensorDiff> diffs(3);
  diffs[0].name = "blk.0.q";
  diffs[0].nmse = 1e-4;  // within the matmul threshold
  diffs[1].name = "blk.0.ffn_act";
  diffs[1].nmse = 1.2e-4;  // an elementwise op carries its input's error: allowed
  diffs[2].name = "blk.0.attn_norm";
  diffs[2].nmse = 1e-2;  // far beyond anything upstream explains
  apply_thresholds(diffs);
  EXPECT_TRUE(diffs[0].pass);
  EXPECT_TRUE(diffs[1].pass);
  EXPECT_NEAR(diffs[1].threshold, 1e-7 + kPropagation * 1e-4, 1e-12);
  EXPECT_FALSE(diffs[2].pass);
}

}  // namespace
}  // namespace strata
