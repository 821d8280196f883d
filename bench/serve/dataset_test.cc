#include "bench/serve/dataset.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

namespace tpserve::bench {
namespace {

class DatasetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = text::Tokenizer::Load("tests/fixtures/tiny-qwen2-chat");
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = t->release();
  }
  static std::string WriteFile(const std::string& name, const std::string& text) {
    const char* dir = std::getenv("TEST_TMPDIR");
    const std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  static const text::Tokenizer* tok_;
};
const text::Tokenizer* DatasetTest::tok_ = nullptr;

TEST_F(DatasetTest, RandomLengthsStayWithinTheRangeRatio) {
  BenchConfig c;
  c.num_prompts = 200;
  c.random_input_len = 100;
  c.random_output_len = 20;
  c.random_range_ratio = 0.5;
  absl::StatusOr<Dataset> d = SampleRandom(*tok_, c, false);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->requests.size(), 200u);
  const std::vector<int32_t> allowed = AllowedTokens(*tok_);
  const std::set<int32_t> ok(allowed.begin(), allowed.end());
  std::set<int> in_lens, out_lens;
  for (const SampleRequest& r : d->requests) {
    EXPECT_GE(r.prompt_len, 50);
    EXPECT_LE(r.prompt_len, 150);
    EXPECT_GE(r.expected_output_len, 10);
    EXPECT_LE(r.expected_output_len, 30);
    EXPECT_EQ(r.prompt_ids.size(), static_cast<size_t>(r.prompt_len));
    EXPECT_TRUE(r.prompt.empty());
    for (int32_t id : r.prompt_ids) ASSERT_TRUE(ok.count(id)) << id;
    in_lens.insert(r.prompt_len);
    out_lens.insert(r.expected_output_len);
  }
  // Lengths really vary over the range, not one value.
  EXPECT_GT(in_lens.size(), 40u);
  EXPECT_GT(out_lens.size(), 10u);
  // Neither added nor special tokens are drawn.
  for (const text::AddedToken& t : tok_->added_tokens()) EXPECT_FALSE(ok.count(t.id));
}

TEST_F(DatasetTest, RandomIsSeededAndSharesOnlyTheGivenPrefix) {
  BenchConfig c;
  c.num_prompts = 20;
  c.random_input_len = 16;
  c.random_prefix_len = 8;
  auto a = SampleRandom(*tok_, c, false);
  auto b = SampleRandom(*tok_, c, false);
  c.seed = 1;
  auto other = SampleRandom(*tok_, c, false);
  ASSERT_TRUE(a.ok() && b.ok() && other.ok());
  EXPECT_EQ(a->requests[3].prompt_ids, b->requests[3].prompt_ids);
  EXPECT_NE(a->requests[3].prompt_ids, other->requests[3].prompt_ids);
  std::set<std::vector<int32_t>> firsts;
  for (const SampleRequest& r : a->requests) {
    ASSERT_EQ(r.prompt_len, 24);
    EXPECT_EQ(std::vector<int32_t>(r.prompt_ids.begin(), r.prompt_ids.begin() + 8),
              std::vector<int32_t>(a->requests[0].prompt_ids.begin(),
                                   a->requests[0].prompt_ids.begin() + 8));
    firsts.insert(std::vector<int32_t>(r.prompt_ids.begin() + 8, r.prompt_ids.begin() + 9));
  }
  EXPECT_GT(firsts.size(), 15u);  // after the prefix, prompts differ at once
}

TEST_F(DatasetTest, RandomAsTextKeepsTheTokenCount) {
  BenchConfig c;
  c.num_prompts = 20;
  c.random_input_len = 64;
  absl::StatusOr<Dataset> d = SampleRandom(*tok_, c, true);
  ASSERT_TRUE(d.ok()) << d.status();
  for (const SampleRequest& r : d->requests) {
    EXPECT_TRUE(r.prompt_ids.empty());
    EXPECT_EQ(static_cast<int>(tok_->Encode(r.prompt, false).size()), r.prompt_len);
    EXPECT_NEAR(r.prompt_len, 64, 2);
  }
}

TEST_F(DatasetTest, PrefixRepetitionGroupsShareTheirPrefix) {
  BenchConfig c;
  c.dataset_name = "prefix-repetition";
  c.num_prompts = 32;
  c.prefix_repetition_num_prefixes = 4;
  c.prefix_repetition_prefix_len = 40;
  c.prefix_repetition_suffix_len = 10;
  c.prefix_repetition_output_len = 7;
  absl::StatusOr<Dataset> d = LoadDataset(*tok_, c, false);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->requests.size(), 32u);
  EXPECT_TRUE(d->note.empty());
  std::map<std::vector<int32_t>, int> groups;
  for (const SampleRequest& r : d->requests) {
    ASSERT_EQ(r.prompt_len, 50);
    EXPECT_EQ(r.expected_output_len, 7);
    ++groups[std::vector<int32_t>(r.prompt_ids.begin(), r.prompt_ids.begin() + 40)];
  }
  ASSERT_EQ(groups.size(), 4u);
  for (const auto& [prefix, n] : groups) EXPECT_EQ(n, 8);
  c.num_prompts = 30;  // not a multiple of 4: rounded down, and said so
  d = LoadDataset(*tok_, c, false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->requests.size(), 28u);
  EXPECT_NE(d->note.find("28 requests"), std::string::npos);
}

TEST_F(DatasetTest, ShareGptUsesTheFirstHumanTurnAndTheReplyLength) {
  const std::string reply = "Large language models are neural networks trained on text.";
  const std::string path = WriteFile("sharegpt.json", R"([
    {"id": "a", "conversations": [
      {"from": "human", "value": "What is a large language model, in one sentence?"},
      {"from": "gpt", "value": ")" + reply + R"("},
      {"from": "human", "value": "Thanks"}]},
    {"id": "b", "conversations": [
      {"from": "system", "value": "Be brief."},
      {"from": "human", "value": "Name three prime numbers, please."},
      {"from": "gpt", "value": "Two, three and five are prime numbers."}]},
    {"id": "short", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there, friend!"}]},
    {"id": "no reply", "conversations": [{"from": "human", "value": "Anyone there at all?"}]}
  ])");
  BenchConfig c;
  c.dataset_name = "sharegpt";
  c.dataset_path = path;
  c.num_prompts = 2;
  absl::StatusOr<Dataset> d = LoadDataset(*tok_, c, false);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->requests.size(), 2u);
  std::map<std::string, SampleRequest> by_prompt;
  for (const SampleRequest& r : d->requests) by_prompt[r.prompt] = r;
  ASSERT_TRUE(by_prompt.count("What is a large language model, in one sentence?"));
  ASSERT_TRUE(by_prompt.count("Name three prime numbers, please."));
  const SampleRequest& a = by_prompt["What is a large language model, in one sentence?"];
  EXPECT_EQ(a.expected_output_len, static_cast<int>(tok_->Encode(reply, false).size()));
  EXPECT_EQ(a.prompt_len, static_cast<int>(tok_->Encode(a.prompt, false).size()));
  EXPECT_TRUE(a.prompt_ids.empty());

  c.num_prompts = 5;  // only 2 usable: repeated, with a note
  c.sharegpt_output_len = 9;
  d = LoadDataset(*tok_, c, false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->requests.size(), 5u);
  EXPECT_NE(d->note.find("only 2 usable"), std::string::npos);
  for (const SampleRequest& r : d->requests) EXPECT_EQ(r.expected_output_len, 9);
}

TEST_F(DatasetTest, ShareGptBadInputIsOneClearError) {
  BenchConfig c;
  c.dataset_name = "sharegpt";
  struct Case {
    std::string text;
    std::string expect;
  };
  const Case cases[] = {
      {"[{\"conversations\": [", "not valid JSON"},
      {"{\"conversations\": []}", "expected a list"},
      {"[{\"conversations\": []}, 3]", "entry 1: not an object"},
      {"[{\"turns\": []}]", "entry 0: has no \"conversations\" list"},
      {"[{\"conversations\": [{\"from\": \"human\", \"value\": 5}]}]", "a turn is not"},
      {"[{\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}]}]",
       "no usable conversation"},
  };
  for (const Case& k : cases) {
    c.dataset_path = WriteFile("bad.json", k.text);
    absl::StatusOr<Dataset> d = LoadDataset(*tok_, c, false);
    ASSERT_FALSE(d.ok()) << k.text;
    EXPECT_NE(d.status().message().find(k.expect), std::string::npos) << d.status();
  }
  c.dataset_path = "/nonexistent/sharegpt.json";
  absl::StatusOr<Dataset> d = LoadDataset(*tok_, c, false);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("cannot open"), std::string::npos) << d.status();
}

}  // namespace
}  // namespace tpserve::bench
