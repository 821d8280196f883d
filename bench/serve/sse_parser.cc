#include "bench/serve/sse_parser.h"

namespace tpserve::bench {

void SseParser::Feed(std::string_view bytes, EventFn on_event) {
  size_t pos = 0;
  if (after_cr_ && !bytes.empty() && bytes[0] == '\n') pos = 1;
  after_cr_ = false;
  while (pos < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      partial_.append(bytes.substr(pos));
      return;
    }
    if (partial_.empty()) {
      Line(bytes.substr(pos, end - pos), on_event);
    } else {
      partial_.append(bytes.substr(pos, end - pos));
      std::string line = std::move(partial_);
      partial_.clear();
      Line(line, on_event);
    }
    pos = end + 1;
    if (bytes[end] == '\r') {
      if (pos == bytes.size()) {
        after_cr_ = true;
      } else if (bytes[pos] == '\n') {
        ++pos;
      }
    }
  }
}

void SseParser::Finish(EventFn on_event) {
  if (!partial_.empty()) {
    std::string line = std::move(partial_);
    partial_.clear();
    Line(line, on_event);
  }
  Dispatch(on_event);
}

void SseParser::Line(std::string_view line, EventFn on_event) {
  if (line.empty()) {
    Dispatch(on_event);
    return;
  }
  if (line[0] == ':') return;  // comment
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  if (field != "data") return;
  std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  if (has_data_) data_.push_back('\n');
  data_.append(value);
  has_data_ = true;
}

void SseParser::Dispatch(EventFn on_event) {
  if (!has_data_) return;
  on_event(data_);
  data_.clear();
  has_data_ = false;
}

}  // namespace tpserve::bench
