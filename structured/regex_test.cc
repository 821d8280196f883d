#include "structured/regex.h"

#include <gtest/gtest.h>

#include <string>

#include "structured/grammar.h"
#include "structured/testing.h"

namespace tpserve::structured {
namespace {

using testing::IsPrefix;
using testing::Matches;

absl::StatusOr<Grammar> FromRegex(std::string_view pattern, RegexOptions opt = {}) {
  GrammarBuilder b;
  auto e = AddRegex(&b, pattern, opt);
  if (!e.ok()) return e.status();
  b.SetRule(b.root(), *e);
  return CompileGrammar(b);
}

struct Case {
  const char* pattern;
  std::vector<const char*> good;
  std::vector<const char*> bad;
};

TEST(RegexTest, AcceptsAndRejects) {
  const std::vector<Case> cases = {
      {"abc", {"abc"}, {"ab", "abcd", "abd"}},
      {"a|bc|", {"a", "bc", ""}, {"b", "abc"}},
      {"[a-c]+x?", {"a", "abcx", "cc"}, {"", "x", "ad"}},
      {"[^a-c]", {"d", "\xE4\xB8\xAD", "\n"}, {"a", "b"}},
      {"\\d{3}-\\d{2,4}", {"123-45", "123-4567"}, {"12-45", "123-4", "123-45678"}},
      {"x{2,}", {"xx", "xxxxx"}, {"x"}},
      {"(ab)*c", {"c", "abc", "ababc"}, {"abac", "ab"}},
      {"(?:a|b)(?<n>c)(?P<m>d)", {"acd", "bcd"}, {"cd"}},
      {"\\w+@\\w+\\.com", {"a_1@b.com"}, {"a@b.org", "@b.com"}},
      {"\\s\\S", {" a", "\tb"}, {"  ", "ab"}},
      {"[\\d.-]+", {"1.5", "-2"}, {"a"}},
      {"a.c", {"abc", "a\xC3\xA9"
                      "c"},
       {"a\nc"}},
      {"\\x41\\u00e9\\.", {"A\xC3\xA9."}, {"Ae."}},
      {"^yes|no$", {"yes", "no"}, {"yesno"}},
      {"a{1}b{0}c{,2}", {"ac{,2}"}, {"abc"}},  // "{,2}" is not a quantifier: literal
      {"[]a]", {"]", "a"}, {"b"}},
      {"\u4e2d+", {"\u4e2d\u4e2d"}, {"\u4e2e"}},
  };
  for (const Case& c : cases) {
    auto g = FromRegex(c.pattern);
    ASSERT_TRUE(g.ok()) << c.pattern << ": " << g.status();
    for (const char* s : c.good) EXPECT_TRUE(Matches(*g, s)) << c.pattern << " ~ " << s;
    for (const char* s : c.bad) EXPECT_FALSE(Matches(*g, s)) << c.pattern << " !~ " << s;
  }
}

TEST(RegexTest, SearchSemanticsForSchemaPatterns) {
  RegexOptions search{.search = true};
  auto unanchored = FromRegex("b+", search);
  ASSERT_TRUE(unanchored.ok());
  EXPECT_TRUE(Matches(*unanchored, "abbc"));
  EXPECT_FALSE(Matches(*unanchored, "ac"));
  auto anchored = FromRegex("^b+$", search);
  ASSERT_TRUE(anchored.ok());
  EXPECT_TRUE(Matches(*anchored, "bb"));
  EXPECT_FALSE(Matches(*anchored, "abb"));
  auto start_only = FromRegex("^b", search);
  ASSERT_TRUE(start_only.ok());
  EXPECT_TRUE(Matches(*start_only, "bcd"));
  EXPECT_FALSE(Matches(*start_only, "ab"));
}

TEST(RegexTest, JsonStringModeEscapes) {
  auto g = FromRegex("[a\"\\\\\n]+", RegexOptions{.json_string = true});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(Matches(*g, "a\\\"\\\\\\n"));  // a \" \\ \n
  EXPECT_FALSE(Matches(*g, "a\""));          // a raw quote would end the string
  EXPECT_FALSE(Matches(*g, "\n"));           // a raw newline is invalid JSON
  auto dot = FromRegex(".", RegexOptions{.json_string = true});
  ASSERT_TRUE(dot.ok());
  EXPECT_TRUE(Matches(*dot, "\\u0001"));
  EXPECT_TRUE(IsPrefix(*dot, "\\u00"));
}

TEST(RegexTest, UnsupportedFeaturesAreNamed) {
  const std::vector<std::pair<const char*, const char*>> cases = {
      {"a(?=b)", "lookaround"}, {"a(?!b)", "lookaround"},   {"(?<=a)b", "lookaround"},
      {"(a)\\1", "backreferences"}, {"\\bword", "word boundaries"}, {"(?i)a", "inline flags"},
      {"a++", "possessive"},     {"\\p{L}", "Unicode property"}, {"a^b", "anchors"},
      {"(ab", "missing ')'"},    {"ab)", "unbalanced"},      {"[ab", "missing ']'"},
      {"*a", "nothing to repeat"}, {"[z-a]", "out of order"}, {"a{3,2}", "n < m"},
      {"\\q", "unknown escape"},
  };
  for (const auto& [pattern, want] : cases) {
    auto g = FromRegex(pattern);
    ASSERT_FALSE(g.ok()) << pattern;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << pattern;
    EXPECT_NE(g.status().message().find(want), std::string::npos)
        << pattern << ": " << g.status().message();
  }
}

}  // namespace
}  // namespace tpserve::structured
