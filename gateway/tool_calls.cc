#include "gateway/tool_calls.h"

#include <algorithm>

#include "gateway/json_depth.h"
#include "gateway/random_id.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// One block's JSON as a call; nullopt if it is not {"name": str, ...}.
std::optional<ToolCall> ParseBlock(const std::string& body) {
  // Model output is as untrusted as a request: a prompt can make the model
  // emit thousands of nested brackets.
  if (!JsonDepthWithin(body)) return std::nullopt;
  json j = json::parse(Trim(body), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  ToolCall call;
  call.id = RandomId("chatcmpl-tool-");
  call.name = j["name"].get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_string()) {
    call.arguments = args->get<std::string>();
  } else {
    call.arguments = args->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return call;
}

}  // namespace

ToolCallOutput ParseToolCalls(const std::string& text) {
  ToolCallOutput out;
  const size_t first = text.find(kToolCallStart);
  if (first == std::string::npos) {
    out.content = text;
    return out;
  }
  const size_t start_len = sizeof(kToolCallStart) - 1, end_len = sizeof(kToolCallEnd) - 1;
  for (size_t pos = first; pos != std::string::npos;) {
    const size_t body = pos + start_len;
    const size_t end = text.find(kToolCallEnd, body);
    // A last block may be cut off (max_tokens) before its end marker.
    std::optional<ToolCall> call = ParseBlock(text.substr(body, end == std::string::npos ? std::string::npos : end - body));
    if (!call) {
      out.calls.clear();
      out.content = text;
      return out;
    }
    out.calls.push_back(std::move(*call));
    if (end == std::string::npos) break;
    pos = text.find(kToolCallStart, end + end_len);
  }
  std::string prefix = text.substr(0, first);
  if (!Trim(prefix).empty()) out.content = std::move(prefix);
  return out;
}

json ToolCallsJson(const std::vector<ToolCall>& calls, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id},
              {"type", "function"},
              {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (with_index) c["index"] = i;
    out.push_back(std::move(c));
  }
  return out;
}

std::string ToolCallStream::Feed(const std::string& delta) {
  held_ += delta;
  if (in_calls_) return "";
  const size_t marker = held_.find(kToolCallStart);
  std::string now;
  if (marker != std::string::npos) {
    now = held_.substr(0, marker);
    held_.erase(0, marker);
    in_calls_ = true;
  } else {
    // Keep back the longest tail that could still grow into the marker.
    size_t keep = 0;
    const std::string m = kToolCallStart;
    for (size_t k = std::min(held_.size(), m.size() - 1); k > 0; --k) {
      if (held_.compare(held_.size() - k, k, m, 0, k) == 0) {
        keep = k;
        break;
      }
    }
    now = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
  }
  return now;
}

ToolCallOutput ToolCallStream::Finish() {
  ToolCallOutput out;
  if (in_calls_) {
    out = ParseToolCalls(held_);  // calls, or the raw text if they do not parse
  } else {
    out.content = held_;
  }
  held_.clear();
  return out;
}

}  // namespace tpserve::gateway
