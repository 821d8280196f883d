#include "gateway/openai_format.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;

json BytesJson(const std::string& bytes) {
  json out = json::array();
  for (unsigned char c : bytes) out.push_back(static_cast<int>(c));
  return out;
}

// One streamed choice in its envelope; chat and completions differ only in
// the object name and the key of the content ("delta" or "text").
json StreamChunkJson(const ResponseHeader& header, const char* object, int index,
                     const char* content_key, json content, json logprobs, json finish_reason,
                     json stop_reason) {
  json choice = {{"index", index},
                 {content_key, std::move(content)},
                 {"logprobs", std::move(logprobs)},
                 {"finish_reason", std::move(finish_reason)}};
  if (!stop_reason.is_null()) choice["stop_reason"] = std::move(stop_reason);
  return {{"id", header.id},
          {"object", object},
          {"created", header.created},
          {"model", header.model},
          {"choices", json::array({choice})}};
}

}  // namespace

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

json UsageJson(const UsageCounts& usage) {
  return {
      {"prompt_tokens", usage.prompt_tokens},
      {"completion_tokens", usage.completion_tokens},
      {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
      {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}},
  };
}

json ChatLogprobsJson(const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const LogprobEntry& e : entries) {
    json top = json::array();
    for (const TopLogprobEntry& t : e.top) {
      top.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", BytesJson(t.bytes)}});
    }
    content.push_back({{"token", e.token},
                       {"logprob", e.logprob},
                       {"bytes", BytesJson(e.bytes)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json CompletionLogprobsJson(const std::vector<LogprobEntry>& entries, int text_offset_start) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       offsets = json::array();
  int offset = text_offset_start;
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token);
    token_logprobs.push_back(e.logprob);
    json top = json::object();
    for (const TopLogprobEntry& t : e.top) top[t.token] = t.logprob;
    top_logprobs.push_back(top);
    offsets.push_back(offset);
    offset += static_cast<int>(e.token.size());
  }
  return {{"tokens", tokens},
          {"token_logprobs", token_logprobs},
          {"top_logprobs", top_logprobs},
          {"text_offset", offsets}};
}

json ChatCompletionJson(const ResponseHeader& header, const std::vector<ChoiceResult>& choices,
                        const UsageCounts& usage) {
  json out_choices = json::array();
  for (const ChoiceResult& c : choices) {
    out_choices.push_back({
        {"index", c.index},
        {"message",
         {{"role", "assistant"},
          {"content", c.null_content ? json(nullptr) : json(c.text)},
          {"tool_calls", ToolCallsJson(c.tool_calls, false)}}},
        {"logprobs", c.has_logprobs ? ChatLogprobsJson(c.logprobs) : json(nullptr)},
        {"finish_reason", c.finish_reason},
        {"stop_reason", c.stop_reason},
    });
  }
  return {{"id", header.id},           {"object", "chat.completion"},
          {"created", header.created}, {"model", header.model},
          {"choices", out_choices},    {"usage", UsageJson(usage)}};
}

json CompletionJson(const ResponseHeader& header, const std::vector<ChoiceResult>& choices,
                    const UsageCounts& usage) {
  json out_choices = json::array();
  for (const ChoiceResult& c : choices) {
    out_choices.push_back({
        {"index", c.index},
        {"text", c.text},
        {"logprobs", c.has_logprobs ? CompletionLogprobsJson(c.logprobs, 0) : json(nullptr)},
        {"finish_reason", c.finish_reason},
        {"stop_reason", c.stop_reason},
    });
  }
  return {{"id", header.id},           {"object", "text_completion"},
          {"created", header.created}, {"model", header.model},
          {"choices", out_choices},    {"usage", UsageJson(usage)}};
}

json ChatChunkJson(const ResponseHeader& header, int index, json delta, json logprobs,
                   json finish_reason, json stop_reason) {
  return StreamChunkJson(header, "chat.completion.chunk", index, "delta", std::move(delta),
                         std::move(logprobs), std::move(finish_reason), std::move(stop_reason));
}

json CompletionChunkJson(const ResponseHeader& header, int index, const std::string& text,
                         json logprobs, json finish_reason, json stop_reason) {
  return StreamChunkJson(header, "text_completion", index, "text", text, std::move(logprobs),
                         std::move(finish_reason), std::move(stop_reason));
}

json UsageChunkJson(const ResponseHeader& header, bool chat, const UsageCounts& usage) {
  return {{"id", header.id},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", header.created},
          {"model", header.model},
          {"choices", json::array()},
          {"usage", UsageJson(usage)}};
}

std::string SseData(const json& value) { return "data: " + DumpJson(value) + "\n\n"; }

}  // namespace tpserve::gateway
