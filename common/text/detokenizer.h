// Streaming text output: turns generated token ids into UTF-8 deltas, and
// cuts the stream at stop strings that may span token boundaries.
#ifndef TPSERVE_COMMON_TEXT_DETOKENIZER_H_
#define TPSERVE_COMMON_TEXT_DETOKENIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text/tokenizer.h"

namespace tpserve::text {

// Decodes one sequence incrementally. The concatenation of every Add() and the
// final Flush() equals Tokenizer::Decode(all ids, skip_special_tokens), and
// every returned piece is valid UTF-8: bytes that may still become a
// character are held back until the next token completes (or rules out) it.
// The tokenizer must outlive this object.
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

  // Feeds the next generated id; returns the text it completes (maybe "").
  std::string Add(int32_t id);
  // Ends the stream: held-back bytes become U+FFFD, as in a full decode.
  std::string Flush();
  // Bytes currently held back (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

// Finds stop strings in streamed text. Text that could be the start of a
// stop string is held back, so nothing past a stop is ever returned. When
// several stops occur, the one that completes first in the stream wins (the
// longest on a tie); output ends just before it (the stop is not included).
class StopStringMatcher {
 public:
  // Empty stop strings are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Result of feeding one delta.
  struct Result {
    std::string text;                 // safe to emit now
    std::optional<size_t> stop_index;  // set once a stop string matched
  };

  // Feeds text (valid UTF-8). After a match, further calls return nothing.
  Result Add(std::string_view delta);
  // End of stream without a stop: returns the held-back text.
  std::string Flush();
  // True once a stop string matched.
  bool stopped() const { return stopped_; }
  // The longest stop string, in bytes (how much text may be held back).
  size_t max_stop_bytes() const { return max_len_; }

 private:
  std::vector<std::string> stops_;
  std::vector<size_t> index_;  // stops_[i] is the caller's stop index_[i]
  std::string held_;
  size_t max_len_ = 0;
  bool stopped_ = false;
};

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_DETOKENIZER_H_
