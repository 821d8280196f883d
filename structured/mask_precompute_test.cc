// The background mask precompute (MaskPrecomputer) against the lazy cache:
// masks along random generations are identical whether the pool fills the
// cache ahead of time, races the walk, or is absent.
#include "structured/mask_precompute.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/text/tokenizer.h"
#include "structured/grammar_cache.h"
#include "structured/spec.h"

namespace tpserve::structured {
namespace {

constexpr char kTokenizer[] = "tests/fixtures/tiny-qwen2-chat/tokenizer.json";

std::shared_ptr<const TokenVocabulary> QwenVocab() {
  static auto* vocab = [] {
    auto tok = text::Tokenizer::Load(kTokenizer);
    EXPECT_TRUE(tok.ok()) << tok.status();
    auto v = TokenVocabulary::FromTokenizer(**tok, {151643, 151645}, /*mask_size=*/151936);
    EXPECT_TRUE(v.ok()) << v.status();
    return new std::shared_ptr<const TokenVocabulary>(*v);
  }();
  return *vocab;
}

std::vector<std::string> Specs() {
  using J = nlohmann::ordered_json;
  return {
      JsonSchemaSpec(J::parse(R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
          "n": {"type": "integer", "minimum": -5, "maximum": 300}, "tags": {"type": "array",
          "items": {"enum": ["a", "b c"]}, "maxItems": 3}}, "required": ["name", "n"]})")),
      JsonObjectSpec(),
  };
}

std::shared_ptr<const CompiledGrammar> Compile(const std::string& spec) {
  auto g = GrammarFromSpec(spec);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::make_shared<const CompiledGrammar>(std::move(*g), QwenVocab());
}

// The masks of `steps` tokens drawn (seeded) among the allowed ones,
// concatenated; restarts after EOS.
std::vector<uint32_t> WalkMasks(const std::shared_ptr<const CompiledGrammar>& compiled, int steps,
                                uint32_t seed) {
  std::mt19937 rng(seed);
  const int words = compiled->vocab().mask_words();
  std::vector<uint32_t> all, mask(words);
  auto m = std::make_unique<GrammarMatcher>(compiled);
  std::vector<int32_t> allowed;
  for (int i = 0; i < steps; ++i) {
    m->FillNextTokenBitmask(mask);
    all.insert(all.end(), mask.begin(), mask.end());
    allowed.clear();
    for (int32_t id = 0; id < words * 32; ++id) {
      if ((mask[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
    }
    EXPECT_FALSE(allowed.empty());
    if (allowed.empty()) break;
    const int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
    EXPECT_TRUE(m->AcceptToken(id));
    if (m->IsTerminated()) m = std::make_unique<GrammarMatcher>(compiled);
  }
  return all;
}

int NodesWithBytes(const Grammar& g) {
  int n = 0;
  for (NodeId i = 0; i < g.num_nodes(); ++i) n += g.has_byte_edges(i);
  return n;
}

TEST(MaskPrecomputeTest, MasksAreIdenticalWithAndWithoutThePrecompute) {
  for (const std::string& spec : Specs()) {
    const std::vector<uint32_t> lazy = WalkMasks(Compile(spec), 150, 7);
    // The pool races the walk: the walk computes what the pool has not
    // claimed yet and waits for what it has.
    MaskPrecomputer pool(2);
    auto racing = Compile(spec);
    pool.Submit(racing);
    EXPECT_EQ(WalkMasks(racing, 150, 7), lazy);
    pool.WaitIdle();
    EXPECT_EQ(racing->cache().num_computed(), NodesWithBytes(racing->grammar()));
    // Precomputed before the walk.
    auto ahead = Compile(spec);
    pool.Submit(ahead);
    pool.WaitIdle();
    EXPECT_EQ(ahead->cache().num_computed(), NodesWithBytes(ahead->grammar()));
    EXPECT_EQ(WalkMasks(ahead, 150, 7), lazy);
  }
}

TEST(MaskPrecomputeTest, ManyMatchersShareOneCacheWhileItFills) {
  const std::string spec = Specs()[0];
  std::vector<std::vector<uint32_t>> lazy;
  for (uint32_t seed = 0; seed < 4; ++seed) lazy.push_back(WalkMasks(Compile(spec), 60, seed));
  MaskPrecomputer pool(1);
  auto shared = Compile(spec);
  pool.Submit(shared);
  std::vector<std::vector<uint32_t>> got(4);
  std::vector<std::thread> walkers;
  for (uint32_t seed = 0; seed < 4; ++seed) {
    walkers.emplace_back([&, seed] { got[seed] = WalkMasks(shared, 60, seed); });
  }
  for (std::thread& t : walkers) t.join();
  EXPECT_EQ(got, lazy);
}

TEST(MaskPrecomputeTest, AGrammarNobodyHoldsIsAbandoned) {
  MaskPrecomputer pool(1);
  auto g = GrammarFromSpec(Specs()[0]);
  ASSERT_TRUE(g.ok());
  int computed_at_delete = -1;
  std::shared_ptr<const CompiledGrammar> grammar(new CompiledGrammar(std::move(*g), QwenVocab()),
                                                 [&](const CompiledGrammar* c) {
                                                   computed_at_delete = c->cache().num_computed();
                                                   delete c;
                                                 });
  pool.Submit(std::move(grammar));  // the pool is its only holder
  pool.WaitIdle();
  EXPECT_EQ(computed_at_delete, 0);
}

TEST(MaskPrecomputeTest, TheGrammarCacheFillsNewGrammarsInTheBackground) {
  GrammarCache cache(QwenVocab(), {}, 8, /*precompute_threads=*/1);
  auto g = cache.Get(Specs()[1]);
  ASSERT_TRUE(g.ok()) << g.status();
  const int want = NodesWithBytes((*g)->grammar());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*g)->cache().num_computed() < want && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ((*g)->cache().num_computed(), want);  // no matcher asked for a single mask
}

}  // namespace
}  // namespace tpserve::structured
