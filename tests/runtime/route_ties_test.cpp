#include "runtime/route_ties.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata {
namespace {

// A recording of one MoE layer over two tokens of 3 experts, 1 used: router logits [3, 2],
// weights [1, 2] and per-slot gate outputs [2, 1, 2] (the value of the chosen expert).
Recording moe_layer(const std::vector<float>& logits, const std::vector<float>& gate) {
  Recording r;
  auto put = [&](const std::string& name, const std::vector<float>& v, ShapeRef ne) {
    r.order.push_back(name);
    r.values.emplace(name, Tensor::from_f32(v, ne, DType::F32, name));
  };
  put("blk.0.ffn_moe_logits", logits, {3, 2});
  put("blk.0.ffn_moe_weights", {1, 1}, {1, 2});
  put("blk.0.ffn_moe_gate", gate, {2, 1, 2});
  return r;
}

const TensorDiff& named(const std::vector<TensorDiff>& diffs, const std::string& name) {
  for (const auto& d : diffs) {
    if (d.name == name) return d;
  }
  throw std::runtime_error("no diff " + name);
}

TEST(RouteTies, NearTieRoutedElsewhereIsLeftOut) {
  // Token 1: the reference picks expert 1 (0.5 against 0.4999); the test's logits, 2e-4 off,
  // pick expert 0. Token 0 agrees.
  const Recording ref = moe_layer({2, 0, 0, 0.4999f, 0.5f, 0}, {1, 2, 7, 8});
  const Recording test = moe_layer({2, 0, 0, 0.5001f, 0.4999f, 0}, {1, 2, 3, 4});
  const std::vector<TensorDiff> diffs = diff_recordings(test, ref);
  const TensorDiff& gate = named(diffs, "blk.0.ffn_moe_gate");
  EXPECT_EQ(gate.route_ties, 1);
  EXPECT_GT(gate.nmse, 0.1);
  EXPECT_EQ(gate.nmse_checked, 0.0);
  EXPECT_TRUE(gate.pass);
}

TEST(RouteTies, RoutingThatTheLogitsDoNotExplainFails) {
  // The same logits on both sides, but the test's outputs are another expert's: a routing bug.
  const Recording ref = moe_layer({2, 0, 0, 0, 1, 0}, {1, 2, 7, 8});
  const Recording test = moe_layer({2, 0, 0, 0, 1, 0}, {1, 2, 3, 4});
  const std::vector<TensorDiff> diffs = diff_recordings(test, ref);  // named() returns a reference into it
  const TensorDiff& gate = named(diffs, "blk.0.ffn_moe_gate");
  EXPECT_EQ(gate.route_ties, 0);
  EXPECT_FALSE(gate.pass);
  // Logits 0.3 apart at the boundary, 0.01 off: not a near-tie either.
  const Recording ref2 = moe_layer({2, 0, 0, 0.7f, 1, 0}, {1, 2, 7, 8});
  const Recording test2 = moe_layer({2, 0, 0, 0.71f, 1, 0}, {1, 2, 3, 4});
  EXPECT_EQ(named(diff_recordings(test2, ref2), "blk.0.ffn_moe_gate").route_ties, 0);
}

}  // namespace
}  // namespace strata
