// Tool calls in Qwen2 (Hermes-style) chat output: the chat template asks the
// model to answer a tool request with one or more
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// blocks. When a chat request carries `tools` (and tool_choice is not
// "none"), the gateway turns them into OpenAI `tool_calls` the way vLLM's
// hermes parser does: the text before the first block stays `content` (null
// when empty), each block becomes a call whose `arguments` is a JSON string,
// and finish_reason becomes "tool_calls". If any block is not a JSON object
// with a string "name", nothing is parsed and the whole text is content.
#ifndef TPSERVE_GATEWAY_TOOL_CALLS_H_
#define TPSERVE_GATEWAY_TOOL_CALLS_H_

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tpserve::gateway {

struct ToolCall {
  std::string id;         // "chatcmpl-tool-<hex>"
  std::string name;
  std::string arguments;  // JSON text
};

struct ToolCallOutput {
  std::optional<std::string> content;  // nullopt: null content
  std::vector<ToolCall> calls;
};

inline constexpr char kToolCallStart[] = "<tool_call>";
inline constexpr char kToolCallEnd[] = "</tool_call>";

// Splits a complete model output (see the file comment).
ToolCallOutput ParseToolCalls(const std::string& text);

// The OpenAI `tool_calls` array of a message (non-streaming), or of a
// streaming delta when `with_index` (each call then carries its "index").
nlohmann::json ToolCallsJson(const std::vector<ToolCall>& calls, bool with_index);

// Streaming: passes content through as it arrives until a "<tool_call>"
// marker begins, holding back a possible partial marker at the end of the
// text so far; everything from the first marker on waits for Finish().
class ToolCallStream {
 public:
  // Content that can be sent now.
  std::string Feed(const std::string& delta);
  // At the end of the output: content still held back (a partial marker
  // that never completed, or the raw text when the calls do not parse) and
  // the parsed calls.
  ToolCallOutput Finish();

 private:
  std::string held_;       // not yet sent
  bool in_calls_ = false;  // held_ starts with a marker
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_TOOL_CALLS_H_
