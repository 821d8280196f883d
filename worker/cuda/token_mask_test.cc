#include "worker/cuda/token_mask.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;

TEST(MaskedCopyTest, KeepsAllowedLogitsAndSetsTheRestToMinusInfinity) {
  TP_SKIP_WITHOUT_GPU();
  // 1000 is not a multiple of 32: the last word is partial. The second
  // row's words are one short, so its last 8 tokens have no bit at all.
  const int vocab = 1000, rows = 5, words_per_row = 32;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& x : logits) x = nd(rng);
  const std::vector<int> masked = {3, 1};  // row 0, 2 and 4 untouched
  std::vector<uint32_t> words(masked.size() * words_per_row);
  for (uint32_t& w : words) w = rng();
  DevArray<float> dl(logits), out(logits.size());  // out starts as NaN
  DevArray<uint32_t> dw(words);
  DevArray<int> dr(masked);
  ASSERT_TRUE(MaskedCopy(dl.get(), dw.get(), dr.get(), masked.size(), vocab, words_per_row - 1, out.get(),
                         nullptr)
                  .ok());
  const auto got = out.Download();
  for (size_t j = 0; j < masked.size(); ++j) {
    const int r = masked[j];
    for (int t = 0; t < vocab; ++t) {
      const size_t i = static_cast<size_t>(r) * vocab + t;
      // words_per_row - 1 words a row were passed: row j starts at j * 31.
      const int word = t / 32;
      const bool allowed = word < words_per_row - 1 &&
                           ((words[j * (words_per_row - 1) + word] >> (t % 32)) & 1u);
      if (allowed) {
        ASSERT_EQ(got[i], logits[i]) << "row " << r << " token " << t;
      } else {
        ASSERT_EQ(got[i], -INFINITY) << "row " << r << " token " << t;
      }
    }
  }
  for (int r : {0, 2, 4}) {
    for (int t = 0; t < vocab; ++t) ASSERT_TRUE(std::isnan(got[static_cast<size_t>(r) * vocab + t])) << r;
  }
}

TEST(MaskedCopyTest, RejectsBadSizesAndAcceptsNoRows) {
  EXPECT_FALSE(MaskedCopy(nullptr, nullptr, nullptr, 1, 0, 1, nullptr, nullptr).ok());
  EXPECT_FALSE(MaskedCopy(nullptr, nullptr, nullptr, -1, 10, 1, nullptr, nullptr).ok());
  EXPECT_TRUE(MaskedCopy(nullptr, nullptr, nullptr, 0, 10, 1, nullptr, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
