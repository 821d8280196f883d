// Tool calls through the whole gateway: the fake router streams a Qwen-style
// <tool_call> reply, and the HTTP answer carries OpenAI tool_calls.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "gateway/testing/gateway_fixture.h"
#include "gateway/testing/raw_http.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;
using testing::Request;
using testing::SseEvents;

constexpr char kToolReply[] =
    "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

std::string ChatWithTools(bool stream, const char* tool_choice) {
  json body = {{"model", "tiny"},
               {"stream", stream},
               {"max_tokens", 100},
               {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}},
               {"tools",
                {{{"type", "function"},
                  {"function",
                   {{"name", "get_weather"},
                    {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}}}}};
  if (tool_choice != nullptr) body["tool_choice"] = tool_choice;
  return body.dump();
}

class ToolCallsServerTest : public testing::GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    auto ids = tokenizer_->Encode(kToolReply, false);
    testing::FakeRouterScript s = Script();
    s.reply_tokens.assign(ids.begin(), ids.end());
    router_->SetScript(s);
    StartGateway();
  }
};

TEST_F(ToolCallsServerTest, NonStreamingReturnsToolCalls) {
  auto r = Request(port(), "POST", "/v1/chat/completions", ChatWithTools(false, nullptr));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Body(r);
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "Checking.\n");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << r.body;
  const json& call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), json::parse(R"({"city": "Paris"})"));
  EXPECT_TRUE(call["id"].is_string());
}

TEST_F(ToolCallsServerTest, StreamingSendsContentThenOneToolCallsDelta) {
  auto r = Request(port(), "POST", "/v1/chat/completions", ChatWithTools(true, "auto"));
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = SseEvents(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string content, finish;
  json calls;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    json delta = json::parse(events[i])["choices"][0]["delta"];
    content += delta.value("content", "");
    EXPECT_EQ(delta.value("content", "").find("<tool_call>"), std::string::npos);
    if (delta.contains("tool_calls")) {
      EXPECT_TRUE(calls.is_null()) << "tool_calls sent twice";
      calls = delta["tool_calls"];
    }
    json f = json::parse(events[i])["choices"][0]["finish_reason"];
    if (!f.is_null()) finish = f;
  }
  EXPECT_EQ(content, "Checking.\n");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(finish, "tool_calls");
}

TEST_F(ToolCallsServerTest, ToolChoiceNoneLeavesTheTextAlone) {
  auto r = Request(port(), "POST", "/v1/chat/completions", ChatWithTools(false, "none"));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = Body(r);
  EXPECT_EQ(j["choices"][0]["message"]["content"], kToolReply);
  EXPECT_TRUE(j["choices"][0]["message"]["tool_calls"].empty());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

}  // namespace
}  // namespace tpserve::gateway
