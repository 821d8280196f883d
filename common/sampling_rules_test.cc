#include "common/sampling_rules.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 100;

// Adds `n` bad_words sequences of `length` copies of token 1.
void AddBadWords(v1::SamplingParams* p, int n, int length) {
  for (int i = 0; i < n; ++i) {
    v1::TokenIds* word = p->add_bad_words();
    for (int j = 0; j < length; ++j) word->add_ids(1);
  }
}

TEST(SamplingRulesTest, NeutralAndEdgeValuesPass) {
  EXPECT_TRUE(CheckSamplingParams(v1::SamplingParams(), kVocab).ok());
  v1::SamplingParams p;
  p.set_temperature(kMaxTemperature);
  p.set_top_p(1);
  p.set_top_k(-1);
  p.set_min_p(1);
  p.set_presence_penalty(kMinPenalty);
  p.set_frequency_penalty(kMaxPenalty);
  p.set_repetition_penalty(kMaxRepetitionPenalty);
  p.set_top_logprobs(kMaxTopLogprobs);
  p.add_stop_token_ids(kVocab - 1);
  p.add_allowed_token_ids(0);
  (*p.mutable_logit_bias())[kVocab - 1] = -kMaxLogitBiasValue;
  EXPECT_TRUE(CheckSamplingParams(p, kVocab).ok()) << CheckSamplingParams(p, kVocab);
  // The bad_words bounds, each reached exactly: the most sequences, the
  // longest one, and the most tokens in all.
  for (auto [n, length] : {std::pair{kMaxBadWordSequences, 1}, std::pair{1, kMaxBadWordLength},
                           std::pair{kMaxBadWordsTokens / kMaxBadWordLength, kMaxBadWordLength}}) {
    v1::SamplingParams words;
    AddBadWords(&words, n, length);
    words.mutable_bad_words(0)->set_ids(0, kVocab - 1);
    EXPECT_TRUE(CheckSamplingParams(words, kVocab).ok()) << n << " x " << length;
  }
}

TEST(SamplingRulesTest, EachFieldOutOfRangeIsNamed) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::function<void(v1::SamplingParams&)> set;
    const char* message;
  };
  const Case cases[] = {
      {[](auto& p) { p.set_temperature(-0.5f); }, "temperature"},
      {[&](auto& p) { p.set_temperature(inf); }, "temperature"},
      {[&](auto& p) { p.set_temperature(nan); }, "temperature"},
      {[](auto& p) { p.set_top_p(1.5f); }, "top_p must be in [0, 1]"},
      {[](auto& p) { p.set_top_k(-2); }, "top_k must be >= -1"},
      {[](auto& p) { p.set_min_p(-0.1f); }, "min_p"},
      {[](auto& p) { p.set_min_tokens(-1); }, "min_tokens"},
      {[](auto& p) { p.set_presence_penalty(2.5f); }, "penalties"},
      {[&](auto& p) { p.set_frequency_penalty(nan); }, "penalties"},
      {[](auto& p) { p.set_repetition_penalty(-1); }, "repetition_penalty"},
      {[](auto& p) { p.set_top_logprobs(kMaxTopLogprobs + 1); }, "top_logprobs"},
      {[](auto& p) { p.add_stop_token_ids(kVocab); }, "stop token id 100 is outside"},
      {[](auto& p) { p.add_allowed_token_ids(-1); }, "allowed token id -1 is outside"},
      {[](auto& p) { (*p.mutable_logit_bias())[kVocab] = 1; }, "logit_bias {100: 1}"},
      {[](auto& p) { (*p.mutable_logit_bias())[3] = 101; }, "logit_bias {3: 101}"},
      {[](auto& p) { p.add_bad_words()->add_ids(kVocab); }, "bad_words token id 100 is outside"},
      {[](auto& p) { p.add_bad_words(); }, "bad_words: sequence 0 has 0 tokens"},
      {[](auto& p) { AddBadWords(&p, 1, kMaxBadWordLength + 1); }, "sequence 0 has 33 tokens"},
      {[](auto& p) { AddBadWords(&p, kMaxBadWordSequences + 1, 1); }, "129 sequences exceed"},
      {[](auto& p) { AddBadWords(&p, 40, 30); }, "1200 tokens in all exceed the limit of 1024"},
  };
  for (const Case& c : cases) {
    v1::SamplingParams p;
    c.set(p);
    absl::Status s = CheckSamplingParams(p, kVocab);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace tpserve
