#include "common/text/tokenizer.h"

#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/text/unicode.h"

namespace tpserve::text {
namespace {

constexpr char kQwen25Dir[] = "tests/fixtures/tiny-qwen2-chat";
constexpr char kQwen3Dir[] = "tests/fixtures/tokenizer/qwen3";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

void CheckGoldens(const std::string& dir, const std::string& goldens) {
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const nlohmann::json g = ReadJson(goldens);
  int n = 0, bad = 0;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = (*tok)->Encode(text);
    ++n;
    if (got != want) {
      ++bad;
      ADD_FAILURE() << "encode mismatch for " << nlohmann::json(text).dump();
    }
    EXPECT_EQ((*tok)->Decode(want), c["decoded"].get<std::string>());
  }
  EXPECT_GT(n, 100);
  EXPECT_EQ(bad, 0) << "of " << n;
}

TEST(TokenizerTest, Qwen25Goldens) {
  CheckGoldens(kQwen25Dir, "tests/fixtures/tokenizer/qwen25_encode_goldens.json");
}

TEST(TokenizerTest, Qwen3Goldens) {
  CheckGoldens(kQwen3Dir, "tests/fixtures/tokenizer/qwen3_encode_goldens.json");
}

class Qwen25Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load(kQwen25Dir);
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = t->release();
  }
  static void TearDownTestSuite() { delete tok_; }
  static Tokenizer* tok_;
};
Tokenizer* Qwen25Test::tok_ = nullptr;

TEST_F(Qwen25Test, SpecialTokens) {
  EXPECT_EQ(tok_->vocab_size(), 151665);
  EXPECT_EQ(tok_->TokenToId("<|im_end|>"), 151645);
  EXPECT_EQ(tok_->IdToToken(151644), "<|im_start|>");
  EXPECT_TRUE(tok_->IsSpecial(151645));
  EXPECT_FALSE(tok_->IsSpecial(151657));  // <tool_call> is added but not special
  EXPECT_EQ(tok_->TokenToId("Hello"), 9707);
  EXPECT_FALSE(tok_->TokenToId("no-such-token-xyz").has_value());
}

TEST_F(Qwen25Test, ParseSpecialOff) {
  const std::string text = "<|im_start|>hi";
  const auto parsed = tok_->Encode(text, true);
  EXPECT_EQ(parsed.front(), 151644);
  const auto plain = tok_->Encode(text, false);
  EXPECT_GT(plain.size(), 2u);
  for (int32_t id : plain) EXPECT_FALSE(tok_->IsSpecial(id));
  EXPECT_EQ(tok_->Decode(plain), text);
  // Non-special added tokens are still recognised, as in HF.
  EXPECT_EQ(tok_->Encode("<tool_call>", false), (std::vector<int32_t>{151657}));
}

TEST_F(Qwen25Test, DecodeSkipsSpecial) {
  const auto ids = tok_->Encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(tok_->Decode(ids, true), "user\nhi");
  EXPECT_EQ(tok_->Decode(ids, false), "<|im_start|>user\nhi<|im_end|>");
}

TEST_F(Qwen25Test, InvalidInputs) {
  // A lone lead byte (token "ð" is byte 0xF0) decodes to U+FFFD; out-of-range
  // ids are skipped.
  const auto f0 = tok_->TokenToId("\xC3\xB0");
  ASSERT_TRUE(f0.has_value());
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{*f0}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok_->TokenBytes(*f0), "\xF0");
  EXPECT_EQ(tok_->Decode(std::vector<int32_t>{-1, 9707, 99999999}), "Hello");
  // Invalid UTF-8 input is repaired, not rejected.
  EXPECT_EQ(tok_->Decode(tok_->Encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
  EXPECT_TRUE(tok_->Encode("").empty());
}

TEST_F(Qwen25Test, LongWordsUseHeapMergeConsistently) {
  // A long run of letters goes through the heap merge; its pieces must match
  // encoding the same word in short chunks' worth of context-free merges.
  std::string long_word;
  for (int i = 0; i < 40; ++i) long_word += "\xE4\xB8\xAD\xE6\x96\x87";  // 中文 x 40
  const auto ids = tok_->Encode(long_word);
  EXPECT_EQ(tok_->Decode(ids), long_word);
  std::string abc;
  for (int i = 0; i < 30; ++i) abc += "abc";
  EXPECT_EQ(tok_->Decode(tok_->Encode(abc)), abc);
}

TEST_F(Qwen25Test, RandomTextRoundTrips) {
  // Random code points from several scripts (plus combining marks, so NFC
  // matters): decode(encode(s)) must equal NFC(s), and ids must be in range.
  std::mt19937 rng(5);
  const std::pair<uint32_t, uint32_t> ranges[] = {{0x20, 0x7E},   {0x09, 0x0D},   {0xA0, 0x24F},
                                                  {0x300, 0x36F}, {0x400, 0x4FF}, {0x4E00, 0x4FFF},
                                                  {0xAC00, 0xAD00}, {0x1F300, 0x1F64F}, {0x3040, 0x30FF}};
  for (int t = 0; t < 500; ++t) {
    std::string s;
    const int n = 1 + rng() % 40;
    for (int i = 0; i < n; ++i) {
      const auto& r = ranges[rng() % std::size(ranges)];
      AppendUtf8(r.first + rng() % (r.second - r.first + 1), &s);
    }
    const auto ids = tok_->Encode(s);
    for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok_->vocab_size());
    ASSERT_EQ(tok_->Decode(ids), NormalizeNfc(s)) << nlohmann::json(s).dump();
  }
  // Arbitrary bytes never crash and decode to valid UTF-8.
  for (int t = 0; t < 500; ++t) {
    std::string bytes(rng() % 30, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    EXPECT_TRUE(IsValidUtf8(tok_->Decode(tok_->Encode(bytes))));
  }
}

TEST(TokenizerLoadTest, RefusesOtherModels) {
  auto t = Tokenizer::FromJson(R"({"model": {"type": "WordPiece", "vocab": {}}})");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("WordPiece"), std::string::npos);
  EXPECT_FALSE(Tokenizer::FromJson("not json").ok());
  EXPECT_FALSE(Tokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": 3}})").ok());
  auto missing = Tokenizer::Load("/nonexistent/dir");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tpserve::text
