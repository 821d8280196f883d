// Fuzzes the Jinja engine behind chat templates: arbitrary template sources
// rendered with arbitrary JSON variables, and the model's own chat template
// (from the fixture) with arbitrary messages/tools. Every render must end
// (bounded steps, output and recursion) with text or a clean error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/text/chat_template.h"
#include "common/text/jinja.h"
#include "fuzz/fuzz_util.h"
#include "gateway/json_depth.h"

namespace {

namespace jinja = tpserve::text::jinja;

const tpserve::text::ChatTemplate* g_chat_template = nullptr;

// Small bounds so that one input stays fast; what is checked is that the
// bounds hold, not their production values. With 20,000 steps and 1 MiB
// values the corpus grew inputs that spend their time building megabyte
// strings under ASan (~400 executions a second per process on the GPU
// machine's cores, 2026-12-01); the limit checks are the same code at any size.
jinja::RenderLimits FuzzLimits() {
  jinja::RenderLimits limits;
  limits.max_steps = 2'000;
  limits.max_output_bytes = 64u << 10;
  limits.max_value_bytes = 64u << 10;
  // Well under libFuzzer's -timeout (10 s in fuzz/run.sh), so that a slow
  // input shows up as this clean error, not as a "timeout" finding.
  limits.max_duration = absl::Seconds(1);
  return limits;
}

// The variables part as a JSON object, or nothing (then no variables).
std::optional<nlohmann::ordered_json> ParseVars(std::string_view text) {
  if (!tpserve::gateway::JsonDepthWithin(text)) return std::nullopt;
  auto j = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  tpserve::fuzz::SetArgv0((*argv)[0]);
  const std::string config = tpserve::fuzz::FixturePath("tests/fixtures/tiny-qwen2-chat/tokenizer_config.json");
  auto t = tpserve::text::ChatTemplate::FromTokenizerConfig(config.substr(0, config.rfind('/')));
  if (!t.ok()) {
    std::fprintf(stderr, "fuzz: %s\n", t.status().ToString().c_str());
    std::abort();
  }
  g_chat_template = new tpserve::text::ChatTemplate(*std::move(t));
  return 0;
}

// Input: "<template>\n---\n<variables as a JSON object>". An empty template
// renders the fixture's chat template with the variables' "messages",
// "tools", "add_generation_prompt" and "kwargs".
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = tpserve::fuzz::SplitParts(data, size, 2);
  const std::string source(parts[0]);
  std::optional<nlohmann::ordered_json> vars;
  if (parts.size() == 2) vars = ParseVars(parts[1]);

  if (source.empty()) {
    if (!vars) return 0;
    auto field = [&](const char* key) { return vars->contains(key) ? (*vars)[key] : nlohmann::ordered_json(); };
    const nlohmann::ordered_json messages = field("messages");
    if (!messages.is_array()) return 0;
    (void)g_chat_template->Render(messages, field("tools"), field("add_generation_prompt").is_boolean() &&
                                                                 field("add_generation_prompt").get<bool>(),
                                  field("kwargs"));
    return 0;
  }

  auto tmpl = jinja::Template::Parse(source);
  if (!tmpl.ok()) return 0;
  jinja::Dict dict;
  if (vars) {
    auto v = jinja::FromJson(*vars);
    if (v.ok() && v->is_dict()) dict = v->dict();
  }
  auto out = tmpl->Render(dict, FuzzLimits());
  if (out.ok() && out->size() > FuzzLimits().max_output_bytes) {
    std::fprintf(stderr, "invariant broken: output over max_output_bytes\n");
    std::abort();
  }
  return 0;
}
