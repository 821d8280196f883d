#include "common/text/detokenizer.h"

#include <random>

#include <gtest/gtest.h>

#include "common/text/unicode.h"

namespace tpserve::text {
namespace {

class DetokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load("tests/fixtures/tiny-qwen2-chat");
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = t->release();
  }
  static void TearDownTestSuite() { delete tok_; }
  static Tokenizer* tok_;
};
Tokenizer* DetokenizerTest::tok_ = nullptr;

TEST_F(DetokenizerTest, SplitCharacterViaEncode) {
  // Byte-level tokens for each byte of "中" come from encoding single bytes' spellings.
  std::vector<int32_t> ids;
  for (unsigned char b : std::string("\xE4\xB8\xAD")) {
    for (int32_t id = 0; id < 256 * 4 && id < tok_->vocab_size(); ++id) {
      if (tok_->TokenBytes(id) == std::string(1, static_cast<char>(b))) {
        ids.push_back(id);
        break;
      }
    }
  }
  ASSERT_EQ(ids.size(), 3u);
  IncrementalDetokenizer d(*tok_);
  EXPECT_EQ(d.Add(ids[0]), "");
  EXPECT_EQ(d.Add(ids[1]), "");
  EXPECT_EQ(d.Add(ids[2]), "\xE4\xB8\xAD");
  // An interrupted sequence becomes U+FFFD, as in the full decode.
  IncrementalDetokenizer e(*tok_);
  EXPECT_EQ(e.Add(ids[0]), "");
  EXPECT_EQ(e.Add(*tok_->TokenToId("a")), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(e.Add(ids[0]), "");
  EXPECT_EQ(e.Flush(), "\xEF\xBF\xBD");
}

TEST_F(DetokenizerTest, SkipsSpecialTokens) {
  const auto ids = tok_->Encode("<|im_start|>hi<|im_end|>");
  IncrementalDetokenizer skip(*tok_, true), keep(*tok_, false);
  std::string a, b;
  for (int32_t id : ids) {
    a += skip.Add(id);
    b += keep.Add(id);
  }
  EXPECT_EQ(a, "hi");
  EXPECT_EQ(b, "<|im_start|>hi<|im_end|>");
}

TEST_F(DetokenizerTest, FuzzMatchesFullDecode) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 3000; ++trial) {
    const bool skip = trial % 2;
    std::vector<int32_t> ids;
    const int n = 1 + rng() % 24;
    for (int i = 0; i < n; ++i) {
      // Single-byte tokens (ids < 256) often split characters; mix them in.
      ids.push_back(rng() % 2 ? static_cast<int32_t>(rng() % 256) : static_cast<int32_t>(rng() % tok_->vocab_size()));
    }
    IncrementalDetokenizer d(*tok_, skip);
    std::string joined;
    for (int32_t id : ids) {
      const std::string delta = d.Add(id);
      ASSERT_TRUE(IsValidUtf8(delta)) << "trial " << trial;
      joined += delta;
    }
    const std::string tail = d.Flush();
    ASSERT_TRUE(IsValidUtf8(tail));
    joined += tail;
    ASSERT_EQ(joined, tok_->Decode(ids, skip)) << "trial " << trial;
  }
}

StopStringMatcher::Result Feed(StopStringMatcher& m, const std::vector<std::string>& deltas, std::string* out) {
  StopStringMatcher::Result last;
  for (const auto& d : deltas) {
    last = m.Add(d);
    *out += last.text;
    if (last.stop_index) return last;
  }
  *out += m.Flush();
  return last;
}

TEST(StopStringMatcherTest, SpansDeltas) {
  StopStringMatcher m({"</answer>", "STOP"});
  std::string out;
  auto r = m.Add("The answer is 4</ans");
  EXPECT_EQ(r.text, "The answer is 4");  // "</ans" may begin a stop
  EXPECT_FALSE(r.stop_index);
  r = m.Add("wer> and more");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0u);
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Add("x").text, "");
}

TEST(StopStringMatcherTest, ReleasesFalseStarts) {
  StopStringMatcher m({"abc"});
  EXPECT_EQ(m.Add("xab").text, "x");
  EXPECT_EQ(m.Add("d").text, "abd");
  EXPECT_EQ(m.Add("a").text, "");
  EXPECT_EQ(m.Flush(), "a");
}

TEST(StopStringMatcherTest, EarliestCompletionWins) {
  std::string out;
  StopStringMatcher m({"abcd", "bc", ""});
  auto r = Feed(m, {"xabcd"}, &out);
  EXPECT_EQ(out, "xa");
  EXPECT_EQ(r.stop_index, 1u);
  StopStringMatcher n({"\xE4\xB8\xAD\xE6\x96\x87"});  // 中文
  out.clear();
  r = Feed(n, {"a\xE4\xB8\xAD", "\xE6\x96\x87!"}, &out);
  EXPECT_EQ(out, "a");
  EXPECT_EQ(r.stop_index, 0u);
}

TEST(StopStringMatcherTest, FuzzAgainstReference) {
  std::mt19937 rng(99);
  const std::vector<std::string> alphabet = {"a", "b", "\xC3\xA9", " "};
  for (int trial = 0; trial < 5000; ++trial) {
    const auto rand_str = [&](int max_len) {
      std::string s;
      const int n = 1 + rng() % max_len;
      for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
      return s;
    };
    std::vector<std::string> stops = {rand_str(3), rand_str(4)};
    const std::string text = rand_str(20);
    // Reference: cut at the stop that completes first (longest on a tie).
    size_t best_end = std::string::npos, best_start = 0;
    std::optional<size_t> best;
    for (size_t i = 0; i < stops.size(); ++i) {
      const size_t p = text.find(stops[i]);
      if (p == std::string::npos) continue;
      const size_t e = p + stops[i].size();
      if (e < best_end || (e == best_end && p < best_start)) {
        best_end = e;
        best_start = p;
        best = i;
      }
    }
    const std::string want = best ? text.substr(0, best_start) : text;
    // Random chunking at character boundaries.
    std::vector<std::string> deltas;
    for (size_t i = 0; i < text.size();) {
      size_t j = i;
      const size_t chars = 1 + rng() % 4;
      for (size_t c = 0; c < chars && j < text.size(); ++c) {
        j += (static_cast<unsigned char>(text[j]) >= 0xC0) ? 2 : 1;
      }
      deltas.push_back(text.substr(i, j - i));
      i = j;
    }
    StopStringMatcher m(stops);
    std::string out;
    auto r = Feed(m, deltas, &out);
    ASSERT_EQ(out, want) << "trial " << trial;
    ASSERT_EQ(r.stop_index, best) << "trial " << trial;
    ASSERT_TRUE(IsValidUtf8(out));
  }
}

}  // namespace
}  // namespace tpserve::text
