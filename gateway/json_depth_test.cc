#include "gateway/json_depth.h"

#include <gtest/gtest.h>

#include <string>

namespace tpserve::gateway {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonDepthTest, CountsArraysAndObjects) {
  EXPECT_TRUE(JsonDepthWithin("1", 0));
  EXPECT_TRUE(JsonDepthWithin(Nested(3), 3));
  EXPECT_FALSE(JsonDepthWithin(Nested(4), 3));
  EXPECT_TRUE(JsonDepthWithin(R"({"a": [{"b": 1}], "c": {}})", 3));
  EXPECT_FALSE(JsonDepthWithin(R"({"a": [{"b": [1]}]})", 3));
  // Siblings do not add up.
  EXPECT_TRUE(JsonDepthWithin("[[1],[2],[[3]]]", 3));
}

TEST(JsonDepthTest, BracketsInsideStringsDoNotCount) {
  EXPECT_TRUE(JsonDepthWithin(R"(["[[[[{{{{"])", 1));
  // An escaped quote does not end the string; an escaped backslash does not
  // escape the quote after it.
  EXPECT_TRUE(JsonDepthWithin(R"(["\"[[[[", "x"])", 1));
  EXPECT_FALSE(JsonDepthWithin(R"(["\\", [[1]]])", 2));
}

TEST(JsonDepthTest, StrayClosersBuyNoLevels) {
  EXPECT_FALSE(JsonDepthWithin("]]]" + Nested(4), 3));
}

TEST(JsonDepthTest, DefaultLimitRefusesTheIssueReproducer) {
  // issue 22: 70,000 nested arrays in a message's content crashed the
  // gateway; the whole body is about 140 KB.
  std::string body = R"({"messages":[{"role":"user","content":)" + Nested(70000) + "}]}";
  EXPECT_FALSE(JsonDepthWithin(body));
  EXPECT_TRUE(JsonDepthWithin(Nested(kMaxJsonDepth)));
  EXPECT_FALSE(JsonDepthWithin(Nested(kMaxJsonDepth + 1)));
}

}  // namespace
}  // namespace tpserve::gateway
