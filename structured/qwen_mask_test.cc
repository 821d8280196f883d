// Token masks over the real Qwen2 vocabulary (151k byte-level BPE tokens)
// against the stepper's verdict token by token, along random generations.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/text/tokenizer.h"
#include "structured/matcher.h"
#include "structured/spec.h"
#include "structured/testing.h"

namespace tpserve::structured {
namespace {

constexpr char kTokenizer[] = "tests/fixtures/tiny-qwen2-chat/tokenizer.json";

class QwenMaskTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto tok = text::Tokenizer::Load(kTokenizer);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto vocab = TokenVocabulary::FromTokenizer(**tok, {151643, 151645}, /*mask_size=*/151936);
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    vocab_ = new std::shared_ptr<const TokenVocabulary>(*vocab);
  }
  static std::shared_ptr<const TokenVocabulary>* vocab_;
};
std::shared_ptr<const TokenVocabulary>* QwenMaskTest::vocab_ = nullptr;

bool Bit(const std::vector<uint32_t>& w, int32_t id) { return (w[id >> 5] >> (id & 31)) & 1; }

TEST_F(QwenMaskTest, MasksMatchTheStepperOnSampledTokens) {
  using J = nlohmann::ordered_json;
  const std::vector<std::string> specs = {
      JsonSchemaSpec(J::parse(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
          "n": {"type": "integer", "minimum": -5, "maximum": 300}, "ok": {"type": "boolean"},
          "tags": {"type": "array", "items": {"enum": ["a", "b c", "\u4e2d"]}, "maxItems": 3}},
          "required": ["name", "n"]})")),
      JsonSchemaSpec(J::parse(R"({"$defs": {"t": {"type": "object", "properties": {"v": {"type": "number"},
          "kids": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "required": ["v", "kids"]}},
          "$ref": "#/$defs/t"})")),
      JsonObjectSpec(),
      RegexSpec("[a-z]+( [a-z]+)*\\."),
      ToolCallsSpec({{"lookup", J::parse(R"({"type": "object", "properties": {"q": {"type": "string"}},
          "required": ["q"]})")}}, /*parallel=*/true),
  };
  const TokenVocabulary& vocab = **vocab_;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> any_id(0, vocab.size() - 1);
  int checked = 0, allowed_seen = 0;
  for (const std::string& spec : specs) {
    auto g = GrammarFromSpec(spec);
    ASSERT_TRUE(g.ok()) << g.status();
    auto compiled = std::make_shared<const CompiledGrammar>(std::move(*g), *vocab_);
    for (int walk = 0; walk < 2; ++walk) {
      GrammarMatcher m(compiled);
      std::string prefix;
      std::vector<uint32_t> mask(vocab.mask_words());
      for (int step = 0; step < 25 && !m.IsTerminated(); ++step) {
        m.FillNextTokenBitmask(mask);
        testing::PrefixChecker ref(compiled->grammar(), prefix);
        ASSERT_TRUE(ref.viable());
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < vocab.size(); ++id) {
          if (Bit(mask, id)) allowed.push_back(id);
        }
        ASSERT_FALSE(allowed.empty()) << spec << " after " << prefix;
        // Every allowed token (up to 400 of them) and 400 random ids.
        std::vector<int32_t> sample = allowed;
        std::shuffle(sample.begin(), sample.end(), rng);
        sample.resize(std::min<size_t>(sample.size(), 400));
        for (int i = 0; i < 400; ++i) sample.push_back(any_id(rng));
        for (int32_t id : sample) {
          const bool want = vocab.is_eos(id) ? ref.complete() : vocab.matchable(id) && ref.Viable(vocab.bytes(id));
          ASSERT_EQ(Bit(mask, id), want) << spec << "\nafter '" << prefix << "' token " << id << " '"
                                         << vocab.bytes(id) << "'";
          ++checked;
        }
        allowed_seen += allowed.size();
        // Favour short tokens half the time so walks also reach closing brackets.
        int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        if (step % 2 == 1) {
          for (int32_t cand : allowed) {
            if (vocab.bytes(cand).size() < vocab.bytes(id).size() || vocab.is_eos(cand)) id = cand;
            if (vocab.is_eos(id)) break;
          }
        }
        ASSERT_TRUE(m.AcceptToken(id));
        if (!vocab.is_eos(id)) prefix += vocab.bytes(id);
      }
    }
  }
  EXPECT_GT(checked, 10000);
  EXPECT_GT(allowed_seen, 1000);
}

TEST_F(QwenMaskTest, GeneratedDocumentsAreComplete) {
  // Taking EOS when allowed, else a closing bracket, else the shortest
  // allowed token ends a document: the grammar never traps the model.
  const TokenVocabulary& vocab = **vocab_;
  auto g = GrammarFromSpec(JsonSchemaSpec(nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}, "minItems": 2}},
          "required": ["a"]})")));
  ASSERT_TRUE(g.ok());
  auto compiled = std::make_shared<const CompiledGrammar>(std::move(*g), *vocab_);
  GrammarMatcher m(compiled);
  std::vector<uint32_t> mask(vocab.mask_words());
  std::string text;
  for (int step = 0; step < 200 && !m.IsTerminated(); ++step) {
    m.FillNextTokenBitmask(mask);
    int32_t best = -1;
    for (int32_t id = 0; id < vocab.size(); ++id) {
      if (!Bit(mask, id)) continue;
      if (vocab.is_eos(id) || vocab.bytes(id) == "]" || vocab.bytes(id) == "}") {
        best = id;
        if (vocab.is_eos(id)) break;
        continue;
      }
      if (best >= 0 && (vocab.bytes(best) == "]" || vocab.bytes(best) == "}")) continue;
      if (best < 0 || vocab.bytes(id).size() < vocab.bytes(best).size()) best = id;
    }
    ASSERT_GE(best, 0);
    ASSERT_TRUE(m.AcceptToken(best));
    if (!vocab.is_eos(best)) text += vocab.bytes(best);
  }
  EXPECT_TRUE(m.IsTerminated()) << text;
  EXPECT_TRUE(testing::Matches(compiled->grammar(), text)) << text;
}

// What a sampler does: the argmax of random logits among the allowed tokens
// (as tpserve_structured_bench on the GPU, over the 7B config's padded
// vocabulary), which the matcher must then accept.
TEST_F(QwenMaskTest, ArgmaxOfRandomLogitsUnderTheMaskIsAccepted) {
  auto tok = text::Tokenizer::Load(kTokenizer);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto padded = TokenVocabulary::FromTokenizer(**tok, {151643, 151645}, /*mask_size=*/152064);
  ASSERT_TRUE(padded.ok()) << padded.status();
  const TokenVocabulary& vocab = **padded;
  auto g = GrammarFromSpec(
      R"({"type":"json_schema","schema":{"type":"object","properties":{"items":{"type":"array",)"
      R"("items":{"type":"object","properties":{"name":{"type":"string","maxLength":40},)"
      R"("qty":{"type":"integer","minimum":0,"maximum":100000},"note":{"type":"string","maxLength":60}},)"
      R"("required":["name","qty","note"]},"minItems":1,"maxItems":30}},"required":["items"]}})");
  ASSERT_TRUE(g.ok()) << g.status();
  auto compiled = std::make_shared<const CompiledGrammar>(std::move(*g), *padded);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> logits(vocab.size());
  std::vector<uint32_t> mask(vocab.mask_words());
  for (int walk = 0; walk < 4; ++walk) {
    GrammarMatcher m(compiled);
    std::string text;
    for (int step = 0; step < 150 && !m.IsTerminated(); ++step) {
      for (float& x : logits) x = nd(rng);
      m.FillNextTokenBitmask(mask);
      int32_t best = -1;
      for (int32_t id = 0; id < vocab.size(); ++id) {
        if (Bit(mask, id) && (best < 0 || logits[id] > logits[best])) best = id;
      }
      ASSERT_GE(best, 0) << text;
      ASSERT_TRUE(m.AcceptToken(best)) << "walk " << walk << " step " << step << ": token " << best << " '"
                                       << vocab.bytes(best) << "' after '" << text << "'";
      if (!vocab.is_eos(best)) text += vocab.bytes(best);
    }
  }
}

}  // namespace
}  // namespace tpserve::structured
