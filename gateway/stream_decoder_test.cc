#include "gateway/stream_decoder.h"

#include <gtest/gtest.h>

#include <map>

namespace tpserve::gateway {
namespace {

// A toy vocabulary: ids map to byte strings (4 and 5 split "é" = C3 A9).
std::string_view Bytes(int id) {
  static const std::map<int, std::string> kVocab = {
      {1, "Hello"}, {2, " world"}, {3, "!"}, {4, "\xC3"}, {5, "\xA9"}, {6, "<|im_end|>"},
      {7, "ST"},    {8, "OP"},     {9, "x"}};
  auto it = kVocab.find(id);
  return it == kVocab.end() ? std::string_view() : std::string_view(it->second);
}

std::string PushAll(TokenStreamDecoder& d, const std::vector<int>& ids, DecodedPiece* last) {
  std::string text;
  for (int id : ids) {
    *last = d.Push(std::vector<int>{id});
    text += last->text;
    if (last->stop_string) break;
  }
  return text;
}

TEST(StreamDecoderTest, PlainTextPassesThrough) {
  TokenStreamDecoder d(Bytes, {});
  DecodedPiece last;
  EXPECT_EQ(PushAll(d, {1, 2, 3}, &last), "Hello world!");
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamDecoderTest, SplitUtf8IsHeldUntilComplete) {
  TokenStreamDecoder d(Bytes, {});
  EXPECT_EQ(d.Push(std::vector<int>{4}).text, "");
  EXPECT_EQ(d.Push(std::vector<int>{5}).text, "\xC3\xA9");
  EXPECT_EQ(d.Push(std::vector<int>{4}).text, "");
  EXPECT_EQ(d.Flush(), "\xEF\xBF\xBD");  // truncated char -> U+FFFD
}

TEST(StreamDecoderTest, StopStringAcrossTokensStopsAndIsNotEmitted) {
  TokenStreamDecoder d(Bytes, {"STOP"});
  DecodedPiece last;
  std::string text = PushAll(d, {1, 7, 8, 9}, &last);
  EXPECT_EQ(text, "Hello");
  ASSERT_TRUE(last.stop_string.has_value());
  EXPECT_EQ(*last.stop_string, "STOP");
  EXPECT_EQ(d.Push(std::vector<int>{1}).text, "");  // nothing after a stop
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamDecoderTest, PartialStopMatchIsReleasedWhenItFails) {
  TokenStreamDecoder d(Bytes, {"STOP"});
  EXPECT_EQ(d.Push(std::vector<int>{7}).text, "");    // "ST" may start STOP
  EXPECT_EQ(d.Push(std::vector<int>{9}).text, "STx");  // no longer can
  EXPECT_EQ(d.Push(std::vector<int>{7}).text, "");
  EXPECT_EQ(d.Flush(), "ST");
}

TEST(StopMatcherTest, EarliestMatchWins) {
  StopMatcher m({"world", "lo"});
  DecodedPiece p = m.Push("Hello world");
  EXPECT_EQ(p.text, "Hel");
  EXPECT_EQ(p.stop_string, "lo");
}

TEST(StopMatcherTest, MatchInsideOneChunk) {
  StopMatcher m({"\n\n"});
  DecodedPiece p = m.Push("a\n");
  EXPECT_EQ(p.text, "a");
  p = m.Push("\nb");
  EXPECT_EQ(p.text, "");
  EXPECT_EQ(p.stop_string, "\n\n");
}

TEST(CompleteUtf8PrefixTest, Cases) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xC3"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xBD"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xBD\xA0"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
}

}  // namespace
}  // namespace tpserve::gateway
