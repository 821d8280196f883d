#include "router/block_manager.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::router {
namespace {

std::vector<int32_t> Range(int begin, int end) {
  std::vector<int32_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// Allocation sizes against a 10-block pool of 4-token blocks.
TEST(BlockManagerTest, AllocateTable) {
  struct Case {
    const char* name;
    int num_positions;
    bool fits;
    int blocks;
  };
  const Case cases[] = {
      {"one token", 1, true, 1},
      {"exactly one block", 4, true, 1},
      {"one past a block", 5, true, 2},
      {"whole pool", 40, true, 10},
      {"one past the pool", 41, false, 0},
  };
  for (const Case& c : cases) {
    BlockManager bm(10, 4, true);
    const std::vector<int32_t> tokens = Range(0, c.num_positions);
    BlockTable table;
    EXPECT_EQ(bm.CanAllocate({}, c.num_positions), c.fits) << c.name;
    auto cached = bm.Allocate(tokens, {}, c.num_positions, &table);
    EXPECT_EQ(cached.has_value(), c.fits) << c.name;
    EXPECT_EQ(static_cast<int>(table.block_ids.size()), c.blocks) << c.name;
    EXPECT_EQ(bm.num_free_blocks(), 10 - c.blocks) << c.name;
    bm.Free(&table);
    EXPECT_EQ(bm.num_free_blocks(), 10) << c.name;
  }
}

TEST(BlockManagerTest, AppendGrowsOnlyAtBlockBoundaries) {
  BlockManager bm(3, 4, true);
  BlockTable table;
  ASSERT_TRUE(bm.Allocate(Range(0, 3), {}, 3, &table).has_value());
  EXPECT_EQ(table.block_ids.size(), 1u);
  EXPECT_TRUE(bm.Append(4, &table));
  EXPECT_EQ(table.block_ids.size(), 1u);
  EXPECT_TRUE(bm.Append(5, &table));
  EXPECT_EQ(table.block_ids.size(), 2u);
  EXPECT_TRUE(bm.Append(12, &table));
  EXPECT_EQ(bm.num_free_blocks(), 0);
  EXPECT_FALSE(bm.CanAppend(table, 13));
  EXPECT_FALSE(bm.Append(13, &table));
  EXPECT_EQ(table.block_ids.size(), 3u);  // Unchanged on failure.
  bm.Free(&table);
  EXPECT_EQ(bm.num_free_blocks(), 3);
}

TEST(BlockManagerTest, PrefixHitSharesBlocksAndLeavesLastTokenToCompute) {
  BlockManager bm(8, 4, true);
  const std::vector<int32_t> prompt = Range(100, 110);  // 2 full blocks + 2.
  BlockTable a;
  ASSERT_EQ(bm.Allocate(prompt, {}, 10, &a), 0);
  // Nothing is shared before the step that computes the blocks succeeded.
  EXPECT_TRUE(bm.FindCachedPrefix(prompt).empty());
  bm.Commit(prompt, 10, &a);
  EXPECT_EQ(bm.num_cached_blocks(), 2);

  struct Case {
    const char* name;
    std::vector<int32_t> tokens;
    size_t hits;
  };
  std::vector<int32_t> diverge_in_second = prompt;
  diverge_in_second[5] = 7;
  std::vector<int32_t> diverge_in_first = prompt;
  diverge_in_first[0] = 7;
  const Case cases[] = {
      {"same prompt", prompt, 2},
      {"exactly two blocks: last token must be computed", Range(100, 108), 1},
      {"two blocks plus one", Range(100, 109), 2},
      {"second block differs", diverge_in_second, 1},
      {"first block differs", diverge_in_first, 0},
      {"shorter than a block", Range(100, 103), 0},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(bm.FindCachedPrefix(c.tokens).size(), c.hits) << c.name;
  }

  const std::vector<int32_t> hits = bm.FindCachedPrefix(prompt);
  BlockTable b;
  ASSERT_EQ(bm.Allocate(prompt, hits, 10, &b), 8);
  EXPECT_EQ(b.block_ids[0], a.block_ids[0]);
  EXPECT_EQ(b.block_ids[1], a.block_ids[1]);
  EXPECT_NE(b.block_ids[2], a.block_ids[2]);
  EXPECT_EQ(bm.ref_count(a.block_ids[0]), 2);
  EXPECT_EQ(bm.num_free_blocks(), 8 - 4);
  bm.Free(&a);
  EXPECT_EQ(bm.ref_count(b.block_ids[0]), 1);
  bm.Free(&b);
  EXPECT_EQ(bm.num_free_blocks(), 8);
  // Freed cached blocks stay reusable.
  EXPECT_EQ(bm.FindCachedPrefix(prompt).size(), 2u);
}

TEST(BlockManagerTest, IdleCachedBlocksCountAsFreeAndAreEvictedLeastRecentFirst) {
  BlockManager bm(4, 2, true);
  const std::vector<int32_t> p1 = {1, 2, 3, 4, 5};  // 2 full blocks.
  BlockTable t1;
  ASSERT_TRUE(bm.Allocate(p1, {}, 5, &t1).has_value());
  bm.Commit(p1, 5, &t1);
  bm.Free(&t1);
  EXPECT_EQ(bm.num_free_blocks(), 4);
  EXPECT_EQ(bm.num_cached_blocks(), 2);

  // The two never-cached blocks are reused first; then p1's tail block
  // (freed first) is evicted before its more shareable head.
  BlockTable t2;
  ASSERT_TRUE(bm.Allocate({9, 9, 9}, {}, 3, &t2).has_value());
  EXPECT_EQ(bm.num_cached_blocks(), 2);
  EXPECT_EQ(bm.num_free_blocks(), 2);
  BlockTable t3;
  ASSERT_TRUE(bm.Allocate({8}, {}, 1, &t3).has_value());
  EXPECT_EQ(bm.num_cached_blocks(), 1);
  EXPECT_EQ(bm.FindCachedPrefix(p1).size(), 1u);
  BlockTable t4;
  ASSERT_TRUE(bm.Allocate({7}, {}, 1, &t4).has_value());
  EXPECT_EQ(bm.num_cached_blocks(), 0);
  EXPECT_TRUE(bm.FindCachedPrefix(p1).empty());
  EXPECT_FALSE(bm.CanAllocate({}, 1));
}

TEST(BlockManagerTest, IdleHitsNeedFreeRoomRefdHitsDoNot) {
  BlockManager bm(3, 2, true);
  const std::vector<int32_t> p = {1, 2, 3, 4, 5};
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(p, {}, 5, &a).has_value());
  bm.Commit(p, 4, &a);
  const std::vector<int32_t> hits = bm.FindCachedPrefix(p);
  ASSERT_EQ(hits.size(), 2u);
  // a holds 3 blocks; its two hits are shared, so only the tail is new and
  // the pool is empty.
  EXPECT_FALSE(bm.CanAllocate(hits, 5));
  EXPECT_TRUE(bm.CanAllocate(hits, 4));
  bm.Free(&a);
  EXPECT_TRUE(bm.CanAllocate(hits, 6));
  EXPECT_FALSE(bm.CanAllocate(hits, 7));
}

TEST(BlockManagerTest, DuplicateContentIsNotCachedTwice) {
  BlockManager bm(4, 2, true);
  const std::vector<int32_t> p = {1, 2, 3};
  BlockTable a, b;
  ASSERT_TRUE(bm.Allocate(p, {}, 3, &a).has_value());
  ASSERT_TRUE(bm.Allocate(p, {}, 3, &b).has_value());
  bm.Commit(p, 3, &a);
  bm.Commit(p, 3, &b);
  EXPECT_EQ(bm.num_cached_blocks(), 1);
  bm.Free(&a);
  bm.Free(&b);
  EXPECT_EQ(bm.num_free_blocks(), 4);
  EXPECT_EQ(bm.FindCachedPrefix(p).size(), 1u);
}

TEST(BlockManagerTest, PrefixCachingDisabled) {
  BlockManager bm(4, 2, false);
  const std::vector<int32_t> p = {1, 2, 3};
  BlockTable a;
  ASSERT_TRUE(bm.Allocate(p, {}, 3, &a).has_value());
  bm.Commit(p, 3, &a);
  EXPECT_EQ(bm.num_cached_blocks(), 0);
  EXPECT_TRUE(bm.FindCachedPrefix(p).empty());
}

TEST(BlockManagerTest, HashChainsOverParent) {
  const int32_t t[] = {5, 6};
  EXPECT_NE(BlockManager::HashBlock(0, t, 2), BlockManager::HashBlock(1, t, 2));
  EXPECT_EQ(BlockManager::HashBlock(3, t, 2), BlockManager::HashBlock(3, t, 2));
  const int32_t u[] = {6, 5};
  EXPECT_NE(BlockManager::HashBlock(0, t, 2), BlockManager::HashBlock(0, u, 2));
}

}  // namespace
}  // namespace tpserve::router
