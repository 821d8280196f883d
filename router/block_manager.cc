#include "router/block_manager.h"

#include <algorithm>
#include <cstring>

#include "common/hash.h"

namespace tpserve::router {

BlockManager::BlockManager(int num_blocks, int block_size,
                           bool enable_prefix_caching)
    : block_size_(block_size),
      enable_prefix_caching_(enable_prefix_caching),
      blocks_(num_blocks) {
  for (int32_t id = 0; id < num_blocks; ++id) PushBack(id);
}

uint64_t BlockManager::HashBlock(uint64_t parent, const int32_t* tokens,
                                 int n) {
  uint64_t h = SplitMix64(parent);
  for (int i = 0; i < n; ++i) {
    h = SplitMix64(h ^ static_cast<uint32_t>(tokens[i]));
  }
  // 0 marks "no parent"; keep real hashes away from it.
  return h == 0 ? 1 : h;
}

void BlockManager::PushFront(int32_t id) {
  Block& b = blocks_[id];
  b.prev = -1;
  b.next = free_head_;
  if (free_head_ >= 0) blocks_[free_head_].prev = id;
  free_head_ = id;
  if (free_tail_ < 0) free_tail_ = id;
  ++num_free_;
}

void BlockManager::PushBack(int32_t id) {
  Block& b = blocks_[id];
  b.next = -1;
  b.prev = free_tail_;
  if (free_tail_ >= 0) blocks_[free_tail_].next = id;
  free_tail_ = id;
  if (free_head_ < 0) free_head_ = id;
  ++num_free_;
}

void BlockManager::Unlink(int32_t id) {
  Block& b = blocks_[id];
  if (b.prev >= 0) {
    blocks_[b.prev].next = b.next;
  } else {
    free_head_ = b.next;
  }
  if (b.next >= 0) {
    blocks_[b.next].prev = b.prev;
  } else {
    free_tail_ = b.prev;
  }
  b.prev = b.next = -1;
  --num_free_;
}

int32_t BlockManager::PopFree() {
  const int32_t id = free_head_;
  Unlink(id);
  Block& b = blocks_[id];
  if (b.cached) {
    hash_to_block_.erase(b.hash);
    b.cached = false;
    b.tokens.clear();
  }
  return id;
}

void BlockManager::Ref(int32_t id) {
  if (blocks_[id].ref_count++ == 0) Unlink(id);
}

std::vector<int32_t> BlockManager::FindCachedPrefix(
    const std::vector<int32_t>& tokens) const {
  std::vector<int32_t> hits;
  if (!enable_prefix_caching_ || tokens.empty()) return hits;
  const int max_blocks = static_cast<int>(tokens.size() - 1) / block_size_;
  uint64_t parent = 0;
  for (int i = 0; i < max_blocks; ++i) {
    const int32_t* start = tokens.data() + i * block_size_;
    const uint64_t h = HashBlock(parent, start, block_size_);
    auto it = hash_to_block_.find(h);
    if (it == hash_to_block_.end()) break;
    const Block& b = blocks_[it->second];
    if (!std::equal(b.tokens.begin(), b.tokens.end(), start)) break;
    hits.push_back(it->second);
    parent = h;
  }
  return hits;
}

bool BlockManager::CanAllocate(const std::vector<int32_t>& cached,
                               int num_positions) const {
  int needed = std::max(0, BlocksFor(num_positions) -
                               static_cast<int>(cached.size()));
  // Idle cached blocks leave the free pool when taken.
  for (int32_t id : cached) needed += blocks_[id].ref_count == 0 ? 1 : 0;
  return needed <= num_free_;
}

std::optional<int> BlockManager::Allocate(const std::vector<int32_t>& tokens,
                                          const std::vector<int32_t>& cached,
                                          int num_positions,
                                          BlockTable* table) {
  if (!table->block_ids.empty() || !CanAllocate(cached, num_positions)) {
    return std::nullopt;
  }
  // Take the hits before popping new blocks so that eviction cannot pick
  // one of them.
  uint64_t parent = 0;
  for (size_t i = 0; i < cached.size(); ++i) {
    Ref(cached[i]);
    table->block_ids.push_back(cached[i]);
    parent = HashBlock(parent, tokens.data() + i * block_size_, block_size_);
    table->block_hashes.push_back(parent);
  }
  while (static_cast<int>(table->block_ids.size()) < BlocksFor(num_positions)) {
    const int32_t id = PopFree();
    blocks_[id].ref_count = 1;
    table->block_ids.push_back(id);
  }
  return static_cast<int>(cached.size()) * block_size_;
}

bool BlockManager::CanAppend(const BlockTable& table, int num_positions) const {
  return BlocksFor(num_positions) - static_cast<int>(table.block_ids.size()) <=
         num_free_;
}

bool BlockManager::Append(int num_positions, BlockTable* table) {
  if (!CanAppend(*table, num_positions)) return false;
  while (static_cast<int>(table->block_ids.size()) < BlocksFor(num_positions)) {
    const int32_t id = PopFree();
    blocks_[id].ref_count = 1;
    table->block_ids.push_back(id);
  }
  return true;
}

void BlockManager::Commit(const std::vector<int32_t>& tokens,
                          int num_computed_tokens, BlockTable* table) {
  if (!enable_prefix_caching_) return;
  const int full = std::min(num_computed_tokens / block_size_,
                            static_cast<int>(table->block_ids.size()));
  for (int i = static_cast<int>(table->block_hashes.size()); i < full; ++i) {
    const uint64_t parent = i == 0 ? 0 : table->block_hashes[i - 1];
    const int32_t* start = tokens.data() + i * block_size_;
    const uint64_t h = HashBlock(parent, start, block_size_);
    table->block_hashes.push_back(h);
    Block& b = blocks_[table->block_ids[i]];
    // A block with the same content may already be cached (two sequences
    // computed the same prefix at once); keep the first, as vLLM does.
    if (b.cached || hash_to_block_.contains(h)) continue;
    b.cached = true;
    b.hash = h;
    b.tokens.assign(start, start + block_size_);
    hash_to_block_.emplace(h, table->block_ids[i]);
  }
}

void BlockManager::Free(BlockTable* table) {
  for (auto it = table->block_ids.rbegin(); it != table->block_ids.rend();
       ++it) {
    Block& b = blocks_[*it];
    if (--b.ref_count > 0) continue;
    // Uncached blocks hold nothing worth keeping: reuse them first.
    if (b.cached) {
      PushBack(*it);
    } else {
      PushFront(*it);
    }
  }
  table->block_ids.clear();
  table->block_hashes.clear();
}

}  // namespace tpserve::router
