#include "worker/backend/bad_words.h"

#include <gtest/gtest.h>

#include <vector>

namespace tpserve::worker {
namespace {

using Ids = std::vector<int32_t>;

Ids Banned(const std::vector<Ids>& words, const Ids& output) {
  Ids banned = {999};  // stale content must be replaced
  BannedTokenIds(words, output, &banned);
  return banned;
}

TEST(BannedTokenIdsTest, SingleTokenWordsAreBannedAtEveryStep) {
  const std::vector<Ids> words = {{7}, {3}};
  EXPECT_EQ(Banned(words, {}), (Ids{3, 7}));  // the first generated token too
  EXPECT_EQ(Banned(words, {1, 2, 7}), (Ids{3, 7}));
}

TEST(BannedTokenIdsTest, LongerWordsBanTheirLastTokenAfterTheirPrefix) {
  const std::vector<Ids> words = {{10, 11, 12}};
  EXPECT_EQ(Banned(words, {5, 10, 11}), (Ids{12}));
  EXPECT_EQ(Banned(words, {10, 11}), (Ids{12}));  // the prefix is all there is
  EXPECT_EQ(Banned(words, {10, 11, 5}), Ids{});  // the prefix is not at the end
  EXPECT_EQ(Banned(words, {11, 10}), Ids{});
  EXPECT_EQ(Banned(words, {11}), Ids{});    // only part of the prefix
  EXPECT_EQ(Banned(words, {}), Ids{});
  EXPECT_EQ(Banned(words, {10, 11, 12, 10, 11}), (Ids{12}));  // again, later
}

TEST(BannedTokenIdsTest, BothTokenizationsOfAWord) {
  // "New York" as written [10, 11] and with a leading space [20, 11]; "hi"
  // as [30] and " hi" as [31].
  const std::vector<Ids> words = {{10, 11}, {20, 11}, {30}, {31}};
  EXPECT_EQ(Banned(words, {1, 10}), (Ids{11, 30, 31}));
  EXPECT_EQ(Banned(words, {1, 20}), (Ids{11, 30, 31}));
  EXPECT_EQ(Banned(words, {1, 21}), (Ids{30, 31}));
  // Two words sharing a last token ban it once.
  EXPECT_EQ(Banned({{5, 11}, {6, 5, 11}}, {6, 5}), (Ids{11}));
}

TEST(BanInMaskTest, ClearsBannedBitsAndKeepsTheRest) {
  std::vector<uint32_t> words = {0b1011u, 1u};
  EXPECT_TRUE(BanInMask(words, 64, Ids{1, 32, 40, -1, 500}));
  EXPECT_EQ(words, (std::vector<uint32_t>{0b1001u, 0u}));
}

TEST(BanInMaskTest, YieldsWhenNothingWouldBeLeft) {
  // A grammar allowing only ids 3 and 33, both banned: the mask stays.
  std::vector<uint32_t> words = {1u << 3, 1u << 1};
  EXPECT_FALSE(BanInMask(words, 64, Ids{3, 33}));
  EXPECT_EQ(words, (std::vector<uint32_t>{1u << 3, 1u << 1}));
  // Bits past the vocabulary do not count as something left.
  words = {1u << 3, ~0u << 2};  // vocab 34: ids 32 and 33 are bits 0 and 1
  EXPECT_FALSE(BanInMask(words, 34, Ids{3}));
  EXPECT_EQ(words[0], 1u << 3);
  EXPECT_TRUE(BanInMask(words, 64, Ids{3}));
  EXPECT_EQ(words[0], 0u);
}

}  // namespace
}  // namespace tpserve::worker
