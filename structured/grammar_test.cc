#include "structured/grammar.h"

#include <gtest/gtest.h>

#include "structured/testing.h"

namespace tpserve::structured {
namespace {

int Match(const Grammar& g, std::string_view text) { return testing::MatchState(g, text); }

TEST(GrammarTest, LiteralAlternationSharesPrefixes) {
  GrammarBuilder b;
  b.SetRule(b.root(), b.Alt({b.Literal("abc"), b.Literal("abd"), b.Literal("x")}));
  auto g = CompileGrammar(b);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(Match(*g, "abc"), 1);
  EXPECT_EQ(Match(*g, "abd"), 1);
  EXPECT_EQ(Match(*g, "ab"), 0);
  EXPECT_EQ(Match(*g, "abe"), -1);
  EXPECT_EQ(Match(*g, "abcd"), -1);
  // Determinized and minimized: root, "a", "ab", and one shared end.
  EXPECT_EQ(g->num_nodes(), 4) << g->DebugString();
}

TEST(GrammarTest, BoundedRepeat) {
  GrammarBuilder b;
  b.SetRule(b.root(), b.Repeat(b.ByteRange('0', '9'), 2, 4));
  auto g = CompileGrammar(b);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Match(*g, "1"), 0);
  EXPECT_EQ(Match(*g, "12"), 1);
  EXPECT_EQ(Match(*g, "1234"), 1);
  EXPECT_EQ(Match(*g, "12345"), -1);
  EXPECT_EQ(Match(*g, "1a"), -1);
}

TEST(GrammarTest, RecursiveRulesNest) {
  // paren := "(" paren* ")"
  GrammarBuilder b;
  RuleId paren = b.AddRule("paren");
  b.SetRule(paren, b.Seq({b.Literal("("), b.Star(b.Ref(paren)), b.Literal(")")}));
  b.SetRule(b.root(), b.Ref(paren));
  auto g = CompileGrammar(b);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Match(*g, "()"), 1);
  EXPECT_EQ(Match(*g, "(()(()))"), 1);
  EXPECT_EQ(Match(*g, "(()"), 0);
  EXPECT_EQ(Match(*g, "())"), -1);
}

TEST(GrammarTest, NullableCallsAndEmptyRoot) {
  GrammarBuilder b;
  RuleId opt = b.AddRule("opt");
  b.SetRule(opt, b.Optional(b.Literal("a")));
  b.SetRule(b.root(), b.Seq({b.Ref(opt), b.Ref(opt), b.Literal("b")}));
  auto g = CompileGrammar(b);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Match(*g, "b"), 1);
  EXPECT_EQ(Match(*g, "ab"), 1);
  EXPECT_EQ(Match(*g, "aab"), 1);
  EXPECT_EQ(Match(*g, "aaab"), -1);
}

TEST(GrammarTest, LeftRecursionIsRejected) {
  GrammarBuilder b;
  RuleId e = b.AddRule("expr");
  RuleId opt = b.AddRule("opt");
  b.SetRule(opt, b.Optional(b.Literal("-")));
  b.SetRule(e, b.Alt({b.Literal("1"), b.Seq({b.Ref(opt), b.Ref(e), b.Literal("+1")})}));
  b.SetRule(b.root(), b.Ref(e));
  auto g = CompileGrammar(b);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("'expr' is left-recursive"), std::string::npos);
}

TEST(GrammarTest, TooLargeIsAnError) {
  GrammarBuilder b;
  b.SetRule(b.root(), b.Repeat(b.Repeat(b.ByteRange('a', 'z'), 0, 100), 0, 100));
  auto g = CompileGrammar(b, GrammarLimits{.max_nodes = 1000});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("too large"), std::string::npos);
}

TEST(GrammarTest, CodepointsEncodeUtf8Exactly) {
  GrammarBuilder b;
  // Everything but 'a' and U+4E2D (中).
  b.SetRule(b.root(), b.Codepoints(ComplementRanges({{'a', 'a'}, {0x4E2D, 0x4E2D}})));
  auto g = CompileGrammar(b);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(Match(*g, "b"), 1);
  EXPECT_EQ(Match(*g, "a"), -1);
  EXPECT_EQ(Match(*g, "\xE4\xB8\xAD"), -1);        // 中
  EXPECT_EQ(Match(*g, "\xE4\xB8\xAE"), 1);         // U+4E2E
  EXPECT_EQ(Match(*g, "\xC3\xA9"), 1);             // é
  EXPECT_EQ(Match(*g, "\xF0\x9F\x98\x80"), 1);     // 😀
  EXPECT_EQ(Match(*g, "\xED\xA0\x80"), -1);        // a surrogate
  EXPECT_EQ(Match(*g, "\xC0\x80"), -1);            // overlong
  EXPECT_EQ(Match(*g, "\xF4\x90\x80\x80"), -1);    // past U+10FFFF
}

}  // namespace
}  // namespace tpserve::structured
