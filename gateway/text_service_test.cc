#include "gateway/text_service.h"

#include <gtest/gtest.h>

namespace tpserve::gateway {
namespace {

constexpr char kModelDir[] = "tests/fixtures/tiny-qwen2-chat";

class TextServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { service_ = TextService::Load(kModelDir, "").value().release(); }
  static void TearDownTestSuite() { delete service_; }

  // Streams `text`'s tokens one by one through a decoder.
  static std::string Stream(const std::string& text, std::vector<std::string> stops,
                            std::optional<std::string>* stop) {
    auto decoder = service_->NewDecoder(true, std::move(stops));
    std::string out;
    for (int id : service_->Encode(text, false)) {
      DecodedPiece piece = decoder->Push(std::vector<int>{id});
      out += piece.text;
      if (piece.stop_string.has_value()) {
        *stop = piece.stop_string;
        return out;
      }
    }
    return out + decoder->Flush();
  }

  static TextService* service_;
};

TextService* TextServiceTest::service_ = nullptr;

TEST_F(TextServiceTest, LoadsModelFacts) {
  EXPECT_EQ(service_->vocab_size(), 151665);
  EXPECT_EQ(service_->max_position_embeddings(), 4096);
  EXPECT_DOUBLE_EQ(service_->generation_config().temperature.value_or(0), 0.7);
}

TEST_F(TextServiceTest, StreamingDecodeEqualsFullDecode) {
  const std::string text = "你好，世界! Hello 🌍 <|im_end|> done";
  std::optional<std::string> stop;
  // skip_special_tokens drops <|im_end|> exactly as a full decode does.
  std::vector<int> ids = service_->Encode(text, false);
  EXPECT_EQ(Stream(text, {}, &stop), service_->Decode(ids, true));
  EXPECT_FALSE(stop.has_value());
}

TEST_F(TextServiceTest, StopStringCutsTheStream) {
  std::optional<std::string> stop;
  EXPECT_EQ(Stream("Hello there, STOP here.", {"xyz", " STOP"}, &stop), "Hello there,");
  EXPECT_EQ(stop, " STOP");
  stop.reset();
  EXPECT_EQ(Stream("no match at all", {"STOP"}, &stop), "no match at all");
  EXPECT_FALSE(stop.has_value());
}

TEST_F(TextServiceTest, RenderChatAndErrors) {
  nlohmann::ordered_json messages = {{{"role", "user"}, {"content", "hi"}}};
  auto text = service_->RenderChat(messages, nullptr, true, nlohmann::ordered_json::object());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("<|im_start|>user\nhi<|im_end|>"), std::string::npos);
  EXPECT_EQ(text->substr(text->size() - 22), "<|im_start|>assistant\n");
  EXPECT_FALSE(TextService::Load("/nonexistent", "").ok());
  EXPECT_FALSE(TextService::Load(kModelDir, "/nonexistent.jinja").ok());
}

TEST_F(TextServiceTest, LogprobEntryHasTokenTextAndBytes) {
  tpserve::v1::TokenLogprob lp;
  int id = service_->Encode("Hello", false)[0];
  lp.set_token_id(id);
  lp.set_logprob(-1.5f);
  auto* top = lp.add_top();
  top->set_token_id(id);
  top->set_logprob(-1.5f);
  LogprobEntry e = service_->MakeLogprobEntry(lp);
  EXPECT_EQ(e.token, "Hello");
  EXPECT_EQ(e.bytes, "Hello");
  EXPECT_FLOAT_EQ(e.logprob, -1.5f);
  ASSERT_EQ(e.top.size(), 1u);
  EXPECT_EQ(e.top[0].token, "Hello");
}

}  // namespace
}  // namespace tpserve::gateway
