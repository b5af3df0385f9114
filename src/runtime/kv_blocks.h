// The blocks of a paged KV cache (backend.h: KvLayout) and the prefix cache over them: a block
// is free, held by sequences (a reference count), or cached (full, named by the hash of its
// tokens and of the blocks before it, and held by nobody). A sequence whose prompt starts with
// cached blocks takes them instead of computing their keys and values again (prefix caching);
// a block that nobody holds any more stays cached until its row space is needed, the least
// recently released first (LRU).
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace strata {

// The name of a full block: its tokens and the name of the block before it (0 for the first).
uint64_t kv_block_hash(uint64_t parent, std::span<const int32_t> tokens);

class KvBlocks {
public:
  KvBlocks(int64_t n_blocks, int64_t block_tokens);

  int64_t n_blocks() const { return int64_t(blocks_.size()); }
  int64_t block_tokens() const { return block_tokens_; }
  // Blocks held by at least one sequence.
  int64_t n_used() const { return n_used_; }
  // Blocks nobody holds whose contents are kept for reuse.
  int64_t n_cached() const { return int64_t(lru_.size()); }
  // Blocks allocate() can give: free ones and cached ones nobody holds.
  int64_t n_available() const { return n_blocks() - n_used_; }

  // A block for a sequence to write (reference count 1): a free one, else the least recently
  // released cached one (forgotten by the prefix cache). nullopt when every block is held.
  std::optional<int32_t> allocate();
  // One more holder of a held or cached block (a sequence taking a cached prefix).
  void retain(int32_t block);
  // One holder less; a block nobody holds becomes cached if it is named, else free.
  void release(int32_t block);

  // Names a full block a sequence holds (its tokens computed): later sequences may find it.
  // When another block already has the name, this one stays unnamed (freed when released).
  void publish(int32_t block, uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
  // The block named `hash` whose tokens and parent are these, if any (not retained).
  std::optional<int32_t> find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;
  // Its holders (a block number outside the pool is an error).
  int32_t refs(int32_t block) const;

private:
  struct Block {
    int32_t refs = 0;
    bool named = false;
    uint64_t hash = 0, parent = 0;
    std::vector<int32_t> tokens;       // when named
    std::list<int32_t>::iterator lru;  // when named and refs == 0
  };
  void check(int32_t block) const;  // a block number of the pool
  Block& at(int32_t block);
  void forget(int32_t block);  // drops the name of an unheld cached block

  int64_t block_tokens_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;                      // unnamed, unheld
  std::list<int32_t> lru_;                         // named, unheld: least recently released first
  std::unordered_map<uint64_t, int32_t> by_hash_;  // named blocks
  int64_t n_used_ = 0;
};

}  // namespace strata
