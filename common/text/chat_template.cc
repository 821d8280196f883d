#include "common/text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace tpserve::text {
namespace {

using ojson = nlohmann::ordered_json;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Brings OpenAI request messages into the shape HF templates expect.
absl::StatusOr<ojson> NormalizeMessages(const ojson& messages) {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be an array");
  ojson out = ojson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    if (!m.is_object()) return absl::InvalidArgumentError(absl::StrCat("messages[", i, "] must be an object"));
    if (!m.contains("role") || !m["role"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role must be a string"));
    }
    ojson nm = m;
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      bool first = true;
      for (const ojson& part : m["content"]) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("messages[", i, "].content: only text parts ({\"type\": \"text\", \"text\": ...}) are supported"));
        }
        if (!first) text += "\n";
        text += part["text"].get<std::string>();
        first = false;
      }
      nm["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].content must be a string, an array or null"));
    }
    if (nm.contains("tool_calls") && nm["tool_calls"].is_array()) {
      for (ojson& call : nm["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
        ojson& fn = call["function"];
        if (fn.contains("arguments") && fn["arguments"].is_string()) {
          ojson parsed = ojson::parse(fn["arguments"].get<std::string>(), nullptr, false);
          if (!parsed.is_discarded() && parsed.is_object()) fn["arguments"] = std::move(parsed);
        }
      }
    }
    out.push_back(std::move(nm));
  }
  return out;
}

// The string form of a special token entry: "text" or {"content": "text"}.
std::optional<std::string> TokenText(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromSource(const std::string& source,
                                                      std::vector<std::pair<std::string, std::string>> special_tokens) {
  TP_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source));
  jinja::Dict specials;
  for (auto& [k, v] : special_tokens) specials.Set(k, jinja::Value(v));
  return ChatTemplate(std::move(t), source, std::move(specials));
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/tokenizer_config.json";
  TP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const ojson cfg = ojson::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  std::string source;
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
    source = cfg["chat_template"].get<std::string>();
  } else if (cfg.contains("chat_template") && cfg["chat_template"].is_array()) {
    std::string names;
    for (const ojson& t : cfg["chat_template"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string() || !t.contains("template") ||
          !t["template"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": chat_template entries need name and template"));
      }
      if (t["name"] == "default") source = t["template"].get<std::string>();
      absl::StrAppend(&names, names.empty() ? "" : ", ", t["name"].get<std::string>());
    }
    if (source.empty()) {
      return absl::NotFoundError(absl::StrCat(path, ": no chat_template named 'default' (have: ", names, ")"));
    }
  } else {
    auto jinja_file = ReadFile(model_dir + "/chat_template.jinja");
    if (!jinja_file.ok()) return absl::NotFoundError(absl::StrCat(path, " has no chat_template"));
    source = std::move(*jinja_file);
  }
  std::vector<std::pair<std::string, std::string>> specials;
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    if (!it.key().ends_with("_token")) continue;
    if (auto t = TokenText(it.value())) specials.emplace_back(it.key(), *t);
  }
  auto tmpl = FromSource(source, std::move(specials));
  if (!tmpl.ok()) return absl::Status(tmpl.status().code(), absl::StrCat(path, ": ", tmpl.status().message()));
  if (cfg.contains("additional_special_tokens") && cfg["additional_special_tokens"].is_array()) {
    jinja::List extra;
    for (const ojson& t : cfg["additional_special_tokens"]) {
      if (auto s = TokenText(t)) extra.push_back(jinja::Value(*s));
    }
    tmpl->specials_.Set("additional_special_tokens", jinja::Value(std::move(extra)));
  }
  return tmpl;
}

absl::StatusOr<std::string> ChatTemplate::Render(const ojson& messages, const ojson& tools,
                                                 bool add_generation_prompt, const ojson& extra_kwargs) const {
  TP_ASSIGN_OR_RETURN(ojson normalized, NormalizeMessages(messages));
  if (!tools.is_null() && !tools.is_array()) return absl::InvalidArgumentError("tools must be an array or null");
  if (!extra_kwargs.is_null() && !extra_kwargs.is_object()) {
    return absl::InvalidArgumentError("chat template kwargs must be an object");
  }
  jinja::Dict vars = specials_;
  TP_ASSIGN_OR_RETURN(jinja::Value msgs, jinja::FromJson(normalized));
  vars.Set("messages", std::move(msgs));
  TP_ASSIGN_OR_RETURN(jinja::Value tools_value, jinja::FromJson(tools));
  vars.Set("tools", std::move(tools_value));
  vars.Set("add_generation_prompt", jinja::Value(add_generation_prompt));
  if (extra_kwargs.is_object()) {
    for (auto it = extra_kwargs.begin(); it != extra_kwargs.end(); ++it) {
      TP_ASSIGN_OR_RETURN(jinja::Value v, jinja::FromJson(it.value()));
      vars.Set(it.key(), std::move(v));
    }
  }
  return template_.Render(vars);
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages, const nlohmann::json& tools,
                                                 bool add_generation_prompt, const nlohmann::json& extra_kwargs) const {
  return Render(ojson::parse(messages.dump()), ojson::parse(tools.dump()), add_generation_prompt,
                ojson::parse(extra_kwargs.dump()));
}

}  // namespace tpserve::text
