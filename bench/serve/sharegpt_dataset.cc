// The ShareGPT workload: real prompts, output lengths from the real replies.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "bench/serve/dataset.h"

namespace tpserve::bench {
namespace {

// vLLM's is_valid_sequence defaults: drop pairs too short to measure or too
// long for common context lengths.
constexpr int kMinLen = 4;
constexpr int kMaxPromptLen = 1024;
constexpr int kMaxTotalLen = 2048;

struct Conversation {
  std::string prompt;
  std::string reply;
};

// The first human turn and the turn after it; false when the entry has none.
absl::StatusOr<bool> FirstExchange(const nlohmann::json& entry, size_t index, Conversation* out) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("entry ", index, ": ", what));
  };
  if (!entry.is_object()) return bad("not an object");
  auto turns = entry.find("conversations");
  if (turns == entry.end()) turns = entry.find("conversation");
  if (turns == entry.end()) return bad("has no \"conversations\" list");
  if (!turns->is_array()) return bad("\"conversations\" is not a list");
  for (const nlohmann::json& t : *turns) {
    if (!t.is_object() || !t.contains("from") || !t.contains("value") || !t["from"].is_string() ||
        !t["value"].is_string()) {
      return bad("a turn is not {\"from\": string, \"value\": string}");
    }
  }
  for (size_t i = 0; i + 1 < turns->size(); ++i) {
    const std::string from = (*turns)[i]["from"].get<std::string>();
    if (from == "human" || from == "user") {
      out->prompt = (*turns)[i]["value"].get<std::string>();
      out->reply = (*turns)[i + 1]["value"].get<std::string>();
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<Dataset> SampleShareGpt(const text::Tokenizer& tok, const BenchConfig& c) {
  const std::string& path = c.dataset_path;
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--dataset-path '", path, "': cannot open (", std::strerror(errno), ")"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dataset-path '", path, "': not valid JSON (byte ", e.byte, ")"));
  }
  if (!root.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset-path '", path,
        "': not ShareGPT JSON (expected a list of {\"conversations\": [...]} objects)"));
  }
  std::vector<Conversation> convs;
  for (size_t i = 0; i < root.size(); ++i) {
    Conversation conv;
    absl::StatusOr<bool> found = FirstExchange(root[i], i, &conv);
    if (!found.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--dataset-path '", path, "': ", found.status().message()));
    }
    if (*found) convs.push_back(std::move(conv));
  }
  std::mt19937_64 rng(c.seed);
  std::shuffle(convs.begin(), convs.end(), rng);
  Dataset d;
  for (const Conversation& conv : convs) {
    if (static_cast<int>(d.requests.size()) == c.num_prompts) break;
    SampleRequest r;
    r.prompt = conv.prompt;
    r.prompt_len = static_cast<int>(tok.Encode(conv.prompt, false).size());
    r.expected_output_len = c.sharegpt_output_len > 0
                                ? c.sharegpt_output_len
                                : static_cast<int>(tok.Encode(conv.reply, false).size());
    if (r.prompt_len < kMinLen || r.expected_output_len < kMinLen || r.prompt_len > kMaxPromptLen ||
        r.prompt_len + r.expected_output_len > kMaxTotalLen) {
      continue;
    }
    d.requests.push_back(std::move(r));
  }
  if (d.requests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset-path '", path, "': no usable conversation (need a human turn and a reply of ",
        kMinLen, "+ tokens, prompt <= ", kMaxPromptLen, ", prompt + reply <= ", kMaxTotalLen, ")"));
  }
  // As vLLM: too few usable conversations are topped up with random repeats.
  const size_t unique = d.requests.size();
  if (static_cast<int>(unique) < c.num_prompts) {
    std::uniform_int_distribution<size_t> pick(0, unique - 1);
    while (static_cast<int>(d.requests.size()) < c.num_prompts) {
      d.requests.push_back(d.requests[pick(rng)]);
    }
    d.note = absl::StrCat("only ", unique, " usable conversations in '", path,
                          "': repeated to reach ", c.num_prompts, " requests");
  }
  return d;
}

}  // namespace tpserve::bench
