#include "common/text/pretokenizer.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tpserve::text {
namespace {

std::vector<std::string> Split(std::string_view s) {
  std::vector<std::string> out;
  ForEachQwenPiece(s, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

using V = std::vector<std::string>;

TEST(PretokenizerTest, WordsAndSpaces) {
  EXPECT_EQ(Split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(Split("a  b"), (V{"a", " ", " b"}));       // \s+(?!\S) leaves one space
  EXPECT_EQ(Split("a   "), (V{"a", "   "}));          // trailing run kept whole
  EXPECT_EQ(Split("\tword"), (V{"\tword"}));
}

TEST(PretokenizerTest, Contractions) {
  EXPECT_EQ(Split("I'M YOU'RE we'll"), (V{"I", "'M", " YOU", "'RE", " we", "'ll"}));
  EXPECT_EQ(Split("'hello"), (V{"'hello"}));
}

TEST(PretokenizerTest, NumbersAndSymbols) {
  EXPECT_EQ(Split("v1.23"), (V{"v", "1", ".", "2", "3"}));
  EXPECT_EQ(Split("a ?!\n\nb"), (V{"a", " ?!\n\n", "b"}));
  EXPECT_EQ(Split("x \n\n y"), (V{"x", " \n\n", " y"}));
}

TEST(PretokenizerTest, Unicode) {
  EXPECT_EQ(Split("mixed中文English"), (V{"mixed中文English"}));
  EXPECT_EQ(Split("一二 三"), (V{"一二", " 三"}));
  EXPECT_EQ(Split("٣x"), (V{"٣", "x"}));  // Arabic-indic digit is \p{N}
}

TEST(PretokenizerTest, PiecesTileInput) {
  const std::string s = "  mixed\r\n\t 123 ..,! \xE3\x80\x80x's  ";
  std::string joined;
  for (const auto& p : Split(s)) {
    EXPECT_FALSE(p.empty());
    joined += p;
  }
  EXPECT_EQ(joined, s);
}

}  // namespace
}  // namespace tpserve::text
