#include "worker/cuda/sampler.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;

// The sampling rule of sampling.h, written plainly on the CPU.
int ReferenceSample(std::vector<float> y, const SeqStep& s, const std::vector<int>& eos) {
  const SamplingParams& p = *s.sampling;
  const int vocab = static_cast<int>(y.size());
  const int outputs = static_cast<int>(s.token_ids.size()) - s.num_prompt_tokens;
  std::map<int, int> counts;
  for (size_t i = 0; i < s.token_ids.size(); ++i) counts[s.token_ids[i]] += static_cast<int>(i) >= s.num_prompt_tokens;
  if (p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (auto [t, c] : counts) {
      float v = y[t];
      if (p.repetition_penalty != 1.0f) v = v > 0 ? v / p.repetition_penalty : v * p.repetition_penalty;
      y[t] = v - p.frequency_penalty * c - (c > 0 ? p.presence_penalty : 0.0f);
    }
  }
  if (outputs < p.min_tokens) {
    for (int t : eos) y[t] = -INFINITY;
    for (int t : p.stop_token_ids) y[t] = -INFINITY;
  }
  const int best = static_cast<int>(std::max_element(y.begin(), y.end()) - y.begin());
  if (p.temperature <= 0) return best;
  std::vector<float> k(vocab);
  for (int i = 0; i < vocab; ++i) k[i] = std::exp((y[i] - y[best]) / p.temperature);
  std::vector<int> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return k[a] > k[b]; });
  int n = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
  n = std::max<int>(1, std::count_if(ids.begin(), ids.begin() + n, [&](int i) { return k[i] > 0; }));
  if (p.top_p > 0 && p.top_p < 1) {
    double mass = 0, c = 0;
    for (int i = 0; i < n; ++i) mass += k[ids[i]];
    for (int i = 0; i < n; ++i) {
      c += k[ids[i]];
      if (c >= p.top_p * mass) {
        n = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0) {
    n = std::max<int>(1, std::count_if(ids.begin(), ids.begin() + n, [&](int i) { return k[i] >= p.min_p * k[ids[0]]; }));
  }
  double total = 0, c = 0;
  for (int i = 0; i < n; ++i) total += k[ids[i]];
  const double target = SampleUniform(p.seed, outputs) * total;
  for (int i = 0; i < n; ++i) {
    c += k[ids[i]];
    if (c > target) return ids[i];
  }
  return ids[n - 1];
}

TEST(SamplerTest, MatchesCpuRuleAndReturnsRawLogprobs) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 3000, rows = 40;  // more rows than one chunk
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (auto& x : logits) x = nd(rng);
  std::vector<SamplingParams> params(rows);
  std::vector<std::vector<int32_t>> history(rows);
  std::vector<SeqStep> steps(rows);
  for (int r = 0; r < rows; ++r) {
    SamplingParams& p = params[r];
    p.seed = 1000 + r;
    switch (r % 8) {
      case 0: break;  // greedy
      case 1: p.temperature = 0.7f; break;
      case 2: p.temperature = 1.0f; p.top_k = 5; break;
      case 3: p.temperature = 1.3f; p.top_p = 0.8f; break;
      case 4: p.temperature = 0.9f; p.min_p = 0.2f; p.top_k = 50; p.top_p = 0.95f; break;
      case 5: p.temperature = 1.0f; p.repetition_penalty = 1.3f; p.frequency_penalty = 0.5f; p.presence_penalty = 0.4f; break;
      case 6: p.repetition_penalty = 2.0f; p.min_tokens = 5; p.stop_token_ids = {7, 8}; break;  // greedy + penalties
      case 7: p.temperature = 2.0f; p.min_tokens = 3; break;
    }
    p.logprobs = r % 3 == 0;
    p.top_logprobs = r % 6 == 0 ? 4 : 0;
    for (int i = 0; i < 10 + r; ++i) history[r].push_back((r * 37 + i * 11) % vocab);
    // Make the masked ids the argmax, so the mask matters.
    for (int t : {1, 7, 8}) logits[static_cast<size_t>(r) * vocab + t] = 20.0f;
    steps[r].seq_id = 500 + r;
    steps[r].token_ids = history[r];
    steps[r].num_prompt_tokens = 8;
    steps[r].sampling = &params[r];
  }
  std::vector<const SeqStep*> ptrs;
  for (auto& s : steps) ptrs.push_back(&s);
  auto sampler = Sampler::Create(vocab, 64, {1});
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  DevArray<float> dl(logits);
  auto got = (*sampler)->Sample(dl.get(), ptrs, nullptr);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), rows);
  for (int r = 0; r < rows; ++r) {
    std::vector<float> row(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    EXPECT_EQ((*got)[r].seq_id, 500u + r);
    EXPECT_EQ((*got)[r].token_id, ReferenceSample(row, steps[r], {1})) << "row " << r;
    double mx = *std::max_element(row.begin(), row.end()), sum = 0;
    for (float x : row) sum += std::exp(x - mx);
    const double lse = mx + std::log(sum);
    EXPECT_EQ((*got)[r].has_logprobs, params[r].logprobs);
    if (params[r].logprobs) {
      EXPECT_NEAR((*got)[r].logprob, row[(*got)[r].token_id] - lse, 1e-3);
      ASSERT_EQ((*got)[r].top_logprobs.size(), static_cast<size_t>(params[r].top_logprobs));
      std::vector<int> ids(vocab);
      std::iota(ids.begin(), ids.end(), 0);
      std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return row[a] > row[b]; });
      for (int i = 0; i < params[r].top_logprobs; ++i) {
        EXPECT_EQ((*got)[r].top_logprobs[i].first, ids[i]);
        EXPECT_NEAR((*got)[r].top_logprobs[i].second, row[ids[i]] - lse, 1e-3);
      }
    }
  }
}

// A Qwen-sized vocabulary with few rows: each row's vocabulary is split over
// many blocks (SamplePrepareParts), so the argmax, its ties, the edits and
// the lse must come out the same across slice boundaries.
TEST(SamplerTest, LargeVocabularyIsSplitAcrossBlocks) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 151936, rows = 4;
  ASSERT_GT(SamplePrepareParts(rows, vocab), 8);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (auto& x : logits) x = nd(rng);
  std::vector<SamplingParams> params(rows);
  std::vector<SeqStep> steps(rows);
  // Row 0: a tie between ids in different slices goes to the lower id.
  logits[5000] = logits[120000] = 30.0f;
  // Row 1: the top two are in the history, so the penalty moves the choice.
  logits[vocab + 150000] = 25.0f;
  logits[vocab + 2] = 24.0f;
  logits[vocab + 77777] = 23.0f;
  params[1].repetition_penalty = 2.0f;
  // Row 2: min_tokens masks EOS (id 1), the argmax, in the first slice.
  logits[2 * vocab + 1] = 40.0f;
  logits[2 * vocab + 100001] = 35.0f;
  params[2].min_tokens = 4;
  // Row 3: sampling over the whole vocabulary.
  params[3].temperature = 0.8f;
  params[3].top_k = 40;
  params[3].seed = 77;
  // SeqStep::token_ids is a span: the histories must outlive the steps.
  const std::vector<int32_t> penalized = {150000, 2, 9}, plain = {3, 4, 9};
  for (int r = 0; r < rows; ++r) {
    params[r].logprobs = true;
    steps[r].seq_id = 10 + r;
    steps[r].token_ids = r == 1 ? penalized : plain;
    steps[r].num_prompt_tokens = 2;
    steps[r].sampling = &params[r];
  }
  std::vector<const SeqStep*> ptrs;
  for (auto& st : steps) ptrs.push_back(&st);
  auto sampler = Sampler::Create(vocab, 8, {1});
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  DevArray<float> dl(logits);
  auto got = (*sampler)->Sample(dl.get(), ptrs, nullptr);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), static_cast<size_t>(rows));
  EXPECT_EQ((*got)[0].token_id, 5000);
  EXPECT_EQ((*got)[1].token_id, 77777);
  EXPECT_EQ((*got)[2].token_id, 100001);
  for (int r = 0; r < rows; ++r) {
    std::vector<float> row(logits.begin() + static_cast<size_t>(r) * vocab,
                           logits.begin() + static_cast<size_t>(r + 1) * vocab);
    EXPECT_EQ((*got)[r].token_id, ReferenceSample(row, steps[r], {1})) << "row " << r;
    double mx = *std::max_element(row.begin(), row.end()), sum = 0;
    for (float x : row) sum += std::exp(x - mx);
    EXPECT_NEAR((*got)[r].logprob, row[(*got)[r].token_id] - (mx + std::log(sum)), 1e-3) << "row " << r;
  }
}

TEST(SamplerTest, SameSeedAndIndexGiveSameTokenInAnyBatch) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 1000;
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(vocab);
  for (auto& x : row) x = nd(rng);
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 77;
  std::vector<int32_t> hist = {1, 2, 3};
  SeqStep s;
  s.token_ids = hist;
  s.num_prompt_tokens = 3;
  s.sampling = &p;
  auto sampler = Sampler::Create(vocab, 8, {});
  ASSERT_TRUE(sampler.ok());
  std::vector<float> three;
  for (int i = 0; i < 3; ++i) three.insert(three.end(), row.begin(), row.end());
  DevArray<float> d1(row), d3(three);
  auto a = (*sampler)->Sample(d1.get(), {&s}, nullptr);
  auto b = (*sampler)->Sample(d3.get(), {&s, &s, &s}, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*b)[i].token_id, (*a)[0].token_id);
}

TEST(SamplerTest, RejectsTooManyRowsAndMissingParams) {
  TP_SKIP_WITHOUT_GPU();
  auto sampler = Sampler::Create(10, 1, {});
  ASSERT_TRUE(sampler.ok());
  SeqStep s;
  EXPECT_FALSE((*sampler)->Sample(nullptr, {&s}, nullptr).ok());
  EXPECT_FALSE((*sampler)->Sample(nullptr, {&s, &s}, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
