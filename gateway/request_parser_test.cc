#include "gateway/request_parser.h"

#include <gtest/gtest.h>

#include "gateway/http_error.h"

namespace tpserve::gateway {
namespace {

RequestLimits Limits() {
  RequestLimits limits;
  limits.served_model_names = {"tiny"};
  limits.max_n = 4;
  limits.max_stop_strings = 2;
  limits.max_model_len = 100;
  limits.vocab_size = 1000;
  limits.generation_defaults.temperature = 0.7;
  limits.generation_defaults.top_p = 0.8;
  limits.generation_defaults.top_k = 20;
  limits.generation_defaults.repetition_penalty = 1.05;
  return limits;
}

constexpr char kMessages[] = R"("messages": [{"role": "user", "content": "hi"}])";

std::string Chat(const std::string& extra) {
  return std::string("{\"model\": \"tiny\", ") + kMessages + (extra.empty() ? "" : ", " + extra) +
         "}";
}

TEST(RequestParserTest, ChatDefaultsComeFromGenerationConfig) {
  auto req = ParseChatRequest(Chat(""), Limits());
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_TRUE(req->chat);
  EXPECT_FLOAT_EQ(req->sampling.temperature(), 0.7f);
  EXPECT_FLOAT_EQ(req->sampling.top_p(), 0.8f);
  EXPECT_EQ(req->sampling.top_k(), 20);
  EXPECT_FLOAT_EQ(req->sampling.repetition_penalty(), 1.05f);
  EXPECT_FLOAT_EQ(req->sampling.min_p(), 0.0f);
  EXPECT_EQ(req->sampling.max_tokens(), 0);  // unset: filled from context left
  EXPECT_FALSE(req->sampling.has_seed());
  EXPECT_EQ(req->n, 1);
  EXPECT_FALSE(req->add_special_tokens);
}

TEST(RequestParserTest, NeutralDefaultsWithoutGenerationConfig) {
  RequestLimits limits = Limits();
  limits.generation_defaults = GenerationConfig();
  auto req = ParseChatRequest(Chat(""), limits);
  ASSERT_TRUE(req.ok());
  EXPECT_FLOAT_EQ(req->sampling.temperature(), 1.0f);
  EXPECT_FLOAT_EQ(req->sampling.top_p(), 1.0f);
  EXPECT_EQ(req->sampling.top_k(), 0);
  EXPECT_FLOAT_EQ(req->sampling.repetition_penalty(), 1.0f);
}

TEST(RequestParserTest, ChatFieldsOverrideDefaults) {
  auto req = ParseChatRequest(
      Chat(R"("temperature": 0, "top_p": 0.5, "top_k": -1, "min_p": 0.1, "seed": 7,
             "max_completion_tokens": 9, "max_tokens": 50, "n": 2, "stop": ["a", "b"],
             "stop_token_ids": [5], "presence_penalty": 1, "frequency_penalty": -1,
             "repetition_penalty": 1.2, "logprobs": true, "top_logprobs": 3,
             "ignore_eos": true, "min_tokens": 2, "stream": true,
             "stream_options": {"include_usage": true}, "user": "u",
             "tools": [{"type": "function", "function": {"name": "f"}}])"),
      Limits());
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_FLOAT_EQ(req->sampling.temperature(), 0.0f);
  EXPECT_FLOAT_EQ(req->sampling.top_p(), 0.5f);
  EXPECT_EQ(req->sampling.top_k(), 0);
  EXPECT_FLOAT_EQ(req->sampling.min_p(), 0.1f);
  EXPECT_EQ(req->sampling.seed(), 7u);
  EXPECT_EQ(req->sampling.max_tokens(), 9);  // max_completion_tokens wins
  EXPECT_EQ(req->n, 2);
  EXPECT_EQ(req->stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(req->sampling.stop_token_ids(0), 5);
  EXPECT_FLOAT_EQ(req->sampling.presence_penalty(), 1.0f);
  EXPECT_FLOAT_EQ(req->sampling.frequency_penalty(), -1.0f);
  EXPECT_FLOAT_EQ(req->sampling.repetition_penalty(), 1.2f);
  EXPECT_TRUE(req->sampling.logprobs());
  EXPECT_EQ(req->sampling.top_logprobs(), 3);
  EXPECT_TRUE(req->sampling.ignore_eos());
  EXPECT_EQ(req->sampling.min_tokens(), 2);
  EXPECT_TRUE(req->stream);
  EXPECT_TRUE(req->include_usage);
  EXPECT_EQ(req->user, "u");
  EXPECT_TRUE(req->tools.is_array());
}

TEST(RequestParserTest, ContentPartsAndToolCallsAreNormalised) {
  auto req = ParseChatRequest(R"({"model": "tiny", "messages": [
      {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function",
          "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
      {"role": "tool", "content": "r", "tool_call_id": "1"}]})",
                              Limits());
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->messages[0]["role"], "system");
  EXPECT_EQ(req->messages[0]["content"], "a\nb");
  EXPECT_EQ(req->messages[1]["tool_calls"][0]["function"]["arguments"]["x"], 1);
}

// Each bad body must fail with the named param and the right code.
TEST(RequestParserTest, BadChatFieldsNameTheField) {
  struct Case {
    std::string body;
    std::string param;
  };
  const Case cases[] = {
      {Chat(R"("temperature": -1)"), "temperature"},
      {Chat(R"("temperature": "hot")"), "temperature"},
      {Chat(R"("top_p": 0)"), "top_p"},
      {Chat(R"("top_p": 1.5)"), "top_p"},
      {Chat(R"("top_k": -2)"), "top_k"},
      {Chat(R"("min_p": 2)"), "min_p"},
      {Chat(R"("n": 0)"), "n"},
      {Chat(R"("n": 5)"), "n"},
      {Chat(R"("n": 1.5)"), "n"},
      {Chat(R"("max_tokens": 0)"), "max_tokens"},
      {Chat(R"("max_tokens": 101)"), "max_tokens"},
      {Chat(R"("max_completion_tokens": -3)"), "max_completion_tokens"},
      {Chat(R"("stop": ["a", "b", "c"])"), "stop"},
      {Chat(R"("stop": [1])"), "stop"},
      {Chat(R"("stop": "")"), "stop"},
      {Chat(R"("stop_token_ids": [1000])"), "stop_token_ids"},
      {Chat(R"("stop_token_ids": "x")"), "stop_token_ids"},
      {Chat(R"("presence_penalty": 3)"), "presence_penalty"},
      {Chat(R"("frequency_penalty": -2.5)"), "frequency_penalty"},
      {Chat(R"("repetition_penalty": 0)"), "repetition_penalty"},
      {Chat(R"("logprobs": 1)"), "logprobs"},
      {Chat(R"("top_logprobs": 2)"), "top_logprobs"},
      {Chat(R"("logprobs": true, "top_logprobs": 21)"), "top_logprobs"},
      {Chat(R"("ignore_eos": "yes")"), "ignore_eos"},
      {Chat(R"("min_tokens": 5, "max_tokens": 2)"), "min_tokens"},
      {Chat(R"("stream": 1)"), "stream"},
      {Chat(R"("stream_options": {"include_usage": true})"), "stream_options"},
      {Chat(R"("stream": true, "stream_options": {"include_usage": 1})"), "stream_options"},
      {Chat(R"("seed": "x")"), "seed"},
      {Chat(R"("user": 5)"), "user"},
      {Chat(R"("tools": [{"type": "x"}])"), "tools"},
      // Checked without tools too (issue 22: it was silently ignored);
      // "required" with tools is structured_request_test's.
      {Chat(R"("tool_choice": "required")"), "tool_choice"},
      {Chat(R"("tool_choice": {"type": "function", "function": {"name": "f"}})"), "tool_choice"},
      {Chat(R"("tool_choice": 5)"), "tool_choice"},
      {R"({"model": "tiny"})", "messages"},
      {R"({"model": "tiny", "messages": []})", "messages"},
      {R"({"model": "tiny", "messages": [{"role": "bot", "content": "x"}]})", "messages"},
      {R"({"model": "tiny", "messages": [{"role": "user"}]})", "messages"},
      {R"({"model": "tiny", "messages": [{"role": "user", "content": 5}]})", "messages"},
      {R"({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages"},
      {R"({"model": 5, "messages": [{"role": "user", "content": "x"}]})", "model"},
      // A "type" of another JSON type (found by the fuzzer: nlohmann's value() threw).
      {R"({"model": "tiny", "messages": [{"role": "user", "content": [{"type": {}, "text": "x"}]}]})",
       "messages"},
      {Chat(R"("tools": [{"type": 1, "function": {"name": "f"}}])"), "tools"},
  };
  for (const Case& c : cases) {
    auto req = ParseChatRequest(c.body, Limits());
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ErrorParam(req.status()).value_or(""), c.param) << c.body << " " << req.status();
  }
}

TEST(RequestParserTest, UnknownRoleListsTheAcceptedOnes) {
  auto req = ParseChatRequest(R"({"messages": [{"role": "bot", "content": "x"}]})", Limits());
  ASSERT_FALSE(req.ok());
  EXPECT_NE(req.status().message().find("system, developer, user, assistant, tool"),
            absl::string_view::npos)
      << req.status();
}

// issue 22: 300 prompts x n=16 in one request flooded the queue (29 s,
// 1,500 gateway threads); prompts x n is bounded.
TEST(RequestParserTest, PromptsTimesNIsBounded) {
  RequestLimits limits = Limits();
  limits.max_choices = 8;
  auto ok = ParseCompletionRequest(R"({"prompt": ["a", "b", "c", "d"], "n": 2})", limits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  struct Case {
    std::string body;
    std::string param;
  };
  const Case cases[] = {
      {R"({"prompt": ["a", "b", "c"], "n": 3})", "prompt"},
      {R"({"prompt": [[1], [2], [3], [4], [5], [6], [7], [8], [9]]})", "prompt"},
  };
  for (const Case& c : cases) {
    auto req = ParseCompletionRequest(c.body, limits);
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(ErrorParam(req.status()).value_or(""), c.param) << req.status();
    EXPECT_NE(req.status().message().find("at most 8"), absl::string_view::npos) << req.status();
  }
  limits.max_choices = 2;
  auto chat = ParseChatRequest(Chat(R"("n": 3)"), limits);
  ASSERT_FALSE(chat.ok());
  EXPECT_EQ(ErrorParam(chat.status()).value_or(""), "n");
  // A single prompt of token ids counts once.
  EXPECT_TRUE(ParseCompletionRequest(R"({"prompt": [1, 2, 3, 4, 5], "n": 2})", limits).ok());
}

TEST(RequestParserTest, UnknownModelIsNotFound) {
  auto req = ParseChatRequest(R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})",
                              Limits());
  EXPECT_EQ(req.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(req.status().message().find("tiny"), absl::string_view::npos);
}

TEST(RequestParserTest, BodyMustBeJsonObject) {
  EXPECT_EQ(ParseChatRequest("{", Limits()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseChatRequest("[1]", Limits()).status().code(), absl::StatusCode::kInvalidArgument);
}

// issue 22: ~70,000 nested arrays anywhere in a body overflowed the stack
// (the gateway crashed). Every place client JSON reaches is refused with a
// 400 before anything walks it.
TEST(RequestParserTest, DeeplyNestedJsonIsRefusedEverywhere) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_string = "\"" + std::string(100000, '[') + std::string(100000, ']') + "\"";
  const std::string chat[] = {
      R"({"messages": [{"role": "user", "content": )" + deep + "}]}",
      R"({"messages": [{"role": "user", "content": "x", "name": )" + deep + "}]}",
      Chat(R"("tools": [{"type": "function", "function": {"name": "f", "parameters": )" + deep +
           "}}]"),
      Chat(R"("chat_template_kwargs": {"x": )" + deep + "}"),
      // A JSON string that is itself parsed: tool_calls[].function.arguments.
      R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"type": "function",
          "function": {"name": "f", "arguments": )" + deep_string + "}}]}]}",
  };
  for (const std::string& body : chat) {
    auto req = ParseChatRequest(body, Limits());
    ASSERT_FALSE(req.ok()) << body.substr(0, 120);
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find("deeper than 128 levels"), absl::string_view::npos)
        << req.status();
  }
  auto completion = ParseCompletionRequest(R"({"prompt": )" + deep + "}", Limits());
  EXPECT_EQ(completion.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJsonObject(deep).status().code(), absl::StatusCode::kInvalidArgument);
  // Nesting within the bound still parses (a tool schema 60 objects deep).
  std::string schema = "{}";
  for (int i = 0; i < 60; ++i) schema = R"({"type": "object", "properties": {"p": )" + schema + "}}";
  ASSERT_TRUE(ParseChatRequest(Chat(R"("tools": [{"type": "function", "function": {"name": "f",
                                       "parameters": )" + schema + "}}]"),
                               Limits())
                  .ok());
}

TEST(RequestParserTest, CompletionPromptShapes) {
  auto text = ParseCompletionRequest(R"({"model": "tiny", "prompt": "hello"})", Limits());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->prompt_texts, std::vector<std::string>{"hello"});
  EXPECT_EQ(text->sampling.max_tokens(), 16);  // OpenAI's completions default
  EXPECT_TRUE(text->add_special_tokens);
  auto texts = ParseCompletionRequest(R"({"model": "tiny", "prompt": ["a", "b"]})", Limits());
  ASSERT_TRUE(texts.ok());
  EXPECT_EQ(texts->prompt_texts.size(), 2u);
  auto ids = ParseCompletionRequest(R"({"model": "tiny", "prompt": [1, 2, 3]})", Limits());
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompt_token_ids, (std::vector<std::vector<int>>{{1, 2, 3}}));
  auto lists = ParseCompletionRequest(R"({"model": "tiny", "prompt": [[1], [2, 3]]})", Limits());
  ASSERT_TRUE(lists.ok());
  EXPECT_EQ(lists->prompt_token_ids.size(), 2u);
  auto logprobs = ParseCompletionRequest(R"({"model": "tiny", "prompt": "x", "logprobs": 2})",
                                         Limits());
  ASSERT_TRUE(logprobs.ok());
  EXPECT_TRUE(logprobs->completion_logprobs);
  EXPECT_EQ(logprobs->sampling.top_logprobs(), 2);
}

TEST(RequestParserTest, BadCompletionFields) {
  struct Case {
    std::string body;
    std::string param;
  };
  const Case cases[] = {
      {R"({"model": "tiny"})", "prompt"},
      {R"({"model": "tiny", "prompt": []})", "prompt"},
      {R"({"model": "tiny", "prompt": ""})", "prompt"},
      {R"({"model": "tiny", "prompt": 5})", "prompt"},
      {R"({"model": "tiny", "prompt": ["a", 1]})", "prompt"},
      {R"({"model": "tiny", "prompt": [1, "a"]})", "prompt"},
      {R"({"model": "tiny", "prompt": [1, 5000]})", "prompt"},
      {R"({"model": "tiny", "prompt": [-1]})", "prompt"},
      {R"({"model": "tiny", "prompt": [[]]})", "prompt"},
      {R"({"model": "tiny", "prompt": "x", "echo": true})", "echo"},
      {R"({"model": "tiny", "prompt": "x", "suffix": "y"})", "suffix"},
      {R"({"model": "tiny", "prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"model": "tiny", "prompt": "x", "best_of": 3})", "best_of"},
  };
  for (const Case& c : cases) {
    auto req = ParseCompletionRequest(c.body, Limits());
    ASSERT_FALSE(req.ok()) << c.body;
    EXPECT_EQ(ErrorParam(req.status()).value_or(""), c.param) << c.body << " " << req.status();
  }
}

}  // namespace
}  // namespace tpserve::gateway
