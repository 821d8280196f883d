// Fuzzes the OpenAI request parsers (chat and completions bodies) and the
// JSON depth check that guards them: any body must give a request or a clean
// error, and the depth check must agree with the depth nlohmann parses.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/json_depth.h"
#include "gateway/request_parser.h"
#include "fuzz/fuzz_util.h"

namespace {

using tpserve::fuzz::Check;

using tpserve::gateway::JsonDepthWithin;
using tpserve::gateway::kMaxJsonDepth;

// Nesting depth of arrays and objects (a scalar is 0), without recursion:
// the input may be deeper than the stack allows if the depth check is wrong.
int Depth(const nlohmann::json& root) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> todo = {{&root, 0}};
  while (!todo.empty()) {
    auto [j, d] = todo.back();
    todo.pop_back();
    if (!j->is_structured()) continue;
    deepest = std::max(deepest, d + 1);
    for (const auto& child : *j) todo.emplace_back(&child, d + 1);
  }
  return deepest;
}

const tpserve::gateway::RequestLimits& Limits() {
  static const auto* limits = [] {
    auto* l = new tpserve::gateway::RequestLimits;
    l->served_model_names = {"tiny-qwen2", "Qwen/Qwen2.5-0.5B-Instruct"};
    l->max_model_len = 4096;
    l->vocab_size = 151936;
    return l;
  }();
  return *limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const bool within = JsonDepthWithin(body, kMaxJsonDepth);
  if (within) {
    // Parsing walks nothing deeper than the check allows (nlohmann's parser
    // itself is iterative, so this parse is safe whatever the depth).
    nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) Check(Depth(j) <= kMaxJsonDepth, "JsonDepthWithin accepted deeper JSON");
  }
  auto chat = tpserve::gateway::ParseChatRequest(body, Limits());
  auto completion = tpserve::gateway::ParseCompletionRequest(body, Limits());
  // Anything too deep is refused before it is parsed.
  if (!within) Check(!chat.ok() && !completion.ok(), "too-deep body accepted");
  if (chat.ok()) {
    Check(chat->chat, "chat request not marked chat");
    Check(chat->n >= 1 && chat->n <= Limits().max_n, "n out of bounds");
    Check(static_cast<int>(chat->stop.size()) <= Limits().max_stop_strings, "too many stop strings");
    Check(chat->messages.is_array(), "messages not an array");
    // What the template engine and the router would do next with it.
    (void)chat->messages.dump();
    (void)chat->tools.dump();
    (void)chat->chat_template_kwargs.dump();
  }
  if (completion.ok()) {
    Check(!completion->chat, "completion marked chat");
    const size_t prompts = completion->prompt_texts.size() + completion->prompt_token_ids.size();
    Check(prompts >= 1, "no prompt");
    Check(static_cast<int>(prompts) * completion->n <= Limits().max_choices, "prompts x n over max_choices");
    for (const auto& ids : completion->prompt_token_ids) {
      for (int id : ids) Check(id >= 0 && id < Limits().vocab_size, "token id out of range");
    }
  }
  return 0;
}
