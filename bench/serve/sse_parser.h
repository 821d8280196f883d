// Incremental parser of a text/event-stream body (the WHATWG SSE format):
// bytes arrive in arbitrary pieces, events come out as soon as their blank
// line arrives. Only the `data` field matters to OpenAI streams; comments
// (": ping") and other fields are skipped.
#ifndef TPSERVE_BENCH_SERVE_SSE_PARSER_H_
#define TPSERVE_BENCH_SERVE_SSE_PARSER_H_

#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"

namespace tpserve::bench {

class SseParser {
 public:
  using EventFn = absl::FunctionRef<void(std::string_view data)>;

  // Consumes the next piece of the body; calls `on_event` with the data of
  // each event it completes (several `data:` lines joined with '\n').
  void Feed(std::string_view bytes, EventFn on_event);
  // End of body: an event still missing its blank line is delivered (servers
  // that end with "data: [DONE]\n" alone are common).
  void Finish(EventFn on_event);

 private:
  void Line(std::string_view line, EventFn on_event);
  void Dispatch(EventFn on_event);

  std::string partial_;  // a line not yet ended
  std::string data_;     // data of the event being read
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was '\r' (a following '\n' is part of it)
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_SSE_PARSER_H_
