// The small endpoints: errors, /v1/models, /health, /metrics, /version,
// /tokenize, /detokenize.
#include <chrono>

#include "common/status_macros.h"
#include "gateway/http_error.h"
#include "gateway/http_handlers.h"
#include "gateway/openai_format.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;

void WriteJson(const json& body, HttpResponse& res) { res.SetContent(DumpJson(body), "application/json"); }

// vLLM's /tokenize: either {"prompt"} or chat {"messages"}.
absl::StatusOr<json> Tokenize(const GatewayContext& ctx, const std::string& body) {
  TP_ASSIGN_OR_RETURN(json j, ParseJsonObject(body));
  RequestLimits limits = ctx.limits();
  // /tokenize accepts any sampling-free body; only the model is checked.
  if (auto model = j.find("model"); model != j.end() && !model->is_null()) {
    bool known = model->is_string() &&
                 std::find(limits.served_model_names.begin(), limits.served_model_names.end(),
                           model->get<std::string>()) != limits.served_model_names.end();
    if (!known) return absl::NotFoundError("The model `" + model->dump() + "` does not exist.");
  }
  std::vector<int> ids;
  if (j.contains("messages")) {
    // The chat parser validates messages/tools and reads
    // add_generation_prompt, add_special_tokens and chat_template_kwargs
    // with the same defaults as vLLM's /tokenize.
    TP_ASSIGN_OR_RETURN(GenerationRequest r, ParseChatRequest(body, limits));
    TP_ASSIGN_OR_RETURN(std::string text,
                        ctx.text->RenderChat(r.messages, r.tools, r.add_generation_prompt,
                                             r.chat_template_kwargs));
    ids = ctx.text->Encode(text, r.add_special_tokens);
  } else if (j.contains("prompt")) {
    if (!j["prompt"].is_string()) return InvalidField("prompt", "prompt must be a string");
    bool add_special = true;
    if (j.contains("add_special_tokens")) {
      if (!j["add_special_tokens"].is_boolean()) {
        return InvalidField("add_special_tokens", "add_special_tokens must be a boolean");
      }
      add_special = j["add_special_tokens"].get<bool>();
    }
    ids = ctx.text->Encode(j["prompt"].get<std::string>(), add_special);
  } else {
    return InvalidField("prompt", "either prompt or messages is required");
  }
  return json{{"count", ids.size()},
              {"max_model_len", ctx.max_model_len()},
              {"tokens", ids},
              {"token_strs", nullptr}};
}

absl::StatusOr<json> Detokenize(const GatewayContext& ctx, const std::string& body) {
  TP_ASSIGN_OR_RETURN(json j, ParseJsonObject(body));
  auto tokens = j.find("tokens");
  if (tokens == j.end() || !tokens->is_array()) {
    return InvalidField("tokens", "tokens must be a list of token ids");
  }
  std::vector<int> ids;
  for (const json& t : *tokens) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() >= ctx.text->vocab_size()) {
      return InvalidField("tokens", "tokens must be integers in [0, " +
                                        std::to_string(ctx.text->vocab_size()) + ")");
    }
    ids.push_back(t.get<int>());
  }
  return json{{"prompt", ctx.text->Decode(ids, /*skip_special_tokens=*/false)}};
}

}  // namespace

void WriteError(const absl::Status& status, HttpResponse& res) {
  HttpError error = ToHttpError(status);
  res.status = error.http_status;
  if (error.retry_after_s.has_value()) {
    res.headers.emplace_back("Retry-After", std::to_string(*error.retry_after_s));
  }
  res.SetContent(std::move(error.body), "application/json");
}

void HandleModels(const GatewayContext& ctx, const HttpRequest&, HttpResponse& res) {
  int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  json data = json::array();
  for (const std::string& name : ctx.served_model_names) {
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", created},
                    {"owned_by", "tpserve"},
                    {"root", ctx.model_dir},
                    {"parent", nullptr},
                    {"max_model_len", ctx.max_model_len()},
                    {"permission", json::array()}});
  }
  WriteJson({{"object", "list"}, {"data", data}}, res);
}

void HandleHealth(const GatewayContext& ctx, const HttpRequest&, HttpResponse& res) {
  if (ctx.draining.load()) {
    return WriteError(ShownToClients(absl::UnavailableError("shutting down")), res);
  }
  if (!ctx.routers->AnyReady()) {
    return WriteError(ShownToClients(absl::UnavailableError("no router is ready")), res);
  }
  res.status = 200;
}

void HandleMetrics(GatewayContext& ctx, const HttpRequest&, HttpResponse& res) {
  res.SetContent(ctx.metrics->Render(ctx.routers.get()), "text/plain; version=0.0.4");
}

void HandleVersion(const GatewayContext&, const HttpRequest&, HttpResponse& res) {
  WriteJson({{"version", kGatewayVersion}}, res);
}

void HandleTokenize(const GatewayContext& ctx, const HttpRequest& req,
                    HttpResponse& res) {
  auto out = Tokenize(ctx, req.body);
  if (!out.ok()) return WriteError(out.status(), res);
  WriteJson(*out, res);
}

void HandleDetokenize(const GatewayContext& ctx, const HttpRequest& req,
                      HttpResponse& res) {
  auto out = Detokenize(ctx, req.body);
  if (!out.ok()) return WriteError(out.status(), res);
  WriteJson(*out, res);
}

}  // namespace tpserve::gateway
