#include "worker/cuda/block_table.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;

TEST(BlockTableTest, EditsLandAndNothingElseMoves) {
  TP_SKIP_WITHOUT_GPU();
  const int cells = 5000;
  std::vector<int> table(cells);
  for (int i = 0; i < cells; ++i) table[i] = -i;
  // More edits than one thread block, in no particular order.
  std::mt19937 rng(1);
  std::vector<int> edits;
  std::vector<int> want = table;
  for (int i = 0; i < 700; ++i) {
    const int at = static_cast<int>(rng() % cells);
    if (want[at] >= 0) continue;  // each cell once: the order of writes is unspecified
    want[at] = static_cast<int>(rng() % 100000);
    edits.push_back(at);
    edits.push_back(want[at]);
  }
  DevArray<int> dtable(table), dedits(edits);
  ASSERT_TRUE(ApplyBlockTableEdits(dedits.get(), static_cast<int>(edits.size() / 2), dtable.get(), nullptr).ok());
  EXPECT_EQ(dtable.Download(), want);
  ASSERT_TRUE(ApplyBlockTableEdits(nullptr, 0, dtable.get(), nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
