// The paged KV block table of one replica: which block ids each sequence owns,
// reference counts, and prefix caching. Workers own the memory; the router
// owns the ids (as in text-generation-inference's block allocator).
//
// Prefix caching: a full block is identified by a hash chained over (parent
// block's hash, the block's token ids), so equal hashes mean equal prefixes.
// Blocks whose KV has been computed are registered under their hash once the
// step that wrote them succeeded (Commit), so a later sequence with the same
// prefix shares them. Blocks nobody references stay reusable until they are
// evicted, least recently freed first.
//
// Verbs follow nano-vllm (CanAllocate / Allocate / CanAppend / Append / Free);
// like vLLM v1, running out of blocks is a "no" answer, never an exception.
#ifndef TPSERVE_ROUTER_BLOCK_MANAGER_H_
#define TPSERVE_ROUTER_BLOCK_MANAGER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace tpserve::router {

// One sequence's view of its blocks; owned by the sequence, changed only by
// BlockManager.
struct BlockTable {
  // Block ids in position order; block i holds positions
  // [i * block_size, (i + 1) * block_size).
  std::vector<int32_t> block_ids;
  // Chained hash of each full, computed block (a prefix of block_ids).
  std::vector<uint64_t> block_hashes;
};

// Allocates KV block ids with reference counts and prefix caching.
class BlockManager {
 public:
  // `num_blocks` >= 1 and `block_size` >= 1 (checked by the caller).
  BlockManager(int num_blocks, int block_size, bool enable_prefix_caching);

  // Cached full blocks matching a prefix of `tokens`. At most
  // (tokens.size() - 1) tokens are served, so that the last token is always
  // computed (its logits are needed to sample).
  std::vector<int32_t> FindCachedPrefix(
      const std::vector<int32_t>& tokens) const;

  // Whether a sequence with no blocks can take `cached` (from
  // FindCachedPrefix) and enough new blocks to cover `num_positions`.
  bool CanAllocate(const std::vector<int32_t>& cached, int num_positions) const;

  // Gives an empty `table` the `cached` blocks plus new ones covering
  // `num_positions`. Returns the number of cached tokens, or nullopt (and
  // changes nothing) when there is no room.
  std::optional<int> Allocate(const std::vector<int32_t>& tokens,
                              const std::vector<int32_t>& cached,
                              int num_positions, BlockTable* table);

  // Whether `table` can grow to cover `num_positions`.
  bool CanAppend(const BlockTable& table, int num_positions) const;

  // Grows `table` to cover `num_positions`; false (and no change) when there
  // is no room.
  bool Append(int num_positions, BlockTable* table);

  // Registers the full blocks among the first `num_computed_tokens` of
  // `tokens` for prefix reuse. Call after the step that computed them.
  void Commit(const std::vector<int32_t>& tokens, int num_computed_tokens,
              BlockTable* table);

  // Drops the table's references (last block first, so that a sequence's
  // tail is evicted before its more shareable head) and empties it.
  void Free(BlockTable* table);

  // Blocks needed to hold `num_positions` positions.
  int BlocksFor(int num_positions) const {
    return (num_positions + block_size_ - 1) / block_size_;
  }

  // Total blocks.
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  // Tokens per block.
  int block_size() const { return block_size_; }
  // Blocks no sequence references (including evictable cached ones).
  int num_free_blocks() const { return num_free_; }
  // Blocks registered in the prefix cache (referenced or not).
  int num_cached_blocks() const {
    return static_cast<int>(hash_to_block_.size());
  }
  // Reference count of one block (for tests and invariant checks).
  int ref_count(int32_t block_id) const { return blocks_[block_id].ref_count; }

  // Hash of a full block given its parent's hash (0 for the first block).
  static uint64_t HashBlock(uint64_t parent, const int32_t* tokens, int n);

 private:
  struct Block {
    int ref_count = 0;
    // Registered in hash_to_block_ under `hash`.
    bool cached = false;
    uint64_t hash = 0;
    // The block's tokens while cached, to rule out hash collisions.
    std::vector<int32_t> tokens;
    // Free-list links (-1: none); valid while ref_count == 0.
    int32_t prev = -1;
    int32_t next = -1;
  };

  // Free-list operations; the list's head is evicted first.
  void PushFront(int32_t id);
  void PushBack(int32_t id);
  void Unlink(int32_t id);
  // Takes a block off the head of the free list, evicting its cache entry.
  int32_t PopFree();
  // Takes one reference on a block (removing it from the free list if idle).
  void Ref(int32_t id);

  const int block_size_;
  const bool enable_prefix_caching_;
  std::vector<Block> blocks_;
  int32_t free_head_ = -1;
  int32_t free_tail_ = -1;
  int num_free_ = 0;
  absl::flat_hash_map<uint64_t, int32_t> hash_to_block_;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_BLOCK_MANAGER_H_
