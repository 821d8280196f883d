#include "gateway/structured_request.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/sampling_rules.h"
#include "common/status_macros.h"
#include "gateway/http_error.h"
#include "gateway/json_fields.h"
#include "structured/spec.h"

namespace tpserve::gateway {
namespace {

using nlohmann::ordered_json;

constexpr int kMaxLogitBias = 4096;
// bad_words: each word becomes up to two token sequences (as written and
// with a leading space, EncodeBadWords), so half the sequences the router
// and the workers accept (common/sampling_rules.h) is the limit on words;
// EncodeBadWords keeps the tokens within the same rule's bounds.
constexpr size_t kMaxBadWords = kMaxBadWordSequences / 2;
constexpr size_t kMaxBadWordBytes = 256;

// Compiling a large schema takes up to ~0.1 s, so each distinct spec is
// compiled once; clients resend the same schema with every request.
absl::Status ValidateSpec(const std::string& spec) {
  static absl::Mutex mu;
  static auto* verdicts = new std::map<std::string, absl::Status>;
  {
    absl::MutexLock lock(&mu);
    if (auto it = verdicts->find(spec); it != verdicts->end()) return it->second;
  }
  auto grammar = structured::GrammarFromSpec(spec);
  absl::Status status = grammar.ok() ? absl::OkStatus() : grammar.status();
  absl::MutexLock lock(&mu);
  if (verdicts->size() >= 512) verdicts->clear();
  verdicts->emplace(spec, status);
  return status;
}

// Sets the request's one output constraint, from field `param`.
absl::Status SetSpec(const char* param, const std::string& spec, GenerationRequest* req) {
  if (!req->sampling.structured_output().empty()) {
    return InvalidField(param, "only one of response_format, guided_json, guided_regex, guided_choice, "
                               "structured_outputs and a forced tool_choice may constrain the output");
  }
  absl::Status status = ValidateSpec(spec);
  if (!status.ok()) return InvalidField(param, std::string(status.message()));
  req->sampling.set_structured_output(spec);
  return absl::OkStatus();
}

// A schema sent as an object, a boolean, or JSON text (vLLM accepts all three).
absl::StatusOr<ordered_json> SchemaValue(const ordered_json& v, const char* param) {
  if (v.is_object() || v.is_boolean()) return v;
  if (v.is_string()) {
    const std::string& text = v.get_ref<const std::string&>();
    TP_RETURN_IF_ERROR(CheckJsonDepth(text, param, "the schema"));
    ordered_json parsed = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) return parsed;
  }
  return InvalidField(param, absl::StrCat(param, " must be a JSON Schema (an object or its JSON text)"));
}

absl::StatusOr<std::vector<std::string>> Choices(const ordered_json& v, const char* param) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const ordered_json& c : v) {
      if (!c.is_string()) break;
      out.push_back(c.get<std::string>());
    }
  }
  if (out.empty() || out.size() != v.size()) {
    return InvalidField(param, absl::StrCat(param, " must be a non-empty list of strings"));
  }
  return out;
}

absl::Status ParseResponseFormat(const ordered_json& rf, GenerationRequest* req) {
  constexpr char kParam[] = "response_format";
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string()) {
    return InvalidField(kParam, "response_format must be an object with a string \"type\"");
  }
  const std::string type = rf["type"].get<std::string>();
  if (type == "text") return absl::OkStatus();
  if (type == "json_object") return SetSpec(kParam, structured::JsonObjectSpec(), req);
  if (type != "json_schema") {
    return InvalidField(kParam, absl::StrCat("response_format.type must be text, json_object or "
                                             "json_schema (got '", type, "')"));
  }
  const ordered_json* js = rf.contains("json_schema") ? &rf["json_schema"] : nullptr;
  if (js == nullptr || !js->is_object() || !js->contains("schema")) {
    return InvalidField(kParam, "response_format.json_schema must be an object with a \"schema\"");
  }
  if (js->contains("name") && !(*js)["name"].is_string()) {
    return InvalidField(kParam, "response_format.json_schema.name must be a string");
  }
  if (js->contains("strict") && !(*js)["strict"].is_null() && !(*js)["strict"].is_boolean()) {
    return InvalidField(kParam, "response_format.json_schema.strict must be a boolean");
  }
  TP_ASSIGN_OR_RETURN(ordered_json schema, SchemaValue((*js)["schema"], kParam));
  return SetSpec(kParam, structured::JsonSchemaSpec(schema), req);
}

// One constraint from vLLM's fields: `json`, `regex`, `choice`, `grammar`,
// `json_object` (guided_<name> or structured_outputs.<name>).
absl::Status ParseGuided(const std::string& name, const ordered_json& v, const char* param,
                         GenerationRequest* req) {
  if (name == "json") {
    TP_ASSIGN_OR_RETURN(ordered_json schema, SchemaValue(v, param));
    return SetSpec(param, structured::JsonSchemaSpec(schema), req);
  }
  if (name == "regex") {
    if (!v.is_string()) return InvalidField(param, absl::StrCat(param, " must be a string"));
    return SetSpec(param, structured::RegexSpec(v.get<std::string>()), req);
  }
  if (name == "choice") {
    TP_ASSIGN_OR_RETURN(std::vector<std::string> choices, Choices(v, param));
    return SetSpec(param, structured::ChoiceSpec(choices), req);
  }
  if (name == "json_object") {
    if (!v.is_boolean()) return InvalidField(param, absl::StrCat(param, " must be a boolean"));
    return v.get<bool>() ? SetSpec(param, structured::JsonObjectSpec(), req) : absl::OkStatus();
  }
  if (name == "grammar") {
    return InvalidField(param, "EBNF grammars are not supported; use a JSON schema, a regex or choices");
  }
  return InvalidField(param, absl::StrCat(param, " is not supported by this server"));
}

// vLLM bad_words: a list of strings, tokenized later (EncodeBadWords). Each
// word must have something left once leading whitespace is stripped, as
// vLLM strips it before tokenizing.
absl::Status ParseBadWords(const ordered_json& body, GenerationRequest* req) {
  auto it = body.find("bad_words");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return InvalidField("bad_words", "bad_words must be a list of strings");
  if (it->size() > kMaxBadWords) {
    return InvalidField("bad_words", absl::StrCat("bad_words has more than ", kMaxBadWords, " words"));
  }
  for (const ordered_json& w : *it) {
    if (!w.is_string()) return InvalidField("bad_words", "bad_words must be a list of strings");
    const std::string& word = w.get_ref<const std::string&>();
    if (absl::StripLeadingAsciiWhitespace(word).empty()) {
      return InvalidField("bad_words", "bad_words entries must be non-empty strings (not only whitespace)");
    }
    if (word.size() > kMaxBadWordBytes) {
      return InvalidField("bad_words", absl::StrCat("bad_words entries must be at most ", kMaxBadWordBytes,
                                                    " bytes long"));
    }
    req->bad_words.push_back(word);
  }
  return absl::OkStatus();
}

absl::Status ParseTokenBias(const ordered_json& body, const RequestLimits& limits, GenerationRequest* req) {
  const int64_t hi = limits.vocab_size > 0 ? limits.vocab_size - 1 : INT32_MAX;
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return InvalidField("logit_bias", "logit_bias must be an object of token id -> bias");
    if (it->size() > kMaxLogitBias) {
      return InvalidField("logit_bias", absl::StrCat("logit_bias has more than ", kMaxLogitBias, " entries"));
    }
    for (const auto& [key, value] : it->items()) {
      int64_t id;
      if (!absl::SimpleAtoi(key, &id) || id < 0 || id > hi) {
        return InvalidField("logit_bias", absl::StrCat("logit_bias key '", key, "' is not a token id in [0, ", hi, "]"));
      }
      if (!value.is_number() || std::abs(value.get<double>()) > kMaxLogitBiasValue) {
        return InvalidField("logit_bias", absl::StrCat("logit_bias for token ", id, " must be a number in [",
                                                       -kMaxLogitBiasValue, ", ", kMaxLogitBiasValue, "]"));
      }
      (*req->sampling.mutable_logit_bias())[static_cast<int32_t>(id)] = value.get<float>();
    }
  }
  if (auto it = body.find("allowed_token_ids"); it != body.end() && !it->is_null()) {
    if (!it->is_array() || it->empty()) {
      return InvalidField("allowed_token_ids", "allowed_token_ids must be a non-empty list of token ids");
    }
    for (const ordered_json& v : *it) {
      const std::optional<int64_t> id =
          v.is_number_integer() ? std::optional<int64_t>(v.get<int64_t>()) : std::nullopt;
      if (!id || *id < 0 || *id > hi) {
        return InvalidField("allowed_token_ids", absl::StrCat("allowed_token_ids entries must be token ids in [0, ", hi, "]"));
      }
      req->sampling.add_allowed_token_ids(static_cast<int32_t>(*id));
    }
  }
  return ParseBadWords(body, req);
}

}  // namespace

absl::Status ParseStructuredOutput(const ordered_json& body, const RequestLimits& limits,
                                   GenerationRequest* req) {
  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    TP_RETURN_IF_ERROR(ParseResponseFormat(*it, req));
  }
  for (const char* name : {"json", "regex", "choice", "grammar", "whitespace_pattern"}) {
    const std::string param = absl::StrCat("guided_", name);
    if (auto it = body.find(param); it != body.end() && !it->is_null()) {
      TP_RETURN_IF_ERROR(ParseGuided(name, *it, param.c_str(), req));
    }
  }
  if (auto it = body.find("guided_decoding_backend"); it != body.end() && !it->is_null() && !it->is_string()) {
    return InvalidField("guided_decoding_backend", "guided_decoding_backend must be a string");
  }
  if (auto it = body.find("structured_outputs"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return InvalidField("structured_outputs", "structured_outputs must be an object");
    for (const auto& [key, value] : it->items()) {
      if (value.is_null() || key == "backend" || key == "disable_any_whitespace" ||
          key == "disable_additional_properties") {
        continue;  // backend choices: this server has one engine
      }
      TP_RETURN_IF_ERROR(ParseGuided(key, value, "structured_outputs", req));
    }
  }
  return ParseTokenBias(body, limits, req);
}

absl::Status ParseToolChoice(const ordered_json& body, GenerationRequest* req) {
  constexpr char kParam[] = "tool_choice";
  const bool have_tools = !req->tools.is_null() && !req->tools.empty();
  bool parallel = true;
  if (auto it = body.find("parallel_tool_calls"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return InvalidField("parallel_tool_calls", "parallel_tool_calls must be a boolean");
    parallel = it->get<bool>();
  }
  auto it = body.find(kParam);
  if (it == body.end() || it->is_null() || *it == "auto") {
    req->parse_tool_calls = have_tools;
    return absl::OkStatus();
  }
  if (*it == "none") {
    req->parse_tool_calls = false;
    return absl::OkStatus();
  }
  std::vector<structured::ToolSpec> forced;
  auto add = [&](const ordered_json& fn) {
    forced.push_back({fn["name"].get<std::string>(), fn.contains("parameters") ? fn["parameters"] : ordered_json()});
  };
  if (*it == "required") {
    if (!have_tools) return InvalidField(kParam, "tool_choice \"required\" needs tools");
    for (const ordered_json& t : req->tools) add(t["function"]);
  } else if (it->is_object() && it->value("type", "") == "function" && it->contains("function") &&
             (*it)["function"].is_object() && (*it)["function"].contains("name") &&
             (*it)["function"]["name"].is_string()) {
    const std::string name = (*it)["function"]["name"].get<std::string>();
    for (const ordered_json& t : have_tools ? req->tools : ordered_json::array()) {
      if (t["function"]["name"] == name) add(t["function"]);
    }
    if (forced.empty()) {
      return InvalidField(kParam, absl::StrCat("tool_choice names function '", name, "', which is not in tools"));
    }
    parallel = false;  // one call of the named function
  } else {
    return InvalidField(kParam, "tool_choice must be \"none\", \"auto\", \"required\" or "
                                "{\"type\": \"function\", \"function\": {\"name\": ...}}");
  }
  req->parse_tool_calls = true;
  return SetSpec(kParam, structured::ToolCallsSpec(forced, parallel), req);
}

absl::Status EncodeBadWords(const std::vector<std::string>& words,
                            const std::function<std::vector<int>(const std::string&)>& encode,
                            tpserve::v1::SamplingParams* sampling) {
  int total = 0;
  auto add = [&](const std::string& word, const std::vector<int>& ids) -> absl::Status {
    if (static_cast<int>(ids.size()) > kMaxBadWordLength) {
      return InvalidField("bad_words", absl::StrCat("bad_words entry '", word, "' is ", ids.size(),
                                                    " tokens; at most ", kMaxBadWordLength, " are allowed"));
    }
    total += static_cast<int>(ids.size());
    if (total > kMaxBadWordsTokens) {
      return InvalidField("bad_words", absl::StrCat("bad_words come to more than ", kMaxBadWordsTokens,
                                                    " tokens in all"));
    }
    sampling->add_bad_words()->mutable_ids()->Add(ids.begin(), ids.end());
    return absl::OkStatus();
  };
  for (const std::string& word : words) {
    const std::string text(absl::StripLeadingAsciiWhitespace(word));
    const std::vector<int> plain = encode(text);
    if (plain.empty()) return InvalidField("bad_words", absl::StrCat("bad_words entry '", word, "' has no tokens"));
    TP_RETURN_IF_ERROR(add(word, plain));
    // The word in mid-text, after a space. vLLM keeps this form only when
    // the space makes a different first token and the same number of
    // tokens (a word whose space is a token of its own is not banned twice).
    const std::vector<int> spaced = encode(" " + text);
    if (!spaced.empty() && spaced[0] != plain[0] && spaced.size() == plain.size()) {
      TP_RETURN_IF_ERROR(add(word, spaced));
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve::gateway
