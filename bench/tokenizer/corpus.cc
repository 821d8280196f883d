#include "bench/tokenizer/corpus.h"

#include <fstream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace tpserve::bench {

absl::StatusOr<std::vector<std::string>> CorpusLines(size_t min_bytes) {
  std::vector<std::string> base;
  const std::pair<const char*, const char*> sources[] = {
      {"tests/fixtures/tokenizer/qwen25_encode_goldens.json", "text"},
      {"tests/fixtures/tokenizer/qwen3_encode_goldens.json", "text"},
      {"tests/fixtures/chat/chat_template_goldens.json", "rendered"}};
  for (const auto& [path, key] : sources) {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, " (run from the repo root)"));
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.contains("cases")) return absl::InvalidArgumentError(absl::StrCat(path, ": bad JSON"));
    for (const auto& c : j["cases"]) {
      if (c.contains(key) && c[key].is_string() && !c[key].get<std::string>().empty()) {
        base.push_back(c[key].get<std::string>() + "\n");
      }
    }
  }
  if (base.empty()) return absl::InvalidArgumentError("no corpus strings");
  // Rounds over a stride permutation (a linear congruence with a prime
  // stride), so that repeats do not line up identically.
  std::vector<std::string> lines;
  size_t bytes = 0;
  const size_t n = base.size();
  for (size_t round = 0; bytes < min_bytes; ++round) {
    size_t stride = 7919 % n;
    if (stride == 0) stride = 1;
    while (std::gcd(stride, n) != 1) ++stride;
    for (size_t i = 0; i < n && bytes < min_bytes; ++i) {
      const std::string& s = base[(i * stride + round * 104729) % n];
      lines.push_back(s);
      bytes += s.size();
    }
  }
  return lines;
}

}  // namespace tpserve::bench
