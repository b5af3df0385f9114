// The KV block pool and its prefix cache (runtime/kv_blocks.h): allocation, reference counts,
// named blocks found again, LRU eviction of the cached ones nobody holds, misuse refused.
#include "runtime/kv_blocks.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/error.h"

namespace strata::test {
namespace {

const std::vector<int32_t> kA = {1, 2, 3, 4}, kB = {5, 6, 7, 8}, kC = {9, 10, 11, 12};

TEST(KvBlocks, AllocatesEveryBlockOnceThenNone) {
  KvBlocks pool(5, 4);
  std::set<int32_t> seen;
  for (int i = 0; i < 5; ++i) {
    const std::optional<int32_t> b = pool.allocate();
    ASSERT_TRUE(b);
    EXPECT_TRUE(seen.insert(*b).second);
    EXPECT_GE(*b, 0);
    EXPECT_LT(*b, 5);
  }
  EXPECT_EQ(pool.n_used(), 5);
  EXPECT_EQ(pool.n_available(), 0);
  EXPECT_FALSE(pool.allocate());
  pool.release(3);
  EXPECT_EQ(pool.n_available(), 1);
  EXPECT_EQ(pool.allocate(), 3);
}

TEST(KvBlocks, FirstBlocksComeInOrder) {
  KvBlocks pool(4, 2);
  for (int32_t i = 0; i < 4; ++i) EXPECT_EQ(pool.allocate(), i);
}

TEST(KvBlocks, NamedBlocksAreFoundByTokensAndParent) {
  KvBlocks pool(4, 4);
  const int32_t a = *pool.allocate(), b = *pool.allocate();
  const uint64_t ha = kv_block_hash(0, kA), hb = kv_block_hash(ha, kB);
  EXPECT_NE(ha, hb);
  EXPECT_NE(kv_block_hash(0, kB), hb);  // the parent is part of the name
  pool.publish(a, ha, 0, kA);
  pool.publish(b, hb, ha, kB);
  EXPECT_EQ(pool.find(ha, 0, kA), a);
  EXPECT_EQ(pool.find(hb, ha, kB), b);
  EXPECT_FALSE(pool.find(hb, 0, kB));  // another parent
  EXPECT_FALSE(pool.find(ha, 0, kB));  // other tokens under the same name
  EXPECT_FALSE(pool.find(kv_block_hash(0, kC), 0, kC));
  // Released, they stay cached and can be taken again.
  pool.release(a);
  pool.release(b);
  EXPECT_EQ(pool.n_used(), 0);
  EXPECT_EQ(pool.n_cached(), 2);
  EXPECT_EQ(pool.n_available(), 4);
  pool.retain(a);
  EXPECT_EQ(pool.refs(a), 1);
  EXPECT_EQ(pool.n_used(), 1);
  EXPECT_EQ(pool.n_cached(), 1);
  pool.retain(a);  // a second sequence on the same prefix
  EXPECT_EQ(pool.refs(a), 2);
  pool.release(a);
  pool.release(a);
  EXPECT_EQ(pool.n_cached(), 2);
}

TEST(KvBlocks, SecondBlockOfTheSameNameStaysUnnamed) {
  KvBlocks pool(3, 4);
  const int32_t a = *pool.allocate(), twin = *pool.allocate();
  const uint64_t h = kv_block_hash(0, kA);
  pool.publish(a, h, 0, kA);
  pool.publish(twin, h, 0, kA);
  EXPECT_EQ(pool.find(h, 0, kA), a);
  pool.release(twin);  // unnamed: free, not cached
  EXPECT_EQ(pool.n_cached(), 0);
  pool.release(a);
  EXPECT_EQ(pool.n_cached(), 1);
}

TEST(KvBlocks, EvictsTheLeastRecentlyReleasedCachedBlock) {
  KvBlocks pool(3, 4);
  const int32_t a = *pool.allocate(), b = *pool.allocate(), c = *pool.allocate();
  const uint64_t ha = kv_block_hash(0, kA), hb = kv_block_hash(0, kB), hc = kv_block_hash(0, kC);
  pool.publish(a, ha, 0, kA);
  pool.publish(b, hb, 0, kB);
  pool.publish(c, hc, 0, kC);
  pool.release(b);  // released first: evicted first
  pool.release(a);
  pool.release(c);
  EXPECT_EQ(pool.allocate(), b);
  EXPECT_FALSE(pool.find(hb, 0, kB));
  EXPECT_EQ(pool.find(ha, 0, kA), a);
  pool.retain(a);  // taken again: no longer evictable; c goes next
  EXPECT_EQ(pool.allocate(), c);
  EXPECT_FALSE(pool.find(hc, 0, kC));
  EXPECT_FALSE(pool.allocate());
  EXPECT_EQ(pool.find(ha, 0, kA), a);
}

TEST(KvBlocks, MisuseIsRefused) {
  EXPECT_THROW(KvBlocks(0, 4), Error);
  EXPECT_THROW(KvBlocks(4, 0), Error);
  KvBlocks pool(2, 4);
  EXPECT_THROW(pool.release(0), Error);  // never held
  EXPECT_THROW(pool.retain(1), Error);   // free, not cached
  EXPECT_THROW(pool.publish(0, 7, 0, kA), Error);
  EXPECT_THROW(pool.release(5), Error);
  EXPECT_THROW(pool.refs(-1), Error);
}

}  // namespace
}  // namespace strata::test
