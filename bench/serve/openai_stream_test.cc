#include "bench/serve/openai_stream.h"

#include <gtest/gtest.h>

namespace tpserve::bench {
namespace {

using nlohmann::json;

std::string Chunk(const std::string& text) {
  return "data: " + json({{"choices", {{{"index", 0}, {"text", text}}}}}).dump() + "\n\n";
}
std::string ChatChunk(const json& delta) {
  return "data: " + json({{"choices", {{{"index", 0}, {"delta", delta}}}}}).dump() + "\n\n";
}
const char kUsage[] =
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3}}\n\n";

TEST(RequestBodyTest, CompletionsSendTokenIdsAndVllmDefaults) {
  SampleRequest r;
  r.prompt_ids = {1, 2, 3};
  r.prompt_len = 3;
  r.expected_output_len = 8;
  json b = json::parse(
      BuildRequestBody(ApiKind::kCompletions, "m", r, {{"ignore_eos", true}, {"top_k", 5}}));
  EXPECT_EQ(b["model"], "m");
  EXPECT_EQ(b["prompt"], json({1, 2, 3}));
  EXPECT_EQ(b["max_tokens"], 8);
  EXPECT_EQ(b["temperature"], 0.0);
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["ignore_eos"], true);
  EXPECT_EQ(b["top_k"], 5);
}

TEST(RequestBodyTest, ChatSendsTextAndParamsWin) {
  SampleRequest r;
  r.prompt = "hello";
  r.expected_output_len = 4;
  json b = json::parse(BuildRequestBody(ApiKind::kChat, "m", r, {{"temperature", 0.5}}));
  EXPECT_EQ(b["messages"], json::parse(R"([{"role":"user","content":"hello"}])"));
  EXPECT_EQ(b["max_completion_tokens"], 4);
  EXPECT_EQ(b["temperature"], 0.5);
  EXPECT_FALSE(b.contains("prompt"));
}

TEST(StreamReaderTest, CompletionsTimingTextAndUsage) {
  StreamReader r(ApiKind::kCompletions, 7, 10.0);
  r.OnData(Chunk("a"), 10.5, 200);
  // The second event is split across two reads: it counts when it completes.
  const std::string two = Chunk("b") + Chunk("c");
  r.OnData(two.substr(0, 10), 10.6, 200);
  r.OnData(two.substr(10), 10.75, 200);
  r.OnData(std::string(kUsage) + "data: [DONE]\n\n", 10.8, 200);
  RequestOutput o = r.Finish("", 200, 10.9);
  ASSERT_TRUE(o.success) << o.error;
  EXPECT_DOUBLE_EQ(o.ttft, 0.5);
  ASSERT_EQ(o.itl.size(), 2u);
  EXPECT_NEAR(o.itl[0], 0.25, 1e-9);  // b and c arrived in the same read
  EXPECT_NEAR(o.itl[1], 0.0, 1e-9);
  EXPECT_NEAR(o.latency, 0.75, 1e-9);  // to the last chunk with a choice
  EXPECT_EQ(o.generated_text, "abc");
  EXPECT_EQ(o.output_tokens, 3);
  EXPECT_EQ(o.prompt_len, 7);
}

TEST(StreamReaderTest, ChatDeltas) {
  StreamReader r(ApiKind::kChat, 1, 0.0);
  r.OnData(ChatChunk({{"role", "assistant"}, {"content", ""}}), 0.1, 200);
  r.OnData(ChatChunk({{"content", "Hi"}}) + ChatChunk({{"content", nullptr}}), 0.2, 200);
  r.OnData("data: [DONE]\n\n", 0.3, 200);
  RequestOutput o = r.Finish("", 200, 0.3);
  ASSERT_TRUE(o.success) << o.error;
  EXPECT_DOUBLE_EQ(o.ttft, 0.1);  // the first chunk with a choice, as vLLM
  EXPECT_EQ(o.generated_text, "Hi");
  EXPECT_EQ(o.output_tokens, 0);  // no usage sent
}

TEST(StreamReaderTest, Failures) {
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData(R"({"error": {"message": "Invalid API key", "type": "authentication_error"}})", 0.1,
             401);
    RequestOutput o = r.Finish("", 401, 0.1);
    EXPECT_FALSE(o.success);
    EXPECT_EQ(o.error, "HTTP 401: Invalid API key");
    EXPECT_EQ(o.http_status, 401);
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData(Chunk("a") + "data: {\"error\": {\"message\": \"worker died\"}}\n\ndata: [DONE]\n\n",
             0.1, 200);
    RequestOutput o = r.Finish("", 200, 0.1);
    EXPECT_FALSE(o.success);
    EXPECT_EQ(o.error, "error in stream: worker died");
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData(Chunk("a"), 0.1, 200);
    RequestOutput o = r.Finish("", 200, 0.1);
    EXPECT_EQ(o.error, "the stream ended before data: [DONE]");
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData("data: [DONE]\n\n", 0.1, 200);
    EXPECT_EQ(r.Finish("", 200, 0.1).error, "the stream carried no chunk with a choice");
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData("data: {not json\n\n", 0.1, 200);
    EXPECT_NE(r.Finish("", 200, 0.1).error.find("unparseable chunk"), std::string::npos);
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    RequestOutput o = r.Finish("Couldn't connect to server", 0, 0.1);
    EXPECT_EQ(o.error, "Couldn't connect to server");
    EXPECT_EQ(o.http_status, 0);
  }
  {
    StreamReader r(ApiKind::kCompletions, 1, 0.0);
    r.OnData("<html>Bad Gateway</html>", 0.1, 502);
    EXPECT_EQ(r.Finish("", 502, 0.1).error, "HTTP 502: <html>Bad Gateway</html>");
  }
}

}  // namespace
}  // namespace tpserve::bench
