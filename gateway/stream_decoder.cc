#include "gateway/stream_decoder.h"

#include <algorithm>

namespace tpserve::gateway {

DecodedPiece StopMatcher::Push(const std::string& text) {
  DecodedPiece out;
  pending_ += text;
  if (stops_.empty()) {
    out.text.swap(pending_);
    return out;
  }
  // The earliest match wins, as in vLLM (and the longest at one position).
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const std::string& stop : stops_) {
    size_t pos = pending_.find(stop);
    if (pos != std::string::npos &&
        (pos < best || (pos == best && stop.size() > best_stop->size()))) {
      best = pos;
      best_stop = &stop;
    }
  }
  if (best_stop != nullptr) {
    out.text = pending_.substr(0, best);
    out.stop_string = *best_stop;
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    size_t max_len = std::min(stop.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  out.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

size_t CompleteUtf8Prefix(std::string_view bytes) {
  size_t n = bytes.size();
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    unsigned char c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                                            : (c & 0xF8) == 0xF0 ? 4
                                                                                 : 1;
    return back < need ? n - back : n;
  }
  return n;
}

DecodedPiece TokenStreamDecoder::Push(std::span<const int> token_ids) {
  if (stopped_) return {};
  for (int id : token_ids) partial_ += token_bytes_(id);
  size_t complete = CompleteUtf8Prefix(partial_);
  std::string text = partial_.substr(0, complete);
  partial_.erase(0, complete);
  DecodedPiece piece = stop_.Push(text);
  if (piece.stop_string.has_value()) stopped_ = true;
  return piece;
}

std::string TokenStreamDecoder::Flush() {
  if (stopped_) return "";
  // A truncated character at the very end decodes to U+FFFD, as HF does.
  std::string tail = partial_.empty() ? "" : "\xEF\xBF\xBD";
  partial_.clear();
  DecodedPiece piece = stop_.Push(tail);
  if (piece.stop_string.has_value()) {
    stopped_ = true;
    return piece.text;
  }
  return piece.text + stop_.Flush();
}

}  // namespace tpserve::gateway
