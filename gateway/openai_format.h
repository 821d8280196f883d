// OpenAI response shapes: chat.completion / text_completion objects, their
// streaming chunks, usage, and both logprobs shapes, plus SSE framing. Pure
// functions from plain structs to JSON, so the shapes are tested in one place.
#ifndef TPSERVE_GATEWAY_OPENAI_FORMAT_H_
#define TPSERVE_GATEWAY_OPENAI_FORMAT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/tool_calls.h"

namespace tpserve::gateway {

// One alternative token at a position.
struct TopLogprobEntry {
  // Decoded text of the token and its raw bytes.
  std::string token;
  std::string bytes;
  float logprob = 0.0f;
};

// The log-probability of one generated token and its alternatives.
struct LogprobEntry {
  std::string token;
  std::string bytes;
  float logprob = 0.0f;
  std::vector<TopLogprobEntry> top;
};

// Token accounting reported to the client.
struct UsageCounts {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

// Fields every object and chunk of one response shares.
struct ResponseHeader {
  // "chatcmpl-..." or "cmpl-...".
  std::string id;
  int64_t created = 0;
  std::string model;
};

// One finished choice of a non-streaming response.
struct ChoiceResult {
  int index = 0;
  std::string text;
  // "stop", "length" or "abort".
  std::string finish_reason;
  // vLLM's stop_reason: the matched stop string, the stop token id, or null.
  nlohmann::json stop_reason;
  std::vector<LogprobEntry> logprobs;
  // Whether logprobs were requested (null vs. an empty list).
  bool has_logprobs = false;
  // Chat with tools: the parsed calls, and whether content is null.
  std::vector<ToolCall> tool_calls;
  bool null_content = false;
};

// {"prompt_tokens", "completion_tokens", "total_tokens",
//  "prompt_tokens_details": {"cached_tokens"}}.
nlohmann::json UsageJson(const UsageCounts& usage);

// Chat shape: {"content": [{"token", "logprob", "bytes", "top_logprobs"}]}.
nlohmann::json ChatLogprobsJson(const std::vector<LogprobEntry>& entries);

// Completions shape: {"tokens", "token_logprobs", "top_logprobs",
// "text_offset"}; offsets count bytes from `text_offset_start`.
nlohmann::json CompletionLogprobsJson(const std::vector<LogprobEntry>& entries,
                                      int text_offset_start);

// A complete chat.completion object.
nlohmann::json ChatCompletionJson(const ResponseHeader& header,
                                  const std::vector<ChoiceResult>& choices,
                                  const UsageCounts& usage);

// A complete text_completion object.
nlohmann::json CompletionJson(const ResponseHeader& header,
                              const std::vector<ChoiceResult>& choices,
                              const UsageCounts& usage);

// One chat.completion.chunk with a single choice. `delta` is e.g.
// {"role": "assistant", "content": ""} or {"content": "..."}; finish_reason
// and logprobs may be null. `usage` (if given) is put on the chunk too.
nlohmann::json ChatChunkJson(const ResponseHeader& header, int index, nlohmann::json delta,
                             nlohmann::json logprobs, nlohmann::json finish_reason,
                             nlohmann::json stop_reason = nullptr);

// One streaming text_completion chunk with a single choice.
nlohmann::json CompletionChunkJson(const ResponseHeader& header, int index,
                                   const std::string& text, nlohmann::json logprobs,
                                   nlohmann::json finish_reason,
                                   nlohmann::json stop_reason = nullptr);

// The final usage-only chunk (empty "choices") for include_usage.
nlohmann::json UsageChunkJson(const ResponseHeader& header, bool chat,
                              const UsageCounts& usage);

// "data: <json>\n\n".
std::string SseData(const nlohmann::json& value);

// The stream terminator OpenAI clients wait for.
inline constexpr char kSseDone[] = "data: [DONE]\n\n";

// Serialises without throwing on invalid UTF-8 (replaced by U+FFFD).
std::string DumpJson(const nlohmann::json& value);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_OPENAI_FORMAT_H_
