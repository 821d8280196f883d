#include "gateway/openai_format.h"

#include <gtest/gtest.h>

namespace tpserve::gateway {
namespace {

using nlohmann::json;

const ResponseHeader kHeader{"chatcmpl-1", 1700000000, "tiny"};

TEST(OpenAiFormatTest, UsageHasTotalAndCachedTokens) {
  json usage = UsageJson({10, 5, 3});
  EXPECT_EQ(usage["total_tokens"], 15);
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], 3);
}

TEST(OpenAiFormatTest, ChatCompletionShape) {
  ChoiceResult c;
  c.index = 0;
  c.text = "hello";
  c.finish_reason = "stop";
  json out = ChatCompletionJson(kHeader, {c}, {4, 2, 0});
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(out["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(out["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(out["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(out["usage"]["total_tokens"], 6);
}

TEST(OpenAiFormatTest, ChatLogprobsShape) {
  LogprobEntry e{"hi", "hi", -0.5f, {{"hi", "hi", -0.5f}, {"ho", "ho", -1.5f}}};
  json lp = ChatLogprobsJson({e});
  ASSERT_EQ(lp["content"].size(), 1u);
  EXPECT_EQ(lp["content"][0]["token"], "hi");
  EXPECT_EQ(lp["content"][0]["bytes"], json::array({104, 105}));
  EXPECT_EQ(lp["content"][0]["top_logprobs"][1]["token"], "ho");
  EXPECT_FLOAT_EQ(lp["content"][0]["top_logprobs"][1]["logprob"].get<float>(), -1.5f);
}

TEST(OpenAiFormatTest, CompletionLogprobsShape) {
  LogprobEntry a{"ab", "ab", -0.5f, {{"ab", "ab", -0.5f}}};
  LogprobEntry b{"c", "c", -1.0f, {}};
  json lp = CompletionLogprobsJson({a, b}, 0);
  EXPECT_EQ(lp["tokens"], json::array({"ab", "c"}));
  EXPECT_EQ(lp["text_offset"], json::array({0, 2}));
  EXPECT_FLOAT_EQ(lp["top_logprobs"][0]["ab"].get<float>(), -0.5f);
  EXPECT_TRUE(lp["top_logprobs"][1].is_object());
}

TEST(OpenAiFormatTest, ChunksAndSseFraming) {
  json role = ChatChunkJson(kHeader, 0, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(SseData(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  json usage = UsageChunkJson(kHeader, true, {1, 2, 0});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 3);
  json text = CompletionChunkJson(kHeader, 1, "x", nullptr, "length");
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["index"], 1);
  EXPECT_EQ(text["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

TEST(OpenAiFormatTest, InvalidUtf8IsReplacedNotThrown) {
  EXPECT_NO_THROW(SseData(json{{"t", std::string("\xff")}}));
}

}  // namespace
}  // namespace tpserve::gateway
