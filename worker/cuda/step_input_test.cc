// StepInput without a GPU: after every step a simulated device table, patched
// only with block_edits(), must equal every row's block table, and the step
// arrays must equal a from-scratch layout of the rows.
#include "worker/cuda/step_input.h"

#include <map>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker::cuda {
namespace {

constexpr int kBlockSize = 4;

struct Seq {
  std::vector<int32_t> tokens, blocks;
  int computed = 0;
  SamplingParams params;
};

// A device table that sees nothing but the edits.
struct DeviceTable {
  explicit DeviceTable(const StepInput& in, int rows) : cells(rows * in.max_blocks(), -7) {}
  void Apply(StepInput& in) {
    const std::vector<int>& e = in.block_edits();
    for (size_t i = 0; i < e.size(); i += 2) cells[e[i]] = e[i + 1];
    in.ClearBlockEdits();
  }
  std::vector<int> cells;
};

SeqStep StepOf(uint64_t id, const Seq& s, int n) {
  SeqStep st;
  st.seq_id = id;
  st.token_ids = s.tokens;
  st.num_computed_tokens = s.computed;
  st.num_scheduled_tokens = n;
  st.block_table = s.blocks;
  st.sample = s.computed + n == static_cast<int>(s.tokens.size());
  st.sampling = &s.params;
  return st;
}

void ExpectMatches(const StepInput& in, const DeviceTable& dev, const StepBatch& batch) {
  ASSERT_EQ(in.num_rows(), static_cast<int>(batch.seqs.size()));
  std::set<uint64_t> want, got;
  for (const SeqStep& s : batch.seqs) want.insert(s.seq_id);
  std::vector<int> tokens, positions, slots, samples;
  for (int r = 0; r < in.num_rows(); ++r) {
    const SeqStep& s = in.row(r);
    got.insert(s.seq_id);
    for (size_t i = 0; i < s.block_table.size(); ++i) {
      ASSERT_EQ(dev.cells[r * in.max_blocks() + i], s.block_table[i]) << "row " << r << " block " << i;
    }
    EXPECT_EQ(in.q_start()[r], static_cast<int>(tokens.size()));
    EXPECT_EQ(in.q_len()[r], s.num_scheduled_tokens);
    EXPECT_EQ(in.context_lens()[r], s.num_computed_tokens + s.num_scheduled_tokens);
    for (int p = s.num_computed_tokens; p < s.num_computed_tokens + s.num_scheduled_tokens; ++p) {
      tokens.push_back(s.token_ids[p]);
      positions.push_back(p);
      slots.push_back(s.block_table[p / kBlockSize] * kBlockSize + p % kBlockSize);
    }
    if (s.sample) samples.push_back(static_cast<int>(tokens.size()) - 1);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(in.tokens(), tokens);
  EXPECT_EQ(in.positions(), positions);
  EXPECT_EQ(in.slots(), slots);
  EXPECT_EQ(in.sample_rows(), samples);
  ASSERT_EQ(in.sampling().size(), samples.size());
}

TEST(StepInputTest, RandomStepsKeepTheDeviceTableExact) {
  constexpr int kRows = 6, kMaxBlocks = 10;
  std::mt19937 rng(7);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  StepInput in(kRows, kMaxBlocks, 64, kBlockSize);
  DeviceTable dev(in, kRows);
  std::map<uint64_t, Seq> live;
  uint64_t next_id = 1;
  int32_t next_block = 0;
  for (int step = 0; step < 2000; ++step) {
    // Arrivals, departures, and now and then a sequence whose table is
    // replaced under the same id (what a careless caller could send).
    while (static_cast<int>(live.size()) < kRows && uniform(0, 2) == 0) {
      Seq s;
      for (int i = 0, n = uniform(1, 12); i < n; ++i) s.tokens.push_back(uniform(0, 99));
      live[next_id++] = s;
    }
    if (!live.empty() && uniform(0, 4) == 0) live.erase(std::next(live.begin(), uniform(0, live.size() - 1)));
    if (!live.empty() && uniform(0, 30) == 0) {
      Seq& s = std::next(live.begin(), uniform(0, live.size() - 1))->second;
      s.blocks.clear();
      s.computed = 0;
    }
    StepBatch batch;
    std::vector<std::pair<uint64_t, int>> scheduled;
    for (auto& [id, s] : live) {
      if (uniform(0, 5) == 0) continue;  // not in this step
      if (s.computed == static_cast<int>(s.tokens.size())) s.tokens.push_back(uniform(0, 99));
      const int left = static_cast<int>(s.tokens.size()) - s.computed;
      const int n = std::min(left, uniform(1, 6));
      const int end = s.computed + n;
      if ((end + kBlockSize - 1) / kBlockSize > kMaxBlocks) continue;
      while (static_cast<int>(s.blocks.size()) * kBlockSize < end) s.blocks.push_back(next_block++ % 1000);
      scheduled.emplace_back(id, n);
    }
    // The batch order is shuffled: rows must not depend on it.
    std::shuffle(scheduled.begin(), scheduled.end(), rng);
    for (auto& [id, n] : scheduled) batch.seqs.push_back(StepOf(id, live[id], n));
    ASSERT_TRUE(in.Update(batch).ok());
    dev.Apply(in);
    ExpectMatches(in, dev, batch);
    for (auto& [id, n] : scheduled) live[id].computed += n;
    // Fully computed sequences start over (new prompt, same id kept off).
    for (auto it = live.begin(); it != live.end();) {
      it = static_cast<int>(it->second.tokens.size()) >= kMaxBlocks * kBlockSize - 4 ? live.erase(it) : std::next(it);
    }
  }
}

TEST(StepInputTest, SteadyDecodeSendsOnlyNewBlocksAndKeepsRows) {
  StepInput in(4, 8, 64, kBlockSize);
  std::vector<Seq> seqs(3);
  for (int i = 0; i < 3; ++i) {
    seqs[i].tokens = {1, 2, 3};
    seqs[i].blocks = {10 * i};
  }
  auto step = [&](std::vector<int> order) {
    StepBatch b;
    for (int i : order) b.seqs.push_back(StepOf(i + 1, seqs[i], static_cast<int>(seqs[i].tokens.size()) - seqs[i].computed));
    EXPECT_TRUE(in.Update(b).ok());
    for (int i : order) seqs[i].computed = static_cast<int>(seqs[i].tokens.size());
  };
  step({0, 1, 2});
  EXPECT_EQ(in.block_edits().size(), 6u);  // three rows, one block each
  in.ClearBlockEdits();
  std::vector<uint64_t> rows = {in.row(0).seq_id, in.row(1).seq_id, in.row(2).seq_id};
  // Decode: one token each; sequence 2 crosses into a second block.
  for (auto& s : seqs) s.tokens.push_back(5);
  seqs[1].tokens.push_back(6);
  seqs[1].blocks.push_back(11);
  step({2, 0, 1});  // another batch order: the rows stay
  EXPECT_EQ((std::vector<uint64_t>{in.row(0).seq_id, in.row(1).seq_id, in.row(2).seq_id}), rows);
  EXPECT_EQ(in.block_edits(), (std::vector<int>{1 * 8 + 1, 11}));
  EXPECT_TRUE(in.decode() == false);  // sequence 2 computes two tokens
  in.ClearBlockEdits();
  // Sequence 1 leaves: the last row moves into its place (whole row sent).
  for (auto& s : seqs) s.tokens.push_back(7);
  step({1, 2});
  EXPECT_EQ(in.num_rows(), 2);
  EXPECT_EQ(in.row(0).seq_id, 3u);
  EXPECT_EQ(in.row(1).seq_id, 2u);
  EXPECT_EQ(in.block_edits(), (std::vector<int>{0, 20}));
  EXPECT_TRUE(in.decode());
  in.PadDecodeRows(4);
  EXPECT_EQ(in.q_start(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(in.slots().back(), -1);
  EXPECT_EQ(in.context_lens().back(), 0);
  EXPECT_EQ(in.sample_rows().size(), 4u);
  EXPECT_EQ(in.sampling().size(), 2u);
}

TEST(StepInputTest, CapacityIsChecked) {
  StepInput in(2, 2, 8, kBlockSize);
  Seq a, b, c;
  a.tokens = b.tokens = c.tokens = {1, 2, 3};
  a.blocks = b.blocks = c.blocks = {0};
  StepBatch three;
  three.seqs = {StepOf(1, a, 3), StepOf(2, b, 3), StepOf(3, c, 3)};
  EXPECT_EQ(in.Update(three).code(), absl::StatusCode::kInvalidArgument);
  Seq big;
  big.tokens = std::vector<int32_t>(12, 1);
  big.blocks = {0, 1, 2};
  StepBatch wide;
  wide.seqs = {StepOf(1, big, 4)};
  EXPECT_EQ(in.Update(wide).code(), absl::StatusCode::kInvalidArgument);
  StepBatch many;
  a.tokens = std::vector<int32_t>(8, 1);
  a.blocks = {0, 1};
  b.tokens = {1};
  many.seqs = {StepOf(1, a, 8), StepOf(2, b, 1)};
  EXPECT_EQ(in.Update(many).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tpserve::worker::cuda
