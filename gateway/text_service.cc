#include "gateway/text_service.h"

#include <fstream>
#include <sstream>

#include "common/status_macros.h"
#include "common/text/chat_template.h"
#include "common/text/detokenizer.h"
#include "common/text/tokenizer.h"

namespace tpserve::gateway {
namespace {

// text::IncrementalDetokenizer feeding text::StopStringMatcher.
class TokenStreamDecoder : public SequenceDecoder {
 public:
  TokenStreamDecoder(const text::Tokenizer& tokenizer, bool skip_special_tokens,
                     std::vector<std::string> stops)
      : detokenizer_(tokenizer, skip_special_tokens), stops_(stops), matcher_(std::move(stops)) {}

  DecodedPiece Push(std::span<const int> token_ids) override {
    std::string text;
    for (int id : token_ids) text += detokenizer_.Add(id);
    return Match(text);
  }

  std::string Flush() override {
    DecodedPiece piece = Match(detokenizer_.Flush());
    if (piece.stop_string.has_value()) return piece.text;
    return piece.text + matcher_.Flush();
  }

 private:
  DecodedPiece Match(const std::string& text) {
    DecodedPiece piece;
    if (matcher_.stopped()) return piece;
    text::StopStringMatcher::Result r = matcher_.Add(text);
    piece.text = std::move(r.text);
    if (r.stop_index.has_value()) piece.stop_string = stops_[*r.stop_index];
    return piece;
  }

  text::IncrementalDetokenizer detokenizer_;
  const std::vector<std::string> stops_;
  text::StopStringMatcher matcher_;
};

}  // namespace

TextService::~TextService() = default;

absl::StatusOr<std::unique_ptr<TextService>> TextService::Load(
    const std::string& model_dir, const std::string& chat_template_file) {
  std::unique_ptr<TextService> service(new TextService());
  TP_ASSIGN_OR_RETURN(service->tokenizer_, text::Tokenizer::Load(model_dir));
  if (!chat_template_file.empty()) {
    std::ifstream in(chat_template_file);
    if (!in) return absl::NotFoundError("cannot read --chat-template " + chat_template_file);
    std::stringstream source;
    source << in.rdbuf();
    TP_ASSIGN_OR_RETURN(text::ChatTemplate t, text::ChatTemplate::FromSource(source.str()));
    service->chat_template_ = std::make_unique<text::ChatTemplate>(std::move(t));
  } else {
    auto t = text::ChatTemplate::FromTokenizerConfig(model_dir);
    // A base model has no template: completions still work, chat says why.
    if (t.ok()) service->chat_template_ = std::make_unique<text::ChatTemplate>(std::move(*t));
  }
  TP_ASSIGN_OR_RETURN(service->generation_config_, LoadGenerationConfig(model_dir));
  auto model_config = LoadModelConfig(model_dir);
  if (model_config.ok()) service->max_position_embeddings_ = model_config->max_position_embeddings;
  return service;
}

absl::StatusOr<std::string> TextService::RenderChat(const nlohmann::ordered_json& messages,
                                                    const nlohmann::ordered_json& tools,
                                                    bool add_generation_prompt,
                                                    const nlohmann::ordered_json& kwargs) const {
  if (chat_template_ == nullptr) {
    return absl::InvalidArgumentError(
        "this model has no chat template; use /v1/completions or start with --chat-template");
  }
  auto rendered = chat_template_->Render(messages, tools, add_generation_prompt, kwargs);
  if (!rendered.ok()) {
    // Templates raise on conversations they do not accept (e.g. a system
    // message in the middle): that is the client's request, not our bug.
    return absl::InvalidArgumentError("chat template: " + std::string(rendered.status().message()));
  }
  return rendered;
}

std::vector<int> TextService::Encode(const std::string& text, bool /*add_special_tokens*/) const {
  // Qwen2 tokenizers add no BOS/EOS, so add_special_tokens changes nothing;
  // special-token text is parsed as in HF tokenizers.
  std::vector<int32_t> ids = tokenizer_->Encode(text, /*parse_special_tokens=*/true);
  return std::vector<int>(ids.begin(), ids.end());
}

std::string TextService::Decode(std::span<const int> ids, bool skip_special_tokens) const {
  std::vector<int32_t> v(ids.begin(), ids.end());
  return tokenizer_->Decode(v, skip_special_tokens);
}

std::unique_ptr<SequenceDecoder> TextService::NewDecoder(bool skip_special_tokens,
                                                         std::vector<std::string> stop) const {
  return std::make_unique<TokenStreamDecoder>(*tokenizer_, skip_special_tokens, std::move(stop));
}

LogprobEntry TextService::MakeLogprobEntry(const tpserve::v1::TokenLogprob& logprob) const {
  auto entry_for = [this](int id, std::string* token, std::string* bytes) {
    *bytes = std::string(tokenizer_->TokenBytes(id));
    *token = Decode(std::vector<int>{id}, /*skip_special_tokens=*/false);
  };
  LogprobEntry entry;
  entry.logprob = logprob.logprob();
  entry_for(logprob.token_id(), &entry.token, &entry.bytes);
  for (const auto& top : logprob.top()) {
    TopLogprobEntry t;
    t.logprob = top.logprob();
    entry_for(top.token_id(), &t.token, &t.bytes);
    entry.top.push_back(std::move(t));
  }
  return entry;
}

int TextService::vocab_size() const { return tokenizer_->vocab_size(); }

}  // namespace tpserve::gateway
