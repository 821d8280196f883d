#include "worker/model/sampler.h"

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker {
namespace {

// Deterministic pseudo-random logits over a small vocabulary.
std::vector<float> MakeLogits(int vocab, uint64_t salt) {
  std::vector<float> l(vocab);
  for (int i = 0; i < vocab; ++i) l[i] = static_cast<float>(SampleUniform(salt, i) * 8.0 - 4.0);
  return l;
}

std::vector<double> Softmax(const std::vector<float>& l, double temperature = 1.0) {
  double max = -1e30, sum = 0;
  for (float v : l) max = std::max(max, v / temperature);
  std::vector<double> p(l.size());
  for (size_t i = 0; i < l.size(); ++i) sum += p[i] = std::exp(l[i] / temperature - max);
  for (double& v : p) v /= sum;
  return p;
}

SampleResult Sample(const std::vector<float>& logits, const SamplingParams& params,
                    const std::vector<int32_t>& tokens = {1}, int num_prompt = 1,
                    const std::vector<int>& eos = {}) {
  SamplingInput in{logits, &params, tokens, num_prompt, eos};
  auto r = SampleNext(in);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : SampleResult{};
}

TEST(SamplerTest, GreedyIsArgmaxWithLowestIdOnTies) {
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  SamplingParams p;
  EXPECT_EQ(Sample(l, p).token_id, 1);
}

TEST(SamplerTest, NanNeverWins) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  SamplingParams p;
  EXPECT_EQ(Sample({nan, 1.0f, 3.0f, nan}, p).token_id, 2);
  p.presence_penalty = 0.5f;  // the edited-copy path too
  EXPECT_EQ(Sample({nan, 1.0f, 3.0f, nan}, p).token_id, 2);
  p = SamplingParams();
  p.temperature = 1.0f;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    const int32_t t = Sample({nan, 1.0f, 3.0f, nan}, p).token_id;
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
}

TEST(SamplerTest, SeededDeterminismAndSeedMatters) {
  const auto logits = MakeLogits(64, 7);
  SamplingParams p;
  p.temperature = 1.0f;
  std::set<int32_t> across_seeds;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    p.seed = seed;
    const int32_t a = Sample(logits, p).token_id;
    EXPECT_EQ(a, Sample(logits, p).token_id);
    across_seeds.insert(a);
  }
  EXPECT_GT(across_seeds.size(), 3u);  // a fixed token would mean seeds are ignored
  // The output index feeds the draw: same seed, later output, other token
  // somewhere in a few positions.
  p.seed = 3;
  std::set<int32_t> across_positions;
  for (int n = 0; n < 10; ++n) {
    std::vector<int32_t> tokens(1 + n, 5);
    across_positions.insert(Sample(logits, p, tokens, 1).token_id);
  }
  EXPECT_GT(across_positions.size(), 1u);
}

TEST(SamplerTest, SamplingFrequenciesFollowTheDistribution) {
  const auto logits = MakeLogits(8, 11);
  const auto probs = Softmax(logits, 0.7);
  SamplingParams p;
  p.temperature = 0.7f;
  std::vector<int> counts(8, 0);
  const int n = 20000;
  for (int s = 0; s < n; ++s) {
    p.seed = s;
    ++counts[Sample(logits, p).token_id];
  }
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(counts[i] / double(n), probs[i], 0.015) << i;
}

TEST(SamplerTest, TopKTopPMinPNeverLeaveTheirSet) {
  const auto logits = MakeLogits(200, 3);
  const auto probs = Softmax(logits);
  std::vector<int> order(200);
  for (int i = 0; i < 200; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  const std::set<int> top5(order.begin(), order.begin() + 5);
  std::set<int> nucleus;  // smallest prefix reaching 0.6
  double mass = 0;
  for (int id : order) {
    if (mass >= 0.6) break;
    nucleus.insert(id);
    mass += probs[id];
  }
  const double max_prob = probs[order[0]];
  for (uint64_t seed = 0; seed < 500; ++seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed;
    p.top_k = 5;
    EXPECT_TRUE(top5.count(Sample(logits, p).token_id));
    p.top_k = 0;
    p.top_p = 0.6f;
    EXPECT_TRUE(nucleus.count(Sample(logits, p).token_id));
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    EXPECT_GE(probs[Sample(logits, p).token_id], 0.3 * max_prob);
  }
  EXPECT_LT(nucleus.size(), 200u);
}

TEST(SamplerTest, PenaltiesFollowTheirDefinitions) {
  const std::vector<float> base = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> prompt = {0, 1};
  const std::vector<int32_t> output = {2, 2, 1};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  auto l = base;
  ApplyPenalties(l, p, prompt, output);
  // Seen in prompt or output: positive halved, negative doubled; others kept.
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 0.5f, 0.5f, 3.0f}));

  p = SamplingParams();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  l = base;
  ApplyPenalties(l, p, prompt, output);
  // Output only: token 2 twice (-1.0 - 0.25), token 1 once (-0.5 - 0.25);
  // token 0 (prompt only) untouched.
  EXPECT_EQ(l, (std::vector<float>{2.0f, -2.75f, -0.25f, 0.5f, 3.0f}));

  // Greedy sees the penalised logits: token 4 loses to token 0.
  p = SamplingParams();
  p.presence_penalty = 2.0f;
  std::vector<int32_t> tokens = {0, 4};
  EXPECT_EQ(Sample(base, p, tokens, 1).token_id, 0);
}

TEST(SamplerTest, MinTokensMasksEosAndStopIds) {
  const std::vector<float> l = {0.0f, 5.0f, 4.0f, 1.0f};  // EOS=1 and stop=2 lead
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {2};
  const std::vector<int> eos = {1};
  std::vector<int32_t> tokens = {0, 3};  // prompt 1 token, 1 output so far
  EXPECT_EQ(Sample(l, p, tokens, 1, eos).token_id, 3);
  tokens.push_back(3);  // 2 outputs: masking ends
  EXPECT_EQ(Sample(l, p, tokens, 1, eos).token_id, 1);
  p.ignore_eos = true;  // EOS no longer masked below min_tokens... nor special
  tokens.pop_back();
  EXPECT_EQ(Sample(l, p, tokens, 1, eos).token_id, 1);
}

SampleResult SampleMasked(const std::vector<float>& logits, const SamplingParams& params,
                          const std::vector<uint32_t>& mask, const std::vector<int32_t>& tokens = {1},
                          const std::vector<int>& eos = {}) {
  SamplingInput in{logits, &params, tokens, 1, eos, mask};
  auto r = SampleNext(in);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : SampleResult{};
}

TEST(SamplerTest, GrammarMaskComesBeforeEverything) {
  const std::vector<float> l = MakeLogits(40, 3);
  const std::vector<uint32_t> mask = {(1u << 5) | (1u << 9), 1u << (33 - 32)};  // ids 5, 9, 33
  SamplingParams p;
  const int32_t greedy = SampleMasked(l, p, mask).token_id;
  EXPECT_TRUE(greedy == 5 || greedy == 9 || greedy == 33);
  EXPECT_EQ(greedy, l[5] >= l[9] && l[5] >= l[33] ? 5 : (l[9] >= l[33] ? 9 : 33));
  p.temperature = 1.5f;
  p.top_k = 40;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    p.seed = seed;
    const int32_t t = SampleMasked(l, p, mask).token_id;
    EXPECT_TRUE(t == 5 || t == 9 || t == 33) << t;
  }
  // Clear bits mask a token whatever its logit.
  EXPECT_EQ(SampleMasked({0.0f, 9.0f, 1.0f}, SamplingParams(), {1u}).token_id, 0);
}

TEST(SamplerTest, MinTokensYieldsToACompleteGrammar) {
  // The grammar allows only EOS (id 1); min_tokens would mask it.
  SamplingParams p;
  p.min_tokens = 5;
  EXPECT_EQ(SampleMasked({3.0f, 0.0f, 2.0f}, p, {1u << 1}, {0}, {1}).token_id, 1);
  // With something else allowed, min_tokens still holds EOS back.
  EXPECT_EQ(SampleMasked({3.0f, 0.0f, 2.0f}, p, {(1u << 1) | (1u << 2)}, {0}, {1}).token_id, 2);
}

TEST(SamplerTest, LogitBiasAndAllowedTokenIds) {
  const std::vector<float> l = {1.0f, 2.0f, 3.0f, 0.0f};
  SamplingParams p;
  p.logit_bias = {{3, 100.0f}};
  EXPECT_EQ(Sample(l, p).token_id, 3);
  p.logit_bias = {{2, -100.0f}};
  EXPECT_EQ(Sample(l, p).token_id, 1);
  p.logit_bias.clear();
  p.allowed_token_ids = {0, 3};
  EXPECT_EQ(Sample(l, p).token_id, 0);
  p.temperature = 1.0f;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    const int32_t t = Sample(l, p).token_id;
    EXPECT_TRUE(t == 0 || t == 3) << t;
  }
}

TEST(SamplerTest, BadWordsBanTheArgmaxSoGreedyTakesTheRunnerUp) {
  const std::vector<float> l = {1.0f, 2.0f, 5.0f, 4.0f, 3.0f};  // 2, then 3, then 4
  SamplingParams p;
  p.bad_words = {{2}};  // one token: banned at every step
  EXPECT_EQ(Sample(l, p).token_id, 3);
  p.bad_words = {{2}, {3}};
  EXPECT_EQ(Sample(l, p).token_id, 4);
  // Two tokens [0, 3]: 3 is banned only right after a generated 0.
  p.bad_words = {{0, 3}};
  EXPECT_EQ(Sample(l, p, {1, 0}, 1).token_id, 2);
  p.bad_words = {{0, 2}};
  EXPECT_EQ(Sample(l, p, {1, 0}, 1).token_id, 3);
  EXPECT_EQ(Sample(l, p, {1, 0, 4}, 1).token_id, 2);  // the prefix is not at the end
  EXPECT_EQ(Sample(l, p, {0}, 1).token_id, 2);        // prompt tokens never count
  // Sampled draws never pick a banned token.
  p.bad_words = {{2}, {0, 3}};
  p.temperature = 2.0f;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    p.seed = seed;
    const int32_t t = Sample(l, p, {1, 0}, 1).token_id;
    EXPECT_TRUE(t != 2 && t != 3) << t;
  }
}

TEST(SamplerTest, BadWordsYieldToAGrammarThatAllowsNothingElse) {
  SamplingParams p;
  p.bad_words = {{2}};
  // The grammar allows only the banned id: the grammar wins.
  EXPECT_EQ(SampleMasked({3.0f, 0.0f, 2.0f}, p, {1u << 2}).token_id, 2);
  // The grammar allows the banned id and EOS (1): EOS is left, and
  // min_tokens then yields too, or nothing could be sampled.
  p.min_tokens = 5;
  EXPECT_EQ(SampleMasked({3.0f, 0.0f, 2.0f}, p, {(1u << 1) | (1u << 2)}, {0}, {1}).token_id, 1);
  // allowed_token_ids restrict the same way.
  p = SamplingParams();
  p.bad_words = {{2}};
  p.allowed_token_ids = {2, 3};
  EXPECT_EQ(Sample({0.0f, 0.0f, 5.0f, 1.0f}, p).token_id, 3);
}

TEST(SamplerTest, LogprobsAreRawAndSumToOne) {
  const auto logits = MakeLogits(50, 5);
  SamplingParams p;
  p.temperature = 0.5f;
  p.top_k = 3;
  p.repetition_penalty = 1.5f;  // must not affect the reported logprobs
  p.logprobs = true;
  p.top_logprobs = 50;
  const SampleResult r = Sample(logits, p, {1, 2, 3}, 2);
  ASSERT_TRUE(r.has_logprobs);
  ASSERT_EQ(r.top_logprobs.size(), 50u);
  double sum = 0;
  for (size_t i = 0; i < r.top_logprobs.size(); ++i) {
    sum += std::exp(r.top_logprobs[i].second);
    if (i > 0) {
      EXPECT_GE(r.top_logprobs[i - 1].second, r.top_logprobs[i].second);
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);
  const auto probs = Softmax(logits);
  EXPECT_NEAR(std::exp(r.logprob), probs[r.token_id], 1e-5);
  EXPECT_EQ(r.top_logprobs[0].first, std::max_element(probs.begin(), probs.end()) - probs.begin());
}

TEST(SamplerTest, BadParametersAreErrors) {
  const std::vector<float> l = {1.0f, 2.0f};
  const std::vector<int32_t> tokens = {0};
  for (auto edit : std::vector<void (*)(SamplingParams&)>{
           [](SamplingParams& p) { p.temperature = -1; },
           [](SamplingParams& p) { p.top_p = 1.5f; },
           [](SamplingParams& p) { p.min_p = -0.1f; },
           [](SamplingParams& p) { p.top_k = -5; },
           [](SamplingParams& p) { p.repetition_penalty = 0; },
       }) {
    SamplingParams p;
    edit(p);
    SamplingInput in{l, &p, tokens, 1, {}};
    EXPECT_EQ(SampleNext(in).status().code(), absl::StatusCode::kInvalidArgument);
  }
  SamplingParams p;
  SamplingInput empty{{}, &p, tokens, 1, {}};
  EXPECT_FALSE(SampleNext(empty).ok());
}

}  // namespace
}  // namespace tpserve::worker
