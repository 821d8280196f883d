// HF chat templates: renders OpenAI-style messages to a prompt string exactly
// as transformers' apply_chat_template(..., tokenize=False) does.
#ifndef TPSERVE_COMMON_TEXT_CHAT_TEMPLATE_H_
#define TPSERVE_COMMON_TEXT_CHAT_TEMPLATE_H_

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/text/jinja.h"

namespace tpserve::text {

// A compiled chat template plus the special-token variables it may use.
class ChatTemplate {
 public:
  // Loads `chat_template` (a string, or a list of {name, template} from which
  // "default" is taken) and the special tokens from model_dir's
  // tokenizer_config.json; falls back to model_dir/chat_template.jinja.
  static absl::StatusOr<ChatTemplate> FromTokenizerConfig(const std::string& model_dir);
  // Compiles `source`; `special_tokens` become template variables (e.g. {"eos_token", "<|im_end|>"}).
  static absl::StatusOr<ChatTemplate> FromSource(
      const std::string& source, std::vector<std::pair<std::string, std::string>> special_tokens = {});

  // Renders the conversation. `messages` is the OpenAI array (content as a
  // string, null, or an array of {"type":"text"} parts, which are joined with
  // "\n"; tool_calls' string `arguments` are parsed to objects as vLLM does).
  // `tools` may be null. Every key of `extra_kwargs` (an object or null)
  // becomes a variable, e.g. enable_thinking. Use ordered_json so that
  // `tojson` keeps the client's key order, as Python does.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                     bool add_generation_prompt,
                                     const nlohmann::ordered_json& extra_kwargs) const;
  // Same, for nlohmann::json input (object keys then render in sorted order).
  absl::StatusOr<std::string> Render(const nlohmann::json& messages, const nlohmann::json& tools,
                                     bool add_generation_prompt, const nlohmann::json& extra_kwargs) const;

  // The template source.
  const std::string& source() const { return source_; }

 private:
  ChatTemplate(jinja::Template t, std::string source, jinja::Dict specials)
      : template_(std::move(t)), source_(std::move(source)), specials_(std::move(specials)) {}

  jinja::Template template_;
  std::string source_;
  jinja::Dict specials_;
};

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_CHAT_TEMPLATE_H_
