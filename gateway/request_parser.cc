#include "gateway/request_parser.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sampling_rules.h"
#include "common/status_macros.h"
#include "gateway/http_error.h"
#include "gateway/json_fields.h"
#include "gateway/structured_request.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// True if o[key] is the string `want`. nlohmann's value(key, default)
// throws when the key holds another type, which a client controls.
bool StringFieldIs(const ordered_json& o, const char* key, std::string_view want) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() && it->get_ref<const std::string&>() == want;
}

absl::Status CheckModel(const json& body, const RequestLimits& limits, std::string* model) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) {
    // vLLM serves the first name when "model" is omitted.
    *model = limits.served_model_names.empty() ? "" : limits.served_model_names[0];
    return absl::OkStatus();
  }
  if (!it->is_string()) return InvalidField("model", "model must be a string");
  *model = it->get<std::string>();
  for (const std::string& name : limits.served_model_names) {
    if (name == *model) return absl::OkStatus();
  }
  absl::Status status = absl::NotFoundError(
      absl::StrCat("The model `", *model, "` does not exist. Available models: ",
                   absl::StrJoin(limits.served_model_names, ", ")));
  return status;
}

absl::Status ParseStop(const json& body, const RequestLimits& limits,
                       std::vector<std::string>* stop) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    stop->push_back(it->get<std::string>());
  } else if (it->is_array()) {
    for (const json& s : *it) {
      if (!s.is_string()) return InvalidField("stop", "stop must be a string or a list of strings");
      stop->push_back(s.get<std::string>());
    }
  } else {
    return InvalidField("stop", "stop must be a string or a list of strings");
  }
  if (static_cast<int>(stop->size()) > limits.max_stop_strings) {
    return InvalidField("stop", absl::StrCat("at most ", limits.max_stop_strings,
                                             " stop strings are allowed, got ", stop->size()));
  }
  for (const std::string& s : *stop) {
    if (s.empty()) return InvalidField("stop", "stop strings must not be empty");
  }
  return absl::OkStatus();
}

absl::Status ParseTokenIds(const json& value, const char* param, const RequestLimits& limits,
                           std::vector<int>* out) {
  if (!value.is_array()) return InvalidField(param, absl::StrCat(param, " must be a list of integers"));
  int64_t hi = limits.vocab_size > 0 ? limits.vocab_size - 1 : INT32_MAX;
  for (const json& v : value) {
    auto id = Fields::AsInt(v);
    if (!id.has_value()) return InvalidField(param, absl::StrCat(param, " must be a list of integers"));
    if (*id < 0 || *id > hi) {
      return InvalidField(param, absl::StrCat("token id ", *id, " in ", param,
                                              " is out of range [0, ", hi, "]"));
    }
    out->push_back(static_cast<int>(*id));
  }
  return absl::OkStatus();
}

// Fields shared by both endpoints: sampling, n, stop, stream.
absl::Status ParseCommon(const json& body, const RequestLimits& limits, GenerationRequest* req) {
  Fields f(body);
  TP_RETURN_IF_ERROR(CheckModel(body, limits, &req->model));
  const GenerationConfig& gen = limits.generation_defaults;
  tpserve::v1::SamplingParams& s = req->sampling;

  std::optional<double> temperature, top_p, min_p, presence, frequency, repetition;
  TP_RETURN_IF_ERROR(f.Number("temperature", 0.0, kMaxTemperature, &temperature));
  TP_RETURN_IF_ERROR(f.Number("top_p", 0.0, 1.0, &top_p));
  if (top_p.has_value() && *top_p <= 0.0) return InvalidField("top_p", "top_p must be in (0, 1]");
  TP_RETURN_IF_ERROR(f.Number("min_p", 0.0, 1.0, &min_p));
  TP_RETURN_IF_ERROR(f.Number("presence_penalty", kMinPenalty, kMaxPenalty, &presence));
  TP_RETURN_IF_ERROR(f.Number("frequency_penalty", kMinPenalty, kMaxPenalty, &frequency));
  TP_RETURN_IF_ERROR(f.Number("repetition_penalty", 0.0, kMaxRepetitionPenalty, &repetition));
  if (repetition.has_value() && *repetition <= 0.0) {
    return InvalidField("repetition_penalty", "repetition_penalty must be > 0");
  }
  std::optional<int64_t> top_k, n, seed, min_tokens, priority;
  TP_RETURN_IF_ERROR(f.Int("top_k", -1, INT32_MAX, &top_k));
  TP_RETURN_IF_ERROR(f.Int("n", 1, limits.max_n, &n));
  TP_RETURN_IF_ERROR(f.Int("seed", INT64_MIN, INT64_MAX, &seed));
  TP_RETURN_IF_ERROR(f.Int("min_tokens", 0, INT32_MAX, &min_tokens));
  TP_RETURN_IF_ERROR(f.Int("priority", INT32_MIN, INT32_MAX, &priority));

  // vLLM: request value, else generation_config.json, else the neutral one.
  s.set_temperature(static_cast<float>(temperature.value_or(gen.temperature.value_or(1.0))));
  s.set_top_p(static_cast<float>(top_p.value_or(gen.top_p.value_or(1.0))));
  int64_t k = top_k.value_or(gen.top_k.value_or(0));
  s.set_top_k(k < 0 ? 0 : static_cast<int32_t>(k));
  s.set_min_p(static_cast<float>(min_p.value_or(gen.min_p.value_or(0.0))));
  s.set_repetition_penalty(
      static_cast<float>(repetition.value_or(gen.repetition_penalty.value_or(1.0))));
  s.set_presence_penalty(static_cast<float>(presence.value_or(0.0)));
  s.set_frequency_penalty(static_cast<float>(frequency.value_or(0.0)));
  if (seed.has_value()) s.set_seed(static_cast<uint64_t>(*seed));
  if (min_tokens.has_value()) s.set_min_tokens(static_cast<int32_t>(*min_tokens));
  req->n = static_cast<int>(n.value_or(1));
  req->priority = static_cast<int>(priority.value_or(0));

  bool ignore_eos = false;
  TP_RETURN_IF_ERROR(f.Bool("ignore_eos", &ignore_eos));
  s.set_ignore_eos(ignore_eos);
  TP_RETURN_IF_ERROR(f.Bool("skip_special_tokens", &req->skip_special_tokens));
  if (const json* ids = f.Find("stop_token_ids")) {
    std::vector<int> stop_ids;
    TP_RETURN_IF_ERROR(ParseTokenIds(*ids, "stop_token_ids", limits, &stop_ids));
    for (int id : stop_ids) s.add_stop_token_ids(id);
  }
  TP_RETURN_IF_ERROR(ParseStop(body, limits, &req->stop));

  TP_RETURN_IF_ERROR(f.Bool("stream", &req->stream));
  if (const json* opts = f.Find("stream_options")) {
    if (!req->stream) {
      return InvalidField("stream_options", "stream_options can only be set when stream is true");
    }
    if (!opts->is_object()) return InvalidField("stream_options", "stream_options must be an object");
    Fields o(*opts);
    absl::Status st = o.Bool("include_usage", &req->include_usage);
    if (!st.ok()) return InvalidField("stream_options", "stream_options.include_usage must be a boolean");
    st = o.Bool("continuous_usage_stats", &req->continuous_usage);
    if (!st.ok()) {
      return InvalidField("stream_options",
                          "stream_options.continuous_usage_stats must be a boolean");
    }
  }
  TP_RETURN_IF_ERROR(f.String("user", &req->user));
  TP_RETURN_IF_ERROR(f.String("request_id", &req->request_id));
  if (const json* best_of = f.Find("best_of")) {
    auto b = Fields::AsInt(*best_of);
    if (!b.has_value() || *b != req->n) {
      return InvalidField("best_of", "best_of is not supported (it must equal n when given)");
    }
  }
  return absl::OkStatus();
}

// max_tokens / max_completion_tokens, checked against max_model_len.
absl::Status ParseMaxTokens(const Fields& f, const char* key, const RequestLimits& limits,
                            GenerationRequest* req) {
  std::optional<int64_t> max_tokens;
  int64_t hi = limits.max_model_len > 0 ? limits.max_model_len : INT32_MAX;
  TP_RETURN_IF_ERROR(f.Int(key, 1, hi, &max_tokens));
  if (max_tokens.has_value()) req->sampling.set_max_tokens(static_cast<int32_t>(*max_tokens));
  if (max_tokens.has_value() && req->sampling.min_tokens() > *max_tokens) {
    return InvalidField("min_tokens", absl::StrCat("min_tokens (", req->sampling.min_tokens(),
                                                   ") must not exceed ", key, " (", *max_tokens, ")"));
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const ordered_json& body, GenerationRequest* req) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return InvalidField("messages", "messages is required");
  if (!it->is_array() || it->empty()) {
    return InvalidField("messages", "messages must be a non-empty list");
  }
  req->messages = ordered_json::array();
  for (size_t i = 0; i < it->size(); ++i) {
    const ordered_json& m = (*it)[i];
    std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return InvalidField("messages", where + " must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return InvalidField("messages", where + ".role must be a string");
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for system.
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      return InvalidField("messages", absl::StrCat(where, ".role must be one of system, "
                                                          "developer, user, assistant, tool "
                                                          "(got '", r, "')"));
    }
    ordered_json out = m;
    out["role"] = r;
    auto content = m.find("content");
    bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (content == m.end() || content->is_null()) {
      if (r != "assistant" || !has_tool_calls) {
        return InvalidField("messages", where + ".content is required");
      }
      out["content"] = "";
    } else if (content->is_array()) {
      // vLLM joins text parts with newlines for string-content templates.
      std::vector<std::string> texts;
      for (const ordered_json& part : *content) {
        if (!part.is_object() || !StringFieldIs(part, "type", "text") || !part.contains("text") ||
            !part["text"].is_string()) {
          return InvalidField("messages", where + ".content parts must be {\"type\": \"text\", "
                                                  "\"text\": string} (only text is supported)");
        }
        texts.push_back(part["text"].get<std::string>());
      }
      out["content"] = absl::StrJoin(texts, "\n");
    } else if (!content->is_string()) {
      return InvalidField("messages", where + ".content must be a string or a list of parts");
    }
    if (has_tool_calls) {
      const ordered_json& calls = m["tool_calls"];
      if (r != "assistant" || !calls.is_array()) {
        return InvalidField("messages", where + ".tool_calls must be a list on an assistant message");
      }
      for (size_t j = 0; j < calls.size(); ++j) {
        const ordered_json& call = calls[j];
        std::string cw = absl::StrCat(where, ".tool_calls[", j, "]");
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
            !call["function"].contains("name") || !call["function"]["name"].is_string()) {
          return InvalidField("messages", cw + " must have function.name");
        }
        // Templates expect arguments as an object; clients send a JSON string.
        const ordered_json& args = call["function"].value("arguments", ordered_json("{}"));
        if (args.is_string()) {
          const std::string& text = args.get_ref<const std::string&>();
          TP_RETURN_IF_ERROR(
              CheckJsonDepth(text, "messages", (cw + ".function.arguments").c_str()));
          ordered_json parsed = ordered_json::parse(text, nullptr, false);
          if (parsed.is_discarded()) {
            return InvalidField("messages", cw + ".function.arguments is not valid JSON");
          }
          out["tool_calls"][j]["function"]["arguments"] = parsed;
        }
      }
    }
    req->messages.push_back(std::move(out));
  }
  return absl::OkStatus();
}

// tool_choice is parsed after the tools (gateway/structured_request.cc).
absl::Status ParseTools(const ordered_json& body, GenerationRequest* req) {
  auto it = body.find("tools");
  req->tools = nullptr;
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return InvalidField("tools", "tools must be a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const ordered_json& t = (*it)[i];
    if (!t.is_object() || !StringFieldIs(t, "type", "function") || !t.contains("function") ||
        !t["function"].is_object() || !t["function"].contains("name") ||
        !t["function"]["name"].is_string()) {
      return InvalidField("tools", absl::StrCat("tools[", i, "] must be {\"type\": \"function\", "
                                                         "\"function\": {\"name\": ...}}"));
    }
  }
  if (!it->empty()) req->tools = *it;
  return absl::OkStatus();
}

// prompts x n completions must stay within limits.max_choices.
absl::Status CheckChoices(size_t prompts, int n, const RequestLimits& limits) {
  if (prompts * static_cast<size_t>(n) <= static_cast<size_t>(limits.max_choices)) {
    return absl::OkStatus();
  }
  return InvalidField(prompts > 1 ? "prompt" : "n",
                      absl::StrCat("this request asks for ", prompts, " prompt(s) x n=", n, " = ",
                                   prompts * static_cast<size_t>(n),
                                   " completions; at most ", limits.max_choices,
                                   " are allowed per request"));
}

absl::Status ParsePrompt(const json& body, const RequestLimits& limits, GenerationRequest* req) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return InvalidField("prompt", "prompt is required");
  const json& p = *it;
  // Before anything is copied: a list of prompts counts one each.
  const bool list = p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array());
  TP_RETURN_IF_ERROR(CheckChoices(list ? p.size() : 1, req->n, limits));
  constexpr char kShape[] =
      "prompt must be a string, a list of strings, a list of token ids or a list of lists of "
      "token ids";
  if (p.is_string()) {
    req->prompt_texts.push_back(p.get<std::string>());
  } else if (p.is_array() && !p.empty()) {
    if (p[0].is_string()) {
      for (const json& s : p) {
        if (!s.is_string()) return InvalidField("prompt", kShape);
        req->prompt_texts.push_back(s.get<std::string>());
      }
    } else if (p[0].is_number()) {
      req->prompt_token_ids.emplace_back();
      TP_RETURN_IF_ERROR(ParseTokenIds(p, "prompt", limits, &req->prompt_token_ids.back()));
    } else if (p[0].is_array()) {
      for (const json& ids : p) {
        if (!ids.is_array() || ids.empty()) return InvalidField("prompt", kShape);
        req->prompt_token_ids.emplace_back();
        TP_RETURN_IF_ERROR(ParseTokenIds(ids, "prompt", limits, &req->prompt_token_ids.back()));
      }
    } else {
      return InvalidField("prompt", kShape);
    }
  } else {
    return InvalidField("prompt", p.is_array() ? "prompt must not be empty" : kShape);
  }
  for (const std::string& text : req->prompt_texts) {
    if (text.empty()) return InvalidField("prompt", "prompt must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<json> ParseJsonObject(const std::string& body) {
  TP_RETURN_IF_ERROR(CheckJsonDepth(body, "", "the request body"));
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError("request body is not valid JSON");
  if (!parsed.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  return parsed;
}

absl::StatusOr<GenerationRequest> ParseChatRequest(const std::string& body,
                                                   const RequestLimits& limits) {
  TP_ASSIGN_OR_RETURN(json parsed, ParseJsonObject(body));
  GenerationRequest req;
  req.chat = true;
  TP_RETURN_IF_ERROR(ParseCommon(parsed, limits, &req));
  TP_RETURN_IF_ERROR(CheckChoices(1, req.n, limits));
  Fields f(parsed);
  TP_RETURN_IF_ERROR(ParseMaxTokens(f, f.Find("max_completion_tokens") ? "max_completion_tokens"
                                                                         : "max_tokens",
                                    limits, &req));
  // Parsed again preserving key order for the template (see messages); the
  // depth was checked by ParseJsonObject.
  ordered_json ordered = ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  TP_RETURN_IF_ERROR(ParseMessages(ordered, &req));
  TP_RETURN_IF_ERROR(ParseTools(ordered, &req));
  TP_RETURN_IF_ERROR(ParseStructuredOutput(ordered, limits, &req));
  TP_RETURN_IF_ERROR(ParseToolChoice(ordered, &req));
  bool logprobs = false;
  TP_RETURN_IF_ERROR(f.Bool("logprobs", &logprobs));
  std::optional<int64_t> top_logprobs;
  TP_RETURN_IF_ERROR(f.Int("top_logprobs", 0, kMaxTopLogprobs, &top_logprobs));
  if (top_logprobs.value_or(0) > 0 && !logprobs) {
    return InvalidField("top_logprobs", "top_logprobs requires logprobs to be true");
  }
  req.sampling.set_logprobs(logprobs);
  req.sampling.set_top_logprobs(static_cast<int32_t>(top_logprobs.value_or(0)));
  TP_RETURN_IF_ERROR(f.Bool("add_generation_prompt", &req.add_generation_prompt));
  TP_RETURN_IF_ERROR(f.Bool("add_special_tokens", &req.add_special_tokens));
  if (const json* kwargs = f.Find("chat_template_kwargs")) {
    if (!kwargs->is_object()) {
      return InvalidField("chat_template_kwargs", "chat_template_kwargs must be an object");
    }
    req.chat_template_kwargs = ordered["chat_template_kwargs"];
  }
  return req;
}

absl::StatusOr<GenerationRequest> ParseCompletionRequest(const std::string& body,
                                                         const RequestLimits& limits) {
  TP_ASSIGN_OR_RETURN(json parsed, ParseJsonObject(body));
  GenerationRequest req;
  req.chat = false;
  req.add_special_tokens = true;
  TP_RETURN_IF_ERROR(ParseCommon(parsed, limits, &req));
  Fields f(parsed);
  TP_RETURN_IF_ERROR(ParseMaxTokens(f, "max_tokens", limits, &req));
  // OpenAI's completions default is 16 tokens; vLLM keeps that default.
  if (req.sampling.max_tokens() == 0) req.sampling.set_max_tokens(16);
  TP_RETURN_IF_ERROR(ParsePrompt(parsed, limits, &req));
  bool echo = false;
  TP_RETURN_IF_ERROR(f.Bool("echo", &echo));
  if (echo) return InvalidField("echo", "echo is not supported by this server");
  if (const json* suffix = f.Find("suffix")) {
    if (!suffix->is_string() || !suffix->get<std::string>().empty()) {
      return InvalidField("suffix", "suffix is not supported by this server");
    }
  }
  std::optional<int64_t> logprobs;
  TP_RETURN_IF_ERROR(f.Int("logprobs", 0, kMaxTopLogprobs, &logprobs));
  if (logprobs.has_value()) {
    req.completion_logprobs = true;
    req.sampling.set_logprobs(true);
    req.sampling.set_top_logprobs(static_cast<int32_t>(*logprobs));
  }
  TP_RETURN_IF_ERROR(f.Bool("add_special_tokens", &req.add_special_tokens));
  // Schemas keep their key order (it is the order properties are written in).
  TP_RETURN_IF_ERROR(ParseStructuredOutput(
      ordered_json::parse(body, nullptr, /*allow_exceptions=*/false), limits, &req));
  return req;
}

}  // namespace tpserve::gateway
