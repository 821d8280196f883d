// Single-threaded encode throughput of tpserve's tokenizer on a mixed corpus
// built deterministically from the repo's golden strings (see corpus.h).
// Usage: tokenizer_bench [--tokenizer DIR] [--mb N] [--passes N] [--write_corpus FILE.json]
// Prints a table; run hf_tokenizer_bench.py on the written corpus to compare.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/tokenizer/corpus.h"
#include "common/text/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

// FNV-1a over the ids, to check that both implementations produced the same tokens.
uint64_t Fnv(const std::vector<int32_t>& ids, uint64_t h) {
  for (int32_t id : ids) {
    h ^= static_cast<uint32_t>(id);
    h *= 1099511628211ull;
  }
  return h;
}

struct Row {
  const char* mode;
  double seconds;
  size_t tokens;
  uint64_t hash;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "tests/fixtures/tiny-qwen2-chat", corpus_out;
  double mb = 8;
  int passes = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--tokenizer") dir = argv[i + 1];
    else if (k == "--mb") mb = std::atof(argv[i + 1]);
    else if (k == "--passes") passes = std::max(1, std::atoi(argv[i + 1]));
    else if (k == "--write_corpus") corpus_out = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto tok = tpserve::text::Tokenizer::Load(dir);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  auto lines = tpserve::bench::CorpusLines(static_cast<size_t>(mb * 1e6));
  if (!lines.ok()) {
    std::fprintf(stderr, "%s\n", std::string(lines.status().message()).c_str());
    return 1;
  }
  std::string corpus;
  for (const auto& l : *lines) corpus += l;
  // The pieces as a JSON array, so the Python side splits exactly the same way.
  if (!corpus_out.empty()) std::ofstream(corpus_out, std::ios::binary) << nlohmann::json(*lines).dump();

  std::vector<Row> rows;
  for (int p = 0; p < passes; ++p) {
    auto t0 = Clock::now();
    const auto ids = (*tok)->Encode(corpus, /*parse_special_tokens=*/true);
    rows.push_back({p == 0 ? "whole, cold cache" : "whole, warm cache",
                    std::chrono::duration<double>(Clock::now() - t0).count(), ids.size(), Fnv(ids, 14695981039346656037ull)});
  }
  for (int p = 0; p < passes; ++p) {
    auto t0 = Clock::now();
    size_t n = 0;
    uint64_t h = 14695981039346656037ull;
    for (const auto& l : *lines) {
      const auto ids = (*tok)->Encode(l, /*parse_special_tokens=*/true);
      n += ids.size();
      h = Fnv(ids, h);
    }
    rows.push_back({"per line", std::chrono::duration<double>(Clock::now() - t0).count(), n, h});
  }
  std::printf("tpserve tokenizer: %zu bytes, %zu lines, 1 thread\n", corpus.size(), lines->size());
  std::printf("%-20s %10s %12s %10s %12s  %s\n", "mode", "seconds", "tokens", "MB/s", "tokens/s", "ids-fnv");
  for (const Row& r : rows) {
    std::printf("%-20s %10.3f %12zu %10.2f %12.0f  %016llx\n", r.mode, r.seconds, r.tokens,
                corpus.size() / r.seconds / 1e6, r.tokens / r.seconds, static_cast<unsigned long long>(r.hash));
  }
  return 0;
}
