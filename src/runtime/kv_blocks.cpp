#include "runtime/kv_blocks.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

uint64_t kv_block_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // splitmix64 steps over the parent and each token: a 64-bit name; find() compares the tokens
  // and the parent too, so a collision cannot hand a sequence another prefix's keys.
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  uint64_t h = mix(parent ^ 0x5bd1e9955bd1e995ull);
  for (const int32_t t : tokens) h = mix(h ^ uint64_t(uint32_t(t)));
  return h == 0 ? 1 : h;  // 0 names no block: the parent of a first block
}

KvBlocks::KvBlocks(int64_t n_blocks, int64_t block_tokens) : block_tokens_(block_tokens) {
  if (n_blocks <= 0 || n_blocks > INT32_MAX || block_tokens <= 0) {
    fail("a KV cache of {} blocks of {} tokens: both must be positive", n_blocks, block_tokens);
  }
  blocks_.resize(size_t(n_blocks));
  free_.resize(size_t(n_blocks));
  // Lowest block numbers first: a lone sequence's blocks lie in order.
  for (int64_t i = 0; i < n_blocks; ++i) free_[size_t(i)] = int32_t(n_blocks - 1 - i);
}

void KvBlocks::check(int32_t block) const {
  if (block < 0 || block >= n_blocks()) fail("KV block {} is not one of the {} blocks", block, n_blocks());
}

KvBlocks::Block& KvBlocks::at(int32_t block) {
  check(block);
  return blocks_[size_t(block)];
}

int32_t KvBlocks::refs(int32_t block) const {
  check(block);
  return blocks_[size_t(block)].refs;
}

std::optional<int32_t> KvBlocks::allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    forget(b);
    free_.pop_back();  // forget() put it there
  } else {
    return std::nullopt;
  }
  blocks_[size_t(b)].refs = 1;
  ++n_used_;
  return b;
}

void KvBlocks::retain(int32_t block) {
  Block& b = at(block);
  if (b.refs == 0) {
    if (!b.named) fail("KV block {} is free: it cannot be retained", block);
    lru_.erase(b.lru);
    ++n_used_;
  }
  ++b.refs;
}

void KvBlocks::release(int32_t block) {
  Block& b = at(block);
  if (b.refs <= 0) fail("KV block {} is released more often than it was held", block);
  if (--b.refs > 0) return;
  --n_used_;
  if (b.named) {
    b.lru = lru_.insert(lru_.end(), block);
  } else {
    free_.push_back(block);
  }
}

void KvBlocks::publish(int32_t block, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  Block& b = at(block);
  if (b.refs <= 0) fail("KV block {} is not held: it cannot be published", block);
  if (b.named || by_hash_.contains(hash)) return;
  b.named = true;
  b.hash = hash;
  b.parent = parent;
  b.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, block);
}

std::optional<int32_t> KvBlocks::find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const Block& b = blocks_[size_t(it->second)];
  if (b.parent != parent || !std::ranges::equal(b.tokens, tokens)) return std::nullopt;
  return it->second;
}

void KvBlocks::forget(int32_t block) {
  Block& b = blocks_[size_t(block)];
  lru_.erase(b.lru);
  by_hash_.erase(b.hash);
  b.named = false;
  b.tokens.clear();
  free_.push_back(block);
}

}  // namespace strata
