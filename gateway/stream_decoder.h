// Streaming detokenization with stop strings for one output sequence:
// token bytes are accumulated, only complete UTF-8 is released, and text
// that could still be the start of a stop string is held back until it
// either completes the match (the sequence stops, the stop string is not
// emitted, as in vLLM) or cannot match any more.
#ifndef TPSERVE_GATEWAY_STREAM_DECODER_H_
#define TPSERVE_GATEWAY_STREAM_DECODER_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/text_service.h"

namespace tpserve::gateway {

// Holds back the tail of the text that may begin a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {}
  // Appends `text`; returns the text that is now safe, and the stop string
  // if one matched (the text after the match is dropped).
  DecodedPiece Push(const std::string& text);
  // Releases what is held back (the sequence ended without a match).
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

// Length of the longest prefix of `bytes` that does not end inside a UTF-8
// sequence (a truncated multi-byte character at the end is excluded).
size_t CompleteUtf8Prefix(std::string_view bytes);

// SequenceDecoder over a function giving each token's raw bytes.
class TokenStreamDecoder : public SequenceDecoder {
 public:
  // `token_bytes(id)` returns what `id` contributes to a decode ("" for
  // skipped ids).
  TokenStreamDecoder(std::function<std::string_view(int)> token_bytes,
                     std::vector<std::string> stop_strings)
      : token_bytes_(std::move(token_bytes)), stop_(std::move(stop_strings)) {}

  DecodedPiece Push(std::span<const int> token_ids) override;
  std::string Flush() override;

 private:
  std::function<std::string_view(int)> token_bytes_;
  StopMatcher stop_;
  // Bytes of an incomplete UTF-8 character waiting for its next token.
  std::string partial_;
  bool stopped_ = false;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_STREAM_DECODER_H_
