#include "structured/matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "structured/testing.h"

namespace tpserve::structured {
namespace {

using testing::BruteForceMask;
using testing::SmallVocab;

std::shared_ptr<const CompiledGrammar> Compile(const GrammarBuilder& b,
                                               std::shared_ptr<const TokenVocabulary> vocab) {
  auto g = CompileGrammar(b);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::make_shared<const CompiledGrammar>(std::move(*g), std::move(vocab));
}

// list := "[" (item ("," item)*)? "]"; item := list | [a-c]+ ; nested, with a
// rule end inside many tokens, so masks need the stack (uncertain tokens).
GrammarBuilder NestedLists() {
  GrammarBuilder b;
  RuleId list = b.AddRule("list");
  RuleId item = b.AddRule("item");
  b.SetRule(item, b.Alt({b.Ref(list), b.Plus(b.ByteRange('a', 'c'))}));
  b.SetRule(list, b.Seq({b.Literal("["),
                         b.Optional(b.Seq({b.Ref(item), b.Star(b.Seq({b.Literal(","), b.Ref(item)}))})),
                         b.Literal("]")}));
  b.SetRule(b.root(), b.Ref(list));
  return b;
}

std::vector<std::string> RandomTokens(std::mt19937* rng, const std::string& alphabet, int n) {
  std::vector<std::string> out;
  for (char c : alphabet) out.push_back(std::string(1, c));  // every byte reachable
  std::uniform_int_distribution<int> len(2, 5), pick(0, alphabet.size() - 1);
  while (static_cast<int>(out.size()) < n) {
    std::string t;
    for (int i = len(*rng); i > 0; --i) t += alphabet[pick(*rng)];
    out.push_back(t);
  }
  return out;
}

TEST(MatcherTest, MaskEqualsBruteForceOnRandomWalks) {
  std::mt19937 rng(7);
  auto vocab = SmallVocab(RandomTokens(&rng, "[],abcx", 400));
  auto compiled = Compile(NestedLists(), vocab);
  for (int walk = 0; walk < 20; ++walk) {
    GrammarMatcher m(compiled);
    std::string prefix;
    for (int step = 0; step < 30 && !m.IsTerminated(); ++step) {
      std::vector<uint32_t> fast(vocab->mask_words());
      m.FillNextTokenBitmask(fast);
      ASSERT_EQ(fast, BruteForceMask(compiled, prefix)) << "after '" << prefix << "'";
      std::vector<int32_t> allowed;
      for (int32_t id = 0; id < vocab->size(); ++id) {
        if ((fast[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
      }
      ASSERT_FALSE(allowed.empty());
      const int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
      ASSERT_TRUE(m.AcceptToken(id));
      if (!vocab->is_eos(id)) prefix += vocab->bytes(id);
    }
  }
  EXPECT_GT(compiled->cache().num_computed(), 3);
}

TEST(MatcherTest, EosOnlyWhenComplete) {
  auto vocab = SmallVocab({"[", "]", "a", "[a]", "]]"});
  const int32_t eos = 5;
  auto compiled = Compile(NestedLists(), vocab);
  GrammarMatcher m(compiled);
  EXPECT_FALSE(m.AcceptToken(eos));
  EXPECT_FALSE(m.AcceptToken(1));  // "]" first
  EXPECT_TRUE(m.AcceptToken(0));
  EXPECT_TRUE(m.AcceptToken(3));
  EXPECT_FALSE(m.IsComplete());
  EXPECT_FALSE(m.AcceptToken(4));  // "]]" closes one list too many
  EXPECT_TRUE(m.AcceptToken(1));
  EXPECT_TRUE(m.IsComplete());
  EXPECT_FALSE(m.CanContinue());
  std::vector<uint32_t> mask(vocab->mask_words());
  m.FillNextTokenBitmask(mask);
  EXPECT_EQ(mask[0], 1u << eos);  // complete: only EOS
  EXPECT_TRUE(m.AcceptToken(eos));
  EXPECT_TRUE(m.IsTerminated());
  EXPECT_FALSE(m.AcceptToken(0));
  m.FillNextTokenBitmask(mask);
  EXPECT_EQ(mask[0], 1u << eos);  // a step scheduled past the end stays defined
}

TEST(MatcherTest, RejectedTokenLeavesStateUnchanged) {
  auto vocab = SmallVocab({"[a", "x", "]"});
  auto compiled = Compile(NestedLists(), vocab);
  GrammarMatcher m(compiled);
  ASSERT_TRUE(m.AcceptToken(0));
  EXPECT_FALSE(m.AcceptToken(1));
  EXPECT_TRUE(m.AcceptToken(2));
  EXPECT_TRUE(m.IsComplete());
}

TEST(MatcherTest, SpecialAndEmptyTokensNeverMatch) {
  std::vector<std::string> bytes = {"[", "]", "", "[]", "<eos>"};
  auto vocab = std::make_shared<const TokenVocabulary>(bytes, std::vector<int32_t>{4},
                                                       std::vector<int32_t>{3}, /*mask_size=*/40);
  EXPECT_EQ(vocab->size(), 40);
  EXPECT_EQ(vocab->mask_words(), 2);
  auto compiled = Compile(NestedLists(), vocab);
  GrammarMatcher m(compiled);
  std::vector<uint32_t> mask(2);
  m.FillNextTokenBitmask(mask);
  EXPECT_EQ(mask[0], 1u);  // only "[": "[]" is special, id 2 is empty
  EXPECT_EQ(mask[1], 0u);
  EXPECT_FALSE(m.AcceptToken(3));
  EXPECT_FALSE(m.AcceptToken(39));
}

}  // namespace
}  // namespace tpserve::structured
