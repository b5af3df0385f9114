// Views of a split tensor mapped onto its parts (src/backend/tensor_parallel/shard_layout.h).
#include <gtest/gtest.h>

#include <vector>

#include "backend/op_harness.h"
#include "backend/tensor_parallel/shard_layout.h"

namespace strata::test {
namespace {

ViewGeometry view_of(const Tensor& whole, const Tensor& view) {
  return geometry_of(view, whole.data());
}

TEST(ShardLayout, ActivationSplitByFeaturesSeenAsHeads) {
  const Tensor q = Tensor::empty(DType::F32, {64, 5});  // [head_dim 16 x 4 heads, 5 tokens]
  const SplitLayout split{q.ne(), 0, 2};
  const std::optional<PartView> whole = part_view(split, 4, view_of(q, q));
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->geometry.ne, (Tensor::Dims{32, 5, 1, 1}));
  EXPECT_EQ(whole->geometry.nb[1], 32u * 4);
  EXPECT_EQ(whole->divided_dim, 0);
  const std::optional<PartView> heads = part_view(split, 4, view_of(q, q.reshape({16, 4, 5})));
  ASSERT_TRUE(heads);
  EXPECT_EQ(heads->geometry.ne, (Tensor::Dims{16, 2, 5, 1}));
  EXPECT_EQ(heads->geometry.nb[1], 16u * 4);
  EXPECT_EQ(heads->geometry.nb[2], 32u * 4);
  EXPECT_EQ(heads->divided_dim, 1);
}

TEST(ShardLayout, TokenSliceKeepsItsOffsetPerPart) {
  const Tensor x = Tensor::empty(DType::F32, {64, 5});
  const std::optional<PartView> last = part_view({x.ne(), 0, 4}, 4, view_of(x, x.slice(1, 4, 1)));
  ASSERT_TRUE(last);
  EXPECT_EQ(last->geometry.ne, (Tensor::Dims{16, 1, 1, 1}));
  EXPECT_EQ(last->geometry.offset, 4u * 16 * 4);  // token 4 of a part of 16 features
}

TEST(ShardLayout, CacheSplitByKvHeads) {
  const Tensor cache = Tensor::empty(DType::F16, {16, 4, 8});  // [head_dim, kv heads, n_ctx]
  const std::optional<PartView> p = part_view({cache.ne(), 1, 2}, 2, view_of(cache, cache.slice(2, 3, 2)));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->geometry.ne, (Tensor::Dims{16, 2, 2, 1}));
  EXPECT_EQ(p->geometry.nb[2], 16u * 2 * 2);
  EXPECT_EQ(p->geometry.offset, 3u * 16 * 2 * 2);
  EXPECT_EQ(p->divided_dim, 1);
}

TEST(ShardLayout, TransposedViewDividesItsFeatureDim) {
  const Tensor q = Tensor::empty(DType::F32, {64, 5});
  const std::optional<PartView> t = part_view({q.ne(), 0, 2}, 4, view_of(q, q.transpose()));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->geometry.ne, (Tensor::Dims{5, 32, 1, 1}));
  EXPECT_EQ(t->geometry.nb[0], 32u * 4);
  EXPECT_EQ(t->divided_dim, 1);
}

TEST(ShardLayout, ViewsThatDoNotCoverTheSplitDimDoNotMap) {
  const Tensor q = Tensor::empty(DType::F32, {64, 5});
  const SplitLayout split{q.ne(), 0, 2};
  EXPECT_FALSE(part_view(split, 4, view_of(q, q.slice(0, 0, 32))));   // half the features
  EXPECT_FALSE(part_view(split, 4, view_of(q, q.slice(0, 16, 48))));  // starts inside
  EXPECT_FALSE(part_view({q.ne(), 0, 3}, 4, view_of(q, q)));          // 64 in 3 parts
  // Heads that do not split: 4 heads of 16 viewed as 2 x 32 over 4 parts works, 3 heads not.
  const Tensor odd = Tensor::empty(DType::F32, {48, 2});
  EXPECT_FALSE(part_view({odd.ne(), 0, 2}, 4, view_of(odd, odd.reshape({16, 3, 2}))));
}

// view_with makes, from another tensor of the same shape, the view a chain of view ops made.
TEST(ShardLayout, ViewWithRemakesViews) {
  std::vector<float> values(4 * 6 * 5);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i);
  const Tensor a = Tensor::from_f32(values, {24, 5}, DType::F32, "a");
  const Tensor b = Tensor::from_f32(values, {24, 5}, DType::F32, "b");
  const std::vector<Tensor> views = {
      a.reshape({4, 6, 5}),
      a.slice(1, 3, 2),
      a.reshape({4, 6, 5}).slice(1, 2, 3),
      a.reshape({4, 6, 5}).permute({1, 0, 2, 3}),
      a.transpose().slice(0, 1, 2),
      a.reshape({4, 6, 5}).slice(0, 1, 2).slice(2, 4, 1),
  };
  for (const Tensor& v : views) {
    const Tensor w = view_with(b, geometry_of(v, a.data()));
    EXPECT_EQ(w.ne(), v.ne());
    EXPECT_EQ(w.data() - b.data(), v.data() - a.data());
    for (int d = 0; d < kMaxDims; ++d) {
      if (v.ne(d) > 1) {
        EXPECT_EQ(w.nb(d), v.nb(d)) << d;
      }
    }
    EXPECT_EQ(host_values(w.contiguous()), host_values(v.contiguous()));
  }
}

TEST(ShardLayout, ViewWithRefusesOverlapsAndQuantizedTypes) {
  const Tensor a = Tensor::empty(DType::F32, {8, 4}, "a");
  ViewGeometry overlap{{4, 4, 1, 1}, {4, 8, 32, 32}, 0};  // rows of 4 every 2 elements
  EXPECT_NE(error_of([&] { view_with(a, overlap); }).find("cannot be made of it"), std::string::npos);
  const Tensor q = Tensor::empty(DType::Q8_0, {32, 2}, "q");
  EXPECT_NE(error_of([&] { view_with(q, geometry_of(q.slice(1, 1, 1), q.data())); }).find("cannot be made"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::test
