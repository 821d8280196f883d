#include "gateway/tool_calls.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tpserve::gateway {
namespace {

using nlohmann::json;

constexpr char kTwoCalls[] =
    "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"巴黎\", \"days\": 2}}\n"
    "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

TEST(ParseToolCallsTest, PlainTextIsContent) {
  ToolCallOutput out = ParseToolCalls("Just an answer.");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "Just an answer.");
}

TEST(ParseToolCallsTest, BlocksBecomeCallsAndPrefixStaysContent) {
  ToolCallOutput out = ParseToolCalls(kTwoCalls);
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.content, "Let me check.\n");
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(out.calls[0].arguments), json::parse(R"({"city": "巴黎", "days": 2})"));
  EXPECT_EQ(out.calls[1].name, "get_time");
  EXPECT_EQ(out.calls[1].arguments, "{}");
  EXPECT_EQ(out.calls[0].id.rfind("chatcmpl-tool-", 0), 0u);
  EXPECT_NE(out.calls[0].id, out.calls[1].id);
}

TEST(ParseToolCallsTest, NoTextBeforeTheCallsGivesNullContent) {
  ToolCallOutput out = ParseToolCalls("\n<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>\n");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_FALSE(out.content.has_value());
  EXPECT_EQ(out.calls[0].arguments, "{\"x\": 1}");  // a string argument is passed through
}

TEST(ParseToolCallsTest, CutOffLastBlockStillParses) {
  ToolCallOutput out = ParseToolCalls("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}\n");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(json::parse(out.calls[0].arguments), json::parse(R"({"a": [1, 2]})"));
}

TEST(ParseToolCallsTest, MalformedBlockLeavesEverythingAsContent) {
  for (const char* text : {"ok <tool_call>{\"name\": \"f\", \"arguments\": {</tool_call>",
                           "<tool_call>{\"arguments\": {}}</tool_call>", "<tool_call>[1, 2]</tool_call>",
                           "<tool_call>{\"name\": \"f\"}</tool_call><tool_call>oops</tool_call>"}) {
    ToolCallOutput out = ParseToolCalls(text);
    EXPECT_TRUE(out.calls.empty()) << text;
    EXPECT_EQ(out.content, text);
  }
}

// Model output is untrusted too: arguments nested 100,000 deep overflowed
// the stack when dumped back to a string.
TEST(ParseToolCallsTest, DeeplyNestedBlockStaysContent) {
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": " +
                           std::string(100000, '[') + std::string(100000, ']') + "}</tool_call>";
  ToolCallOutput out = ParseToolCalls(text);
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, text);
}

TEST(ToolCallsJsonTest, MessageAndDeltaShapes) {
  std::vector<ToolCall> calls = {{"chatcmpl-tool-1", "f", "{\"a\":1}"}};
  json message = ToolCallsJson(calls, false);
  EXPECT_EQ(message, json::parse(R"([{"id": "chatcmpl-tool-1", "type": "function",
                                     "function": {"name": "f", "arguments": "{\"a\":1}"}}])"));
  json delta = ToolCallsJson(calls, true);
  EXPECT_EQ(delta[0]["index"], 0);
  EXPECT_TRUE(ToolCallsJson({}, false).is_array());
}

// Streams `text` in pieces of `step` bytes; returns (content sent, finish).
std::pair<std::string, ToolCallOutput> Stream(const std::string& text, size_t step) {
  ToolCallStream s;
  std::string sent;
  for (size_t i = 0; i < text.size(); i += step) {
    std::string now = s.Feed(text.substr(i, step));
    EXPECT_EQ(now.find("<tool_call>"), std::string::npos);
    sent += now;
  }
  return {sent, s.Finish()};
}

TEST(ToolCallStreamTest, HoldsBackTheCallsAtAnyChunking) {
  for (size_t step : {1, 2, 3, 7, 11, 64, 1000}) {
    auto [sent, fin] = Stream(kTwoCalls, step);
    EXPECT_EQ(sent + fin.content.value_or(""), "Let me check.\n") << step;
    ASSERT_EQ(fin.calls.size(), 2u) << step;
    EXPECT_EQ(fin.calls[1].name, "get_time");
  }
}

TEST(ToolCallStreamTest, TextThatOnlyLooksLikeAMarkerIsSentInFull) {
  for (size_t step : {1, 3, 5}) {
    const std::string text = "a <tool but not a call, and a trailing <tool_c";
    auto [sent, fin] = Stream(text, step);
    EXPECT_TRUE(fin.calls.empty());
    EXPECT_EQ(sent + fin.content.value_or(""), text) << step;
    EXPECT_EQ(sent, "a <tool but not a call, and a trailing ") << step;  // the tail waited
  }
}

TEST(ToolCallStreamTest, UnparsableCallsComeBackAsText) {
  const std::string text = "x<tool_call>not json</tool_call>";
  auto [sent, fin] = Stream(text, 4);
  EXPECT_TRUE(fin.calls.empty());
  EXPECT_EQ(sent + fin.content.value_or(""), text);
}

}  // namespace
}  // namespace tpserve::gateway
