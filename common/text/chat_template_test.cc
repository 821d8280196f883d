#include "common/text/chat_template.h"

#include <fstream>
#include <memory>
#include <sstream>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/text/tokenizer.h"

namespace tpserve::text {
namespace {

using ojson = nlohmann::ordered_json;

ojson ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ojson::parse(ss.str());
}

TEST(ChatTemplateTest, AllGoldens) {
  const ojson g = ReadJson("tests/fixtures/chat/chat_template_goldens.json");
  auto qwen25 = Tokenizer::Load("tests/fixtures/tiny-qwen2-chat");
  auto qwen3 = Tokenizer::Load("tests/fixtures/tokenizer/qwen3");
  ASSERT_TRUE(qwen25.ok() && qwen3.ok());
  int n = 0;
  for (const ojson& c : g["cases"]) {
    const std::string name = c["template"];
    const std::string label = absl::StrCat(name, " conv ", c["conversation"].get<int>(), " gen ",
                                           c["add_generation_prompt"].get<bool>(), " tools ", c["tools"].get<bool>());
    auto tmpl = ChatTemplate::FromSource(g["templates"][name].get<std::string>(), {{"eos_token", "<|im_end|>"}});
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    const ojson tools = c["tools"].get<bool>() ? g["tools"] : ojson();
    auto out = tmpl->Render(g["conversations"][c["conversation"].get<int>()], tools,
                            c["add_generation_prompt"].get<bool>(), ojson());
    ASSERT_TRUE(out.ok()) << label << ": " << out.status();
    EXPECT_EQ(*out, c["rendered"].get<std::string>()) << label;
    const Tokenizer& tok = name == "qwen3" ? **qwen3 : **qwen25;
    EXPECT_EQ(tok.Encode(*out), c["ids"].get<std::vector<int32_t>>()) << label;
    ++n;
  }
  EXPECT_EQ(n, 90);
}

TEST(ChatTemplateTest, FromTokenizerConfigQwen25) {
  auto tmpl = ChatTemplate::FromTokenizerConfig("tests/fixtures/tiny-qwen2-chat");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  const ojson messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  auto out = tmpl->Render(messages, ojson(), true, ojson());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Qwen3EnableThinkingKwarg) {
  auto tmpl = ChatTemplate::FromTokenizerConfig("tests/fixtures/tokenizer/qwen3");
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  const ojson messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  auto off = tmpl->Render(messages, ojson(), true, ojson::parse(R"({"enable_thinking": false})"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n")) << *off;
  auto on = tmpl->Render(messages, ojson(), true, ojson());
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->ends_with("<|im_start|>assistant\n")) << *on;
}

TEST(ChatTemplateTest, ContentPartsAndStringArguments) {
  auto tmpl = ChatTemplate::FromTokenizerConfig("tests/fixtures/tiny-qwen2-chat");
  ASSERT_TRUE(tmpl.ok());
  const ojson messages = ojson::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"z\": 1, \"a\": 2}"}}]}])");
  auto out = tmpl->Render(messages, ojson(), false, ojson());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(out->find("<|im_start|>user\na\nb<|im_end|>"), std::string::npos) << *out;
  // Arguments were parsed (not re-quoted) and keep their key order.
  EXPECT_NE(out->find("{\"name\": \"f\", \"arguments\": {\"z\": 1, \"a\": 2}}"), std::string::npos) << *out;
}

TEST(ChatTemplateTest, BadInputs) {
  auto tmpl = ChatTemplate::FromTokenizerConfig("tests/fixtures/tiny-qwen2-chat");
  ASSERT_TRUE(tmpl.ok());
  EXPECT_FALSE(tmpl->Render(ojson::parse(R"({"role": "user"})"), ojson(), false, ojson()).ok());
  EXPECT_FALSE(tmpl->Render(ojson::parse(R"([{"content": "x"}])"), ojson(), false, ojson()).ok());
  EXPECT_FALSE(tmpl->Render(ojson::parse(R"([{"role": "user", "content": [{"type": "image_url"}]}])"), ojson(),
                            false, ojson()).ok());
  // An empty conversation makes the template index messages[0]: a clean error.
  auto empty = tmpl->Render(ojson::array(), ojson(), false, ojson());
  EXPECT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("template error at"), std::string::npos) << empty.status();
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig("/nonexistent").status().code(), absl::StatusCode::kNotFound);
}

TEST(ChatTemplateTest, NlohmannJsonOverload) {
  auto tmpl = ChatTemplate::FromSource("{{ messages[0].content }}|{{ tools is none }}|{{ foo }}");
  ASSERT_TRUE(tmpl.ok());
  auto out = tmpl->Render(nlohmann::json::parse(R"([{"role": "user", "content": "x"}])"), nlohmann::json(), false,
                          nlohmann::json::parse(R"({"foo": 3})"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "x|True|3");
}

}  // namespace
}  // namespace tpserve::text
