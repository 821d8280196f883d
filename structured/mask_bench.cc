// Token-mask cost on a real vocabulary: per schema, compile time, the time
// to precompute every node's mask, and the per-step mask and accept times
// along random walks (each step samples uniformly among allowed tokens):
// cold (node masks computed on first use), cold with the background
// precompute (MaskPrecomputer, `threads` threads) started with the walk, and
// warm.
//
// With `forward_us` > 0 the cold walks model a GPU step: each mask is built
// while a forward pass of that length runs (the host sleeps out the rest),
// so a step takes max(forward, mask) and the pool works during the sleeps;
// the "step" columns give that time relative to the forward alone.
//
//   bazel run -c opt //structured:mask_bench -- [tokenizer.json] [steps] [threads] [forward_us]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/text/tokenizer.h"
#include "structured/mask_precompute.h"
#include "structured/matcher.h"
#include "structured/spec.h"

namespace tpserve::structured {
namespace {

using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / v.size();
}

struct BenchCase {
  const char* name;
  std::string spec;
};

std::vector<BenchCase> Cases() {
  using J = nlohmann::ordered_json;
  const J person = J::parse(R"({"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 40},
      "age": {"type": "integer", "minimum": 0, "maximum": 150},
      "email": {"type": "string", "format": "email"},
      "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
      "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                  "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city"]},
      "status": {"enum": ["active", "inactive", "pending"]},
      "score": {"type": "number"}},
    "required": ["name", "age", "status"]})");
  const J tree = J::parse(R"({"$defs": {"node": {"type": "object", "properties": {
      "label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["label", "children"]}}, "$ref": "#/$defs/node"})");
  return {
      {"flat object (2 fields)", JsonSchemaSpec(J::parse(
           R"({"type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
               "required": ["answer", "confidence"]})"))},
      {"mid-size (person, 7 fields)", JsonSchemaSpec(person)},
      {"recursive $ref tree", JsonSchemaSpec(tree)},
      {"json_object", JsonObjectSpec()},
      {"regex (phone)", RegexSpec("\\(\\d{3}\\) \\d{3}-\\d{4}")},
      {"choice (3)", ChoiceSpec({"positive", "negative", "neutral"})},
  };
}

int Main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "tests/fixtures/tiny-qwen2-chat/tokenizer.json";
  const int steps = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const double forward_us = argc > 4 ? std::atof(argv[4]) : 0;
  auto tok = text::Tokenizer::Load(path);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  std::vector<int32_t> eos;
  for (const char* t : {"<|endoftext|>", "<|im_end|>"}) {
    if (auto id = (*tok)->TokenToId(t)) eos.push_back(*id);
  }
  auto vocab = TokenVocabulary::FromTokenizer(**tok, eos);
  if (!vocab.ok()) return 1;
  std::printf("vocabulary: %d tokens (%zu matchable), %s\n\n", (*vocab)->size(), (*vocab)->sorted().size(),
              path.c_str());
  std::printf("background precompute: %d thread(s); cold walks: %d steps\n\n", threads, std::min(steps, 200));
  std::printf("modeled forward pass: %.0f µs a step\n\n", forward_us);
  std::printf("| schema | nodes | compile ms | all masks ms | cold walk mask µs p50/p99/mean | step | "
              "+ background µs p50/p99/mean | step | warm mask µs p50 | p99 | max | accept µs p50 | tokens/doc |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const BenchCase& c : Cases()) {
    auto t0 = Clock::now();
    auto grammar = GrammarFromSpec(c.spec);
    if (!grammar.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name, std::string(grammar.status().message()).c_str());
      return 1;
    }
    const double compile_ms = Micros(Clock::now() - t0) / 1000;
    const int nodes = grammar->num_nodes();
    // Cold: a fresh grammar whose node masks fill in as the walk reaches them.
    auto run = [&](const std::shared_ptr<const CompiledGrammar>& compiled, int n, uint32_t seed,
                   std::vector<double>* mask_us, std::vector<double>* accept_us, int* docs) {
      std::mt19937 rng(seed);
      std::vector<uint32_t> words((*vocab)->mask_words());
      auto m = std::make_unique<GrammarMatcher>(compiled);
      std::vector<int32_t> allowed;
      for (int i = 0; i < n; ++i) {
        auto s = Clock::now();
        m->FillNextTokenBitmask(words);
        mask_us->push_back(Micros(Clock::now() - s));
        if (forward_us > 0 && mask_us->back() < forward_us) {
          std::this_thread::sleep_for(std::chrono::duration<double, std::micro>(forward_us - mask_us->back()));
        }
        allowed.clear();
        for (int32_t id = 0; id < (*vocab)->size(); ++id) {
          if ((words[id >> 5] >> (id & 31)) & 1) allowed.push_back(id);
        }
        const int32_t id = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        s = Clock::now();
        if (!m->AcceptToken(id)) {
          std::fprintf(stderr, "%s: masked-in token %d refused\n", c.name, id);
          std::exit(1);
        }
        accept_us->push_back(Micros(Clock::now() - s));
        if (m->IsTerminated()) {
          ++*docs;
          m = std::make_unique<GrammarMatcher>(compiled);
        }
      }
    };
    auto cold = std::make_shared<const CompiledGrammar>(std::move(*grammar), *vocab);
    std::vector<double> cold_mask, cold_accept;
    int cold_docs = 0;
    run(cold, std::min(steps, 200), 1, &cold_mask, &cold_accept, &cold_docs);
    // Cold again, with the pool filling the cache from the walk's start.
    std::vector<double> bg_mask, bg_accept;
    int bg_docs = 0;
    {
      MaskPrecomputer pool(threads);
      auto bg_grammar = GrammarFromSpec(c.spec);
      auto bg = std::make_shared<const CompiledGrammar>(std::move(*bg_grammar), *vocab);
      pool.Submit(bg);
      run(bg, std::min(steps, 200), 1, &bg_mask, &bg_accept, &bg_docs);
    }
    // A modeled GPU step's time over the forward pass alone.
    auto slowdown = [&](const std::vector<double>& masks) {
      double sum = 0;
      for (double m : masks) sum += std::max(m, forward_us);
      return forward_us > 0 && !masks.empty() ? sum / (forward_us * masks.size()) : 0.0;
    };
    auto warm_grammar = GrammarFromSpec(c.spec);
    auto warm = std::make_shared<const CompiledGrammar>(std::move(*warm_grammar), *vocab);
    t0 = Clock::now();
    warm->cache().PrecomputeAll();
    const double all_ms = Micros(Clock::now() - t0) / 1000;
    std::vector<double> mask_us, accept_us;
    int docs = 0;
    run(warm, steps, 2, &mask_us, &accept_us, &docs);
    std::printf("| %s | %d | %.1f | %.0f | %.0f / %.0f / %.0f | %.2fx | %.0f / %.0f / %.0f | %.2fx | %.1f | %.1f | %.1f | %.2f | %s |\n",
                c.name, nodes, compile_ms, all_ms, Percentile(cold_mask, 0.5), Percentile(cold_mask, 0.99),
                Mean(cold_mask), slowdown(cold_mask), Percentile(bg_mask, 0.5), Percentile(bg_mask, 0.99),
                Mean(bg_mask), slowdown(bg_mask),
                Percentile(mask_us, 0.5), Percentile(mask_us, 0.99), Percentile(mask_us, 1.0),
                Percentile(accept_us, 0.5),
                docs > 0 ? std::to_string(steps / docs).c_str() : "-");
  }
  return 0;
}

}  // namespace
}  // namespace tpserve::structured

int main(int argc, char** argv) { return tpserve::structured::Main(argc, argv); }
