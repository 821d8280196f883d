// The CUDA sampler's structured-output restrictions (token masks,
// allowed_token_ids, bad_words, logit_bias) against the CPU sampler, which
// defines them.
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/sampler.h"
#include "worker/cuda/test_util.h"
#include "worker/model/sampler.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;

constexpr int kEos = 2;

// One sequence of a test batch: its parameters, history and mask.
struct Row {
  SamplingParams params;
  std::vector<int32_t> history;
  std::vector<uint32_t> mask;  // empty: no grammar
};

std::vector<uint32_t> MaskOf(int vocab, const std::vector<int>& allowed) {
  std::vector<uint32_t> m((vocab + 31) / 32, 0u);
  for (int t : allowed) m[t / 32] |= 1u << (t % 32);
  return m;
}

bool Allowed(const std::vector<uint32_t>& m, int t) { return (m[t / 32] >> (t % 32)) & 1u; }

// GPU tokens for `rows` over `logits` [rows][vocab].
std::vector<int> GpuTokens(const std::vector<float>& logits, std::vector<Row>& rows, int vocab) {
  std::vector<SeqStep> steps(rows.size());
  std::vector<const SeqStep*> ptrs;
  for (size_t r = 0; r < rows.size(); ++r) {
    steps[r].seq_id = r;
    steps[r].token_ids = rows[r].history;
    steps[r].num_prompt_tokens = 4;
    steps[r].sampling = &rows[r].params;
    steps[r].allowed_mask = rows[r].mask;
    ptrs.push_back(&steps[r]);
  }
  auto sampler = Sampler::Create(vocab, static_cast<int>(rows.size()), {kEos});
  EXPECT_TRUE(sampler.ok()) << sampler.status();
  DevArray<float> dl(logits);
  auto got = (*sampler)->Sample(dl.get(), ptrs, nullptr);
  EXPECT_TRUE(got.ok()) << got.status();
  std::vector<int> tokens;
  for (const SampleResult& r : *got) tokens.push_back(r.token_id);
  return tokens;
}

int CpuToken(const std::vector<float>& logits, const Row& row, int r, int vocab) {
  const std::vector<int> eos = {kEos};
  SamplingInput in{std::span<const float>(logits).subspan(static_cast<size_t>(r) * vocab, vocab), &row.params,
                   row.history, 4, eos, row.mask};
  auto got = SampleNext(in);
  EXPECT_TRUE(got.ok()) << got.status();
  return got->token_id;
}

TEST(SamplerMaskTest, GreedyRestrictedRowsPickWhatTheCpuSamplerPicks) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 5003, n = 48;  // a partial last word; three chunks
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(n) * vocab);
  for (float& x : logits) x = nd(rng);
  std::vector<Row> rows(n);
  for (int r = 0; r < n; ++r) {
    Row& row = rows[r];
    for (int i = 0; i < 12; ++i) row.history.push_back(rng() % vocab);
    std::vector<int> allowed;
    for (int t = 0; t < vocab; ++t) {
      if (rng() % 10 == 0) allowed.push_back(t);
    }
    // Rows cycle through the restrictions and their combinations.
    switch (r % 8) {
      case 0: row.mask = MaskOf(vocab, allowed); break;
      case 1: row.params.allowed_token_ids = {5, 17, 900, 5002, -3, vocab + 4}; break;
      case 2: row.params.logit_bias = {{static_cast<int32_t>(rng() % vocab), 100.0f}, {3, -100.0f}}; break;
      case 3:
        row.mask = MaskOf(vocab, allowed);
        row.params.allowed_token_ids.assign(allowed.begin(), allowed.begin() + 5);
        // An id the grammar refuses stays refused.
        for (int t = 0; t < vocab; ++t) {
          if (!Allowed(row.mask, t)) {
            row.params.allowed_token_ids.push_back(t);
            logits[static_cast<size_t>(r) * vocab + t] = 40.0f;
            break;
          }
        }
        row.params.logit_bias = {{allowed[2], 8.0f}, {allowed[2], 3.0f}, {allowed[4], -50.0f}};
        break;
      case 4:  // penalties on top of a mask; a biased token that was seen
        row.mask = MaskOf(vocab, allowed);
        row.params.repetition_penalty = 1.7f;
        row.params.frequency_penalty = 0.6f;
        row.params.presence_penalty = 0.3f;
        for (int i = 0; i < 6; ++i) row.history.push_back(allowed[i % 3]);
        row.params.logit_bias = {{allowed[0], 5.0f}};
        break;
      case 5:  // min_tokens masks EOS, which the grammar also allows
        allowed.push_back(kEos);
        row.mask = MaskOf(vocab, allowed);
        row.params.min_tokens = 100;
        logits[static_cast<size_t>(r) * vocab + kEos] = 50.0f;
        break;
      case 6:  // a complete grammar allows only EOS: min_tokens yields
        row.mask = MaskOf(vocab, {kEos});
        row.params.min_tokens = 100;
        row.params.stop_token_ids = {7};
        break;
      case 7: break;  // free text beside restricted rows
    }
  }
  const std::vector<int> got = GpuTokens(logits, rows, vocab);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(got[r], CpuToken(logits, rows[r], r, vocab)) << "row " << r << " case " << r % 8;
    if (!rows[r].mask.empty()) {
      EXPECT_TRUE(Allowed(rows[r].mask, got[r])) << "row " << r;
    }
  }
  EXPECT_EQ(got[6], kEos);
  EXPECT_NE(got[5], kEos);
}

TEST(SamplerMaskTest, RandomDrawsNeverPickAMaskedToken) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 4096, n = 64, rounds = 8;
  std::mt19937 rng(22);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::set<int> drawn;
  for (int round = 0; round < rounds; ++round) {
    std::vector<float> logits(static_cast<size_t>(n) * vocab);
    for (float& x : logits) x = nd(rng);
    std::vector<Row> rows(n);
    for (int r = 0; r < n; ++r) {
      Row& row = rows[r];
      row.history = {1, 2, 3, 4};
      row.params.seed = round * 1000 + r;
      row.params.temperature = 1.5f;
      if (r % 4 == 1) row.params.top_k = 3;
      if (r % 4 == 2) row.params.top_p = 0.9f;
      if (r % 4 == 3) row.params.min_p = 0.05f;
      // 20 allowed tokens; the masked ones carry the largest logits.
      std::vector<int> allowed;
      for (int i = 0; i < 20; ++i) allowed.push_back((r * 131 + i * 197) % vocab);
      row.mask = MaskOf(vocab, allowed);
      for (int t = 0; t < vocab; ++t) {
        if (!Allowed(row.mask, t) && t % 7 == 0) logits[static_cast<size_t>(r) * vocab + t] = 30.0f;
      }
    }
    const std::vector<int> got = GpuTokens(logits, rows, vocab);
    ASSERT_EQ(got.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(Allowed(rows[r].mask, got[r])) << "round " << round << " row " << r << " drew " << got[r];
      drawn.insert(got[r]);
    }
  }
  // Draws are spread over many allowed tokens, not stuck on one.
  EXPECT_GT(drawn.size(), 100u);
}

TEST(SamplerMaskTest, BiasAndAllowedIdsDecideGreedyTokens) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 100;
  std::vector<float> logits(3 * vocab, 0.0f);
  for (int r = 0; r < 3; ++r) logits[r * vocab + 10] = 5.0f;  // the free argmax
  std::vector<Row> rows(3);
  for (Row& row : rows) row.history = {1, 2, 3, 4};
  rows[0].params.logit_bias = {{42, 6.0f}};         // lifts 42 above 10
  rows[1].params.logit_bias = {{10, -100.0f}};      // sinks 10: ties go to id 0
  rows[2].params.allowed_token_ids = {77, 78, 79};  // only these
  rows[2].params.logit_bias = {{79, 0.5f}};
  const std::vector<int> got = GpuTokens(logits, rows, vocab);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], 42);
  EXPECT_EQ(got[1], 0);
  EXPECT_EQ(got[2], 79);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(got[r], CpuToken(logits, rows[r], r, vocab));
}

TEST(SamplerMaskTest, BadWordsBanWhatTheCpuSamplerBans) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 100;
  std::vector<float> logits(5 * vocab, 0.0f);
  for (int r = 0; r < 5; ++r) {
    logits[r * vocab + 10] = 5.0f;  // the free argmax
    logits[r * vocab + 11] = 4.0f;  // the runner-up
  }
  std::vector<Row> rows(5);
  for (Row& row : rows) row.history = {1, 2, 3, 4, 60, 61};  // outputs: 60, 61
  rows[0].params.bad_words = {{10}};                  // one token: always banned
  rows[1].params.bad_words = {{60, 61, 10}};          // the outputs end with its prefix
  rows[2].params.bad_words = {{3, 4, 10}, {61, 60, 10}};  // prompt tokens never count
  rows[3].mask = MaskOf(vocab, {10, 12});              // the grammar's argmax banned
  rows[3].params.bad_words = {{10}};
  rows[4].mask = MaskOf(vocab, {10});                 // nothing else: the grammar wins
  rows[4].params.bad_words = {{10}};
  const std::vector<int> got = GpuTokens(logits, rows, vocab);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got, (std::vector<int>{11, 11, 10, 12, 10}));
  for (int r = 0; r < 5; ++r) EXPECT_EQ(got[r], CpuToken(logits, rows[r], r, vocab)) << r;
}

}  // namespace
}  // namespace tpserve::worker::cuda
