#include "worker/service/sequence_table.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sampling_rules.h"
#include "structured/spec.h"
#include "structured/testing.h"

#include "google/protobuf/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tpserve::worker {
namespace {

StepLimits Limits() {
  StepLimits l;
  l.num_blocks = 8;
  l.block_size = 4;
  l.vocab_size = 100;
  l.max_model_len = 32;
  l.max_num_seqs = 4;
  l.max_num_batched_tokens = 20;
  return l;
}

v1::StepRequest Parse(const std::string& text) {
  v1::StepRequest step;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &step)) << text;
  return step;
}

SampleResult Sampled(uint64_t seq_id, int32_t token) {
  SampleResult r;
  r.seq_id = seq_id;
  r.token_id = token;
  return r;
}

// A table holding sequence 1 with 5 prompt tokens, fully computed, and the
// token 7 it sampled (its next input).
SequenceTable TableWithOneSequence() {
  SequenceTable t;
  auto batch = t.Apply(Parse(R"pb(step_id: 1
      new_sequences { seq_id: 1 token_ids: [1, 2, 3, 4, 5] num_prompt_tokens: 5
                      num_scheduled_tokens: 5 block_table: [0, 1] })pb"), Limits());
  EXPECT_TRUE(batch.ok()) << batch.status();
  t.Commit({Sampled(1, 7)});
  return t;
}

TEST(SequenceTableTest, PrefillThenDecodeKeepsStateBetweenSteps) {
  SequenceTable t;
  auto b1 = t.Apply(Parse(R"pb(step_id: 1
      new_sequences { seq_id: 9 token_ids: [1, 2, 3, 4, 5, 6] num_prompt_tokens: 6
                      num_computed_tokens: 0 num_scheduled_tokens: 4 block_table: [3] }
  )pb"), Limits());
  ASSERT_TRUE(b1.ok()) << b1.status();
  ASSERT_EQ(b1->seqs.size(), 1);
  EXPECT_FALSE(b1->seqs[0].sample);  // a prompt chunk: nothing to sample yet
  t.Commit({});
  // Second chunk needs a second block; it ends the prompt, so it samples.
  auto b2 = t.Apply(Parse(R"pb(step_id: 2
      running_sequences { seq_id: 9 num_scheduled_tokens: 2 new_block_ids: [5] })pb"),
                    Limits());
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_EQ(b2->seqs[0].num_computed_tokens, 4);
  EXPECT_TRUE(b2->seqs[0].sample);
  EXPECT_EQ(std::vector<int32_t>(b2->seqs[0].block_table.begin(),
                                 b2->seqs[0].block_table.end()),
            (std::vector<int32_t>{3, 5}));
  t.Commit({Sampled(9, 42)});
  // The decode continues from the token the worker sampled: the step names
  // no token.
  auto b3 = t.Apply(Parse(R"pb(step_id: 3
      running_sequences { seq_id: 9 num_scheduled_tokens: 1 })pb"),
                    Limits());
  ASSERT_TRUE(b3.ok()) << b3.status();
  EXPECT_EQ(b3->seqs[0].token_ids.size(), 7);
  EXPECT_EQ(b3->seqs[0].token_ids.back(), 42);
  EXPECT_EQ(b3->seqs[0].num_computed_tokens, 6);
  EXPECT_TRUE(b3->seqs[0].sample);
  t.Commit({Sampled(9, 43)});
  EXPECT_EQ(t.Find(9)->num_computed_tokens, 7);
  EXPECT_EQ(t.Find(9)->token_ids.back(), 43);
}

TEST(SequenceTableTest, RollbackUndoesTheStep) {
  SequenceTable t = TableWithOneSequence();
  auto b = t.Apply(Parse(R"pb(step_id: 2
      running_sequences { seq_id: 1 num_scheduled_tokens: 1 new_block_ids: [3] }
      new_sequences { seq_id: 2 token_ids: [1] num_prompt_tokens: 1
                      num_scheduled_tokens: 1 block_table: [4] })pb"), Limits());
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->seqs.size(), 2);
  EXPECT_EQ(b->seqs[0].seq_id, 2);  // new sequences first, as the proto says
  t.Rollback();
  EXPECT_EQ(t.Find(2), nullptr);
  EXPECT_EQ(t.Find(1)->token_ids.size(), 6);
  EXPECT_EQ(t.Find(1)->block_table.size(), 2);
  EXPECT_EQ(t.Find(1)->num_computed_tokens, 5);
}

TEST(SequenceTableTest, FinishedThenRestartedInOneStep) {
  SequenceTable t = TableWithOneSequence();
  auto b = t.Apply(Parse(R"pb(step_id: 2 finished_seq_ids: [1]
      new_sequences { seq_id: 1 token_ids: [1, 2, 3, 4, 5, 7] num_prompt_tokens: 5
                      num_scheduled_tokens: 6 block_table: [6, 7] })pb"), Limits());
  ASSERT_TRUE(b.ok()) << b.status();
  t.Commit({});
  EXPECT_EQ(t.Find(1)->token_ids.size(), 6);
  EXPECT_EQ(t.Find(1)->block_table[0], 6);
}

struct BadCase {
  const char* name;
  const char* step;
  const char* message;  // must appear in the error
};

class SequenceTableRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SequenceTableRejectTest, RejectsWithAPreciseMessageAndChangesNothing) {
  SequenceTable t = TableWithOneSequence();
  auto b = t.Apply(Parse(GetParam().step), Limits());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find(GetParam().message), std::string::npos)
      << b.status();
  ASSERT_NE(t.Find(1), nullptr);
  EXPECT_EQ(t.Find(1)->token_ids.size(), 6);
  EXPECT_EQ(t.Find(1)->block_table.size(), 2);
  EXPECT_EQ(t.size(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SequenceTableRejectTest,
    ::testing::Values(
        BadCase{"UnknownRunning",
                "running_sequences { seq_id: 3 num_scheduled_tokens: 1 }",
                "running sequence 3: is unknown"},
        BadCase{"UnknownFinished", "finished_seq_ids: [4]",
                "unknown sequence 4"},
        BadCase{"DuplicateNew",
                "new_sequences { seq_id: 1 token_ids: [1] num_prompt_tokens: 1 "
                "num_scheduled_tokens: 1 block_table: [0] }",
                "new sequence 1: already exists"},
        BadCase{"BlockOutOfRange",
                "running_sequences { seq_id: 1 "
                "num_scheduled_tokens: 1 new_block_ids: [8] }",
                "block id 8 is out of range [0, 8)"},
        BadCase{"BlockTableTooShort",
                "new_sequences { seq_id: 2 token_ids: [1,2,3,4,5,6,7,8,9] "
                "num_prompt_tokens: 9 num_scheduled_tokens: 9 block_table: [2, 3] }",
                "block table of 2 blocks covers 8 positions"},
        BadCase{"PastKnownTokens",
                "running_sequences { seq_id: 1 num_scheduled_tokens: 2 }",
                "go past the 6 known tokens"},
        BadCase{"TokenOutsideVocab",
                "new_sequences { seq_id: 2 token_ids: [3, 100] num_prompt_tokens: 2 "
                "num_scheduled_tokens: 2 block_table: [2] }",
                "outside the vocabulary"},
        BadCase{"ZeroScheduled",
                "running_sequences { seq_id: 1 }",
                "num_scheduled_tokens must be >= 1"},
        BadCase{"RunningAndFinished",
                "finished_seq_ids: [1] running_sequences { seq_id: 1 "
                "num_scheduled_tokens: 1 }",
                "finished in this same step"},
        BadCase{"TooManyTokens",
                "new_sequences { seq_id: 2 token_ids: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                "1,1,1,1,1,1,1] num_prompt_tokens: 21 num_scheduled_tokens: 21 "
                "block_table: [2,3,4,5,6,7] }",
                "exceed max_num_batched_tokens 20"},
        BadCase{"BadSampling",
                "new_sequences { seq_id: 2 token_ids: [1] num_prompt_tokens: 1 "
                "num_scheduled_tokens: 1 block_table: [2] sampling { top_p: 2 } }",
                "top_p must be in [0, 1]"},
        BadCase{"SamplingWithoutSeed",
                "new_sequences { seq_id: 2 token_ids: [1] num_prompt_tokens: 1 "
                "num_scheduled_tokens: 1 block_table: [2] sampling { temperature: 1 } }",
                "seed must be set"},
        BadCase{"ComputedPastPrompt",
                "new_sequences { seq_id: 2 token_ids: [1] num_prompt_tokens: 1 "
                "num_computed_tokens: 1 num_scheduled_tokens: 1 block_table: [2] }",
                "num_computed_tokens 1 is outside [0, 1)"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(SamplingParamsTest, NeutralProtoValuesMeanOff) {
  v1::SamplingParams p;
  p.set_top_logprobs(3);
  auto s = ToSamplingParams(p, 10);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->top_p, 1.0f);
  EXPECT_EQ(s->repetition_penalty, 1.0f);
  EXPECT_EQ(s->top_k, 0);
  EXPECT_TRUE(s->logprobs);  // implied by top_logprobs
}

TEST(SamplingParamsTest, LogitBiasAndAllowedTokenIds) {
  v1::SamplingParams p;
  (*p.mutable_logit_bias())[7] = -100.0f;
  (*p.mutable_logit_bias())[2] = 3.5f;
  p.add_allowed_token_ids(4);
  auto s = ToSamplingParams(p, 10);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->logit_bias.size(), 2u);
  EXPECT_EQ(s->logit_bias[0], (std::pair<int32_t, float>(2, 3.5f)));  // sorted by id
  EXPECT_EQ(s->allowed_token_ids, std::vector<int32_t>{4});
  (*p.mutable_logit_bias())[10] = 1.0f;
  EXPECT_FALSE(ToSamplingParams(p, 10).ok());
  p.mutable_logit_bias()->erase(10);
  (*p.mutable_logit_bias())[1] = 101.0f;
  EXPECT_FALSE(ToSamplingParams(p, 10).ok());
  p.mutable_logit_bias()->erase(1);
  p.add_allowed_token_ids(-1);
  EXPECT_FALSE(ToSamplingParams(p, 10).ok());
}

TEST(SamplingParamsTest, BadWords) {
  v1::SamplingParams p;
  p.add_bad_words()->add_ids(3);
  auto* two = p.add_bad_words();
  two->add_ids(4);
  two->add_ids(5);
  auto s = ToSamplingParams(p, 10);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->bad_words, (std::vector<std::vector<int32_t>>{{3}, {4, 5}}));
  two->add_ids(10);  // outside the vocabulary
  EXPECT_THAT(ToSamplingParams(p, 10).status().message(), ::testing::HasSubstr("bad_words"));
  two->mutable_ids()->RemoveLast();
  p.add_bad_words();  // an empty word
  EXPECT_FALSE(ToSamplingParams(p, 10).ok());
  p.mutable_bad_words()->RemoveLast();
  for (int i = 0; i < kMaxBadWordLength; ++i) p.add_bad_words()->add_ids(1);
  EXPECT_TRUE(ToSamplingParams(p, 10).ok());
  for (int i = 0; i < kMaxBadWordSequences; ++i) p.add_bad_words()->add_ids(1);
  EXPECT_THAT(ToSamplingParams(p, 10).status().message(), ::testing::HasSubstr("exceed the limit of 128"));
  p.clear_bad_words();
  auto* long_word = p.add_bad_words();
  for (int i = 0; i <= kMaxBadWordLength; ++i) long_word->add_ids(1);
  EXPECT_FALSE(ToSamplingParams(p, 10).ok());
  p.clear_bad_words();
  for (int i = 0; i < 40; ++i) {  // 40 x 30 = 1200 tokens
    auto* w = p.add_bad_words();
    for (int j = 0; j < 30; ++j) w->add_ids(1);
  }
  EXPECT_THAT(ToSamplingParams(p, 10).status().message(), ::testing::HasSubstr("1200 tokens in all"));
}

// 100 ids: 1 = "a", 2 = "b", the rest "x", 99 = EOS.
std::unique_ptr<structured::GrammarCache> Grammars() {
  std::vector<std::string> tokens(99, "x");
  tokens[1] = "a";
  tokens[2] = "b";
  return std::make_unique<structured::GrammarCache>(structured::testing::SmallVocab(tokens));
}

// The allowed ids of `s` once the batch's masks are filled (Apply only
// sizes them; the backend fills them after launching the forward pass).
std::vector<int> Allowed(const StepBatch& b, const SeqStep& s) {
  EXPECT_TRUE(b.fill_masks != nullptr);
  if (b.fill_masks) b.fill_masks();
  std::vector<int> out;
  for (int id = 0; id < static_cast<int>(s.allowed_mask.size()) * 32; ++id) {
    if ((s.allowed_mask[id >> 5] >> (id & 31)) & 1) out.push_back(id);
  }
  return out;
}

std::string NewSeqWithSpec(const std::string& tokens, int num_prompt, const std::string& spec) {
  return absl::StrCat("step_id: 1 new_sequences { seq_id: 1 token_ids: [", tokens,
                      "] num_prompt_tokens: ", num_prompt, " num_scheduled_tokens: ",
                      std::count(tokens.begin(), tokens.end(), ',') + 1,
                      " block_table: [0, 1] sampling { structured_output: '", spec, "' } }");
}

TEST(SequenceTableTest, GrammarMasksFollowTheSampledTokens) {
  auto grammars = Grammars();
  SequenceTable t;
  t.set_grammars(grammars.get());
  const std::string spec = structured::RegexSpec("ab+");
  auto b1 = t.Apply(Parse(NewSeqWithSpec("5, 5", 2, spec)), Limits());
  ASSERT_TRUE(b1.ok()) << b1.status();
  EXPECT_EQ(Allowed(*b1, b1->seqs[0]), std::vector<int>{1});
  t.Commit({Sampled(1, 1)});
  auto b2 = t.Apply(Parse("step_id: 2 running_sequences { seq_id: 1 num_scheduled_tokens: 1 }"), Limits());
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_EQ(Allowed(*b2, b2->seqs[0]), std::vector<int>{2});
  t.Commit({Sampled(1, 2)});
  auto b3 = t.Apply(Parse("step_id: 3 running_sequences { seq_id: 1 num_scheduled_tokens: 1 }"), Limits());
  ASSERT_TRUE(b3.ok()) << b3.status();
  EXPECT_EQ(Allowed(*b3, b3->seqs[0]), (std::vector<int>{2, 99}));  // complete: EOS allowed
}

TEST(SequenceTableTest, RestartedSequenceReplaysItsOutputs) {
  auto grammars = Grammars();
  SequenceTable t;
  t.set_grammars(grammars.get());
  const std::string spec = structured::RegexSpec("ab+");
  auto b = t.Apply(Parse(NewSeqWithSpec("5, 1, 2", 1, spec)), Limits());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Allowed(*b, b->seqs[0]), (std::vector<int>{2, 99}));
  SequenceTable bad;
  bad.set_grammars(grammars.get());
  auto r = bad.Apply(Parse(NewSeqWithSpec("5, 2", 1, spec)), Limits());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not follow the grammar"), std::string::npos) << r.status();
  EXPECT_EQ(bad.size(), 0u);
  auto invalid = bad.Apply(Parse(NewSeqWithSpec("5", 1, structured::RegexSpec("(a"))), Limits());
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.status().message().find("missing ')'"), std::string::npos) << invalid.status();
}

TEST(SequenceTableTest, WithoutGrammarsSpecsAreIgnored) {
  SequenceTable t;
  auto b = t.Apply(Parse(NewSeqWithSpec("5", 1, structured::RegexSpec("ab+"))), Limits());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->seqs[0].allowed_mask.empty());
  EXPECT_FALSE(b->fill_masks);
  EXPECT_EQ(t.last_mask_us(), 0);
}

// A step's masks are filled only when the backend asks, from the matcher
// state after the previous step's token, and sequences that do not sample
// (a prefill chunk short of the end) get none.
TEST(SequenceTableTest, MasksAreFilledWhenTheBackendAsks) {
  auto grammars = Grammars();
  SequenceTable t;
  t.set_grammars(grammars.get());
  auto b = t.Apply(Parse(NewSeqWithSpec("5, 5", 2, structured::RegexSpec("ab+"))), Limits());
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_FALSE(b->seqs[0].allowed_mask.empty());
  // Sized but still zero: nothing is allowed until fill_masks runs.
  for (uint32_t w : b->seqs[0].allowed_mask) EXPECT_EQ(w, 0u);
  ASSERT_TRUE(b->fill_masks);
  b->fill_masks();
  EXPECT_EQ(Allowed(*b, b->seqs[0]), std::vector<int>{1});
  EXPECT_GE(t.last_mask_us(), 0);
  t.Commit({Sampled(1, 1)});
  auto chunk = t.Apply(Parse("step_id: 2 new_sequences { seq_id: 2 token_ids: [5, 5, 5] num_prompt_tokens: 3 "
                             "num_scheduled_tokens: 2 block_table: [2] sampling { structured_output: '" +
                             structured::RegexSpec("ab+") + "' } }"),
                       Limits());
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_TRUE(chunk->seqs[0].allowed_mask.empty());
  EXPECT_FALSE(chunk->fill_masks);
}

}  // namespace
}  // namespace tpserve::worker
