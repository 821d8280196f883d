// Everything textual the gateway does for a model: chat template rendering,
// tokenization, streaming detokenization with stop strings, and token
// strings for logprobs. Built on common/text; shared by every request
// (thread-safe after Load).
#ifndef TPSERVE_GATEWAY_TEXT_SERVICE_H_
#define TPSERVE_GATEWAY_TEXT_SERVICE_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "gateway/openai_format.h"
#include "proto/common.pb.h"

namespace tpserve::text {
class Tokenizer;
class ChatTemplate;
}  // namespace tpserve::text

namespace tpserve::gateway {

// Text produced by one step of a sequence.
struct DecodedPiece {
  // Text safe to send (never a prefix of a stop string still being matched).
  std::string text;
  // Set when a stop string matched; the text before it is in `text`.
  std::optional<std::string> stop_string;
};

// Streaming detokenizer + stop-string matcher for one sequence.
class SequenceDecoder {
 public:
  virtual ~SequenceDecoder() = default;
  // Appends generated token ids; returns the new safe text.
  virtual DecodedPiece Push(std::span<const int> token_ids) = 0;
  // The sequence ended: returns text held back (partial UTF-8 becomes U+FFFD
  // as in a full decode; partial stop-string matches are released).
  virtual std::string Flush() = 0;
};

// The model's text side.
class TextService {
 public:
  // Loads tokenizer.json, tokenizer_config.json (chat template) and
  // generation_config.json from `model_dir`; `chat_template_file` (optional)
  // overrides the template.
  static absl::StatusOr<std::unique_ptr<TextService>> Load(const std::string& model_dir,
                                                           const std::string& chat_template_file);
  ~TextService();

  // Renders the chat template for messages/tools (as validated by the
  // request parser).
  absl::StatusOr<std::string> RenderChat(const nlohmann::ordered_json& messages,
                                         const nlohmann::ordered_json& tools,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& template_kwargs) const;

  // Token ids of `text`. Special-token text (e.g. <|im_start|>) is parsed as
  // the special token, as HF tokenizers and vLLM do.
  std::vector<int> Encode(const std::string& text, bool add_special_tokens) const;
  // Text of `ids`.
  std::string Decode(std::span<const int> ids, bool skip_special_tokens) const;
  // A fresh decoder for one output sequence.
  std::unique_ptr<SequenceDecoder> NewDecoder(bool skip_special_tokens,
                                              std::vector<std::string> stop_strings) const;
  // Token text and bytes for a logprobs entry.
  LogprobEntry MakeLogprobEntry(const tpserve::v1::TokenLogprob& logprob) const;

  // One past the largest token id.
  int vocab_size() const;
  // Sampling defaults (generation_config.json).
  const GenerationConfig& generation_config() const { return generation_config_; }
  // max_position_embeddings from config.json (0 if there is none).
  int max_position_embeddings() const { return max_position_embeddings_; }

 private:
  TextService() = default;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::unique_ptr<text::ChatTemplate> chat_template_;
  GenerationConfig generation_config_;
  int max_position_embeddings_ = 0;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_TEXT_SERVICE_H_
