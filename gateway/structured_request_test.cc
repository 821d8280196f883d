#include "gateway/structured_request.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/http_error.h"
#include "gateway/request_parser.h"
#include "gateway/text_service.h"

namespace tpserve::gateway {
namespace {

using nlohmann::ordered_json;

RequestLimits Limits() {
  RequestLimits limits;
  limits.served_model_names = {"tiny"};
  limits.max_model_len = 100;
  limits.vocab_size = 1000;
  return limits;
}

absl::StatusOr<GenerationRequest> Chat(const std::string& extra) {
  return ParseChatRequest(
      R"({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], )" + extra + "}", Limits());
}

constexpr char kTools[] =
    R"("tools": [{"type": "function", "function": {"name": "get_weather", "parameters":
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
       {"type": "function", "function": {"name": "now"}}])";

ordered_json Spec(const GenerationRequest& req) {
  return ordered_json::parse(req.sampling.structured_output());
}

TEST(StructuredRequestTest, ResponseFormatKinds) {
  auto text = Chat(R"("response_format": {"type": "text"})");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->sampling.structured_output(), "");
  auto object = Chat(R"("response_format": {"type": "json_object"})");
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(Spec(*object)["type"], "json_object");
  auto schema = Chat(R"("response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
      "schema": {"type": "object", "properties": {"z": {"type": "integer"}, "a": {"type": "string"}}}}})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  const ordered_json spec = Spec(*schema);
  EXPECT_EQ(spec["type"], "json_schema");
  // Key order survives: it is the order the model writes properties in.
  EXPECT_EQ(spec["schema"]["properties"].begin().key(), "z");
  auto completion = ParseCompletionRequest(
      R"({"model": "tiny", "prompt": "x", "response_format": {"type": "json_object"}})", Limits());
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_EQ(Spec(*completion)["type"], "json_object");
}

TEST(StructuredRequestTest, VllmGuidedFields) {
  auto json = Chat(R"("guided_json": "{\"type\": \"boolean\"}", "guided_decoding_backend": "xgrammar")");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(Spec(*json)["schema"]["type"], "boolean");
  auto regex = Chat(R"("guided_regex": "[0-9]+")");
  ASSERT_TRUE(regex.ok());
  EXPECT_EQ(Spec(*regex)["pattern"], "[0-9]+");
  auto choice = Chat(R"("guided_choice": ["yes", "no"])");
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(Spec(*choice)["choices"].size(), 2u);
  auto so = Chat(R"("structured_outputs": {"choice": ["a"], "backend": "auto"})");
  ASSERT_TRUE(so.ok()) << so.status();
  EXPECT_EQ(Spec(*so)["type"], "choice");
}

TEST(StructuredRequestTest, ForcedToolCalls) {
  auto required = Chat(std::string(kTools) + R"(, "tool_choice": "required")");
  ASSERT_TRUE(required.ok()) << required.status();
  EXPECT_TRUE(required->parse_tool_calls);
  ordered_json spec = Spec(*required);
  EXPECT_EQ(spec["type"], "tool_calls");
  EXPECT_EQ(spec["tools"].size(), 2u);
  EXPECT_EQ(spec["parallel"], true);
  auto single = Chat(std::string(kTools) + R"(, "tool_choice": "required", "parallel_tool_calls": false)");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(Spec(*single)["parallel"], false);
  auto named = Chat(std::string(kTools) +
                    R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}})");
  ASSERT_TRUE(named.ok()) << named.status();
  spec = Spec(*named);
  ASSERT_EQ(spec["tools"].size(), 1u);
  EXPECT_EQ(spec["tools"][0]["name"], "get_weather");
  auto automatic = Chat(std::string(kTools) + R"(, "tool_choice": "auto")");
  ASSERT_TRUE(automatic.ok());
  EXPECT_TRUE(automatic->parse_tool_calls);
  EXPECT_EQ(automatic->sampling.structured_output(), "");
  auto none = Chat(std::string(kTools) + R"(, "tool_choice": "none")");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->parse_tool_calls);
}

TEST(StructuredRequestTest, LogitBiasAndAllowedTokens) {
  auto req = Chat(R"("logit_bias": {"5": -100, "999": 2.5}, "allowed_token_ids": [1, 2, 3])");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->sampling.logit_bias().at(5), -100.0f);
  EXPECT_EQ(req->sampling.logit_bias().at(999), 2.5f);
  EXPECT_EQ(req->sampling.allowed_token_ids_size(), 3);
}

TEST(StructuredRequestTest, BadFieldsAre400sNamingTheField) {
  struct Case {
    std::string extra;
    std::string param;
    std::string message;
  };
  std::vector<Case> cases = {
      {R"("response_format": {"type": "xml"})", "response_format", "got 'xml'"},
      {R"("response_format": {"type": "json_schema"})", "response_format", "\"schema\""},
      {R"("response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object",
          "minProperties": 1}}})", "response_format", "unsupported keyword 'minProperties'"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "strnig"}}})",
       "response_format", "unknown type 'strnig'"},
      {R"("guided_json": "{not json")", "guided_json", "JSON Schema"},
      {R"j("guided_regex": "a(?=b)")j", "guided_regex", "lookaround"},
      {R"("guided_choice": [])", "guided_choice", "non-empty list"},
      {R"("guided_grammar": "root ::= \"a\"")", "guided_grammar", "EBNF"},
      {R"("guided_whitespace_pattern": " *")", "guided_whitespace_pattern", "not supported"},
      {R"("structured_outputs": {"structural_tag": "x"})", "structured_outputs", "not supported"},
      {R"("guided_regex": "a", "response_format": {"type": "json_object"})", "guided_regex", "only one of"},
      {std::string(kTools) + R"(, "tool_choice": "required", "guided_regex": "a")", "tool_choice", "only one of"},
      {R"("tool_choice": "required")", "tool_choice", "needs tools"},
      {std::string(kTools) + R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}})",
       "tool_choice", "'nope', which is not in tools"},
      {std::string(kTools) + R"(, "parallel_tool_calls": 1)", "parallel_tool_calls", "boolean"},
      {R"("logit_bias": {"1000": 1})", "logit_bias", "[0, 999]"},
      {R"("logit_bias": {"x": 1})", "logit_bias", "not a token id"},
      {R"("logit_bias": {"1": 101})", "logit_bias", "[-100, 100]"},
      {R"("logit_bias": [1])", "logit_bias", "object"},
      {R"("allowed_token_ids": [1, 1000])", "allowed_token_ids", "[0, 999]"},
      {R"("allowed_token_ids": [])", "allowed_token_ids", "non-empty"},
      {R"("bad_words": "x")", "bad_words", "list of strings"},
      {R"("bad_words": ["x", 3])", "bad_words", "list of strings"},
      {R"("bad_words": ["x", ""])", "bad_words", "non-empty"},
      {R"("bad_words": [" \t"])", "bad_words", "non-empty"},
      {R"("bad_words": [")" + std::string(257, 'x') + R"("])", "bad_words", "at most 256 bytes"},
  };
  std::string many = R"("bad_words": ["w")";
  for (int i = 0; i < 64; ++i) many += R"(, "w")";
  cases.push_back({many + "]", "bad_words", "more than 64 words"});
  for (const Case& c : cases) {
    auto req = Chat(c.extra);
    ASSERT_FALSE(req.ok()) << c.extra;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument) << c.extra;
    EXPECT_EQ(ErrorParam(req.status()).value_or(""), c.param) << c.extra << ": " << req.status();
    EXPECT_NE(req.status().message().find(c.message), std::string::npos) << c.extra << ": " << req.status();
  }
}

TEST(StructuredRequestTest, BadWordsAreParsedAsText) {
  auto req = Chat(R"("bad_words": ["hello", " New York"], "allowed_token_ids": [1])");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->bad_words, (std::vector<std::string>{"hello", " New York"}));
  EXPECT_EQ(req->sampling.bad_words_size(), 0);  // tokenized with the prompt
  for (const char* none : {R"("bad_words": [])", R"("bad_words": null)"}) {
    auto empty = Chat(none);
    ASSERT_TRUE(empty.ok()) << empty.status();
    EXPECT_TRUE(empty->bad_words.empty());
  }
  auto completion = ParseCompletionRequest(R"({"model": "tiny", "prompt": "a", "bad_words": ["b"]})", Limits());
  ASSERT_TRUE(completion.ok()) << completion.status();
  EXPECT_EQ(completion->bad_words, std::vector<std::string>{"b"});
}

std::vector<std::vector<int>> Encoded(const tpserve::v1::SamplingParams& s) {
  std::vector<std::vector<int>> out;
  for (const auto& w : s.bad_words()) out.emplace_back(w.ids().begin(), w.ids().end());
  return out;
}

// A tokenizer by table, so each rule of the two forms shows.
std::vector<int> FakeEncode(const std::string& text) {
  static const std::map<std::string, std::vector<int>> table = {
      {"hi", {1}},          {" hi", {2}},            // a new first token: both kept
      {"New York", {3, 4}}, {" New York", {5, 4}},  // likewise, two tokens each
      {"a", {6}},           {" a", {7, 6}},          // the space is its own token: dropped
      {"b", {8}},           {" b", {8}},             // the same first token: dropped
  };
  return table.at(text);
}

TEST(StructuredRequestTest, BadWordsTokenizeInBothForms) {
  tpserve::v1::SamplingParams s;
  ASSERT_TRUE(EncodeBadWords({"hi", "  New York", "a", "b"}, FakeEncode, &s).ok());
  EXPECT_EQ(Encoded(s), (std::vector<std::vector<int>>{{1}, {2}, {3, 4}, {5, 4}, {6}, {8}}));
}

TEST(StructuredRequestTest, BadWordsTokenBoundsAre400s) {
  auto encode = [](const std::string& text) { return std::vector<int>(text.size(), static_cast<int>(text[0])); };
  tpserve::v1::SamplingParams s;
  absl::Status long_word = EncodeBadWords({std::string(33, 'x')}, encode, &s);
  EXPECT_EQ(ErrorParam(long_word).value_or(""), "bad_words") << long_word;
  EXPECT_NE(long_word.message().find("at most 32"), std::string::npos) << long_word;
  // 40 words of 16 tokens, each twice (as written and with the space): 1280.
  std::vector<std::string> words(40, std::string(16, 'y'));
  absl::Status total = EncodeBadWords(words, [](const std::string& text) {
    return std::vector<int>(16, text[0] == ' ' ? 2 : 1);
  }, &s);
  EXPECT_EQ(ErrorParam(total).value_or(""), "bad_words") << total;
  EXPECT_NE(total.message().find("1024 tokens in all"), std::string::npos) << total;
}

TEST(StructuredRequestTest, BadWordsWithTheQwenTokenizer) {
  auto text = TextService::Load("tests/fixtures/tiny-qwen2-chat", "");
  ASSERT_TRUE(text.ok()) << text.status();
  auto encode = [&](const std::string& t) { return (*text)->Encode(t, false); };
  tpserve::v1::SamplingParams s;
  ASSERT_TRUE(EncodeBadWords({"hello", "Paris is"}, encode, &s).ok());
  // "hello" and " hello" are one token each, different ones; so are the
  // two forms of "Paris is" (two tokens each).
  EXPECT_EQ(Encoded(s), (std::vector<std::vector<int>>{encode("hello"), encode(" hello"), encode("Paris is"),
                                                       encode(" Paris is")}));
  EXPECT_EQ(encode("hello").size(), 1u);
  EXPECT_NE(encode("hello"), encode(" hello"));
  EXPECT_EQ(encode("Paris is").size(), 2u);
}

}  // namespace
}  // namespace tpserve::gateway
