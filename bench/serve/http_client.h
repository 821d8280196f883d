// An event-driven HTTP client for many concurrent streaming requests from one
// thread: libcurl's multi interface driven by epoll (curl_multi_socket_action),
// so the cost of an event does not grow with the number of open streams.
// Body bytes are handed over as they arrive, with their arrival time.
#ifndef TPSERVE_BENCH_SERVE_HTTP_CLIENT_H_
#define TPSERVE_BENCH_SERVE_HTTP_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tpserve::bench {

// Seconds on the monotonic clock every timestamp of the benchmark uses.
double MonotonicSeconds();

// Receives one transfer's response.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Body bytes that arrived at `now`; `http_status` is the response's code.
  virtual void OnBody(std::string_view bytes, double now, long http_status) = 0;
  // The transfer ended at `now`: `error` is "" when it completed (whatever the
  // status), else why it did not (connection refused, reset, timeout).
  virtual void OnDone(const std::string& error, long http_status, double now) = 0;
};

struct HttpRequest {
  std::string url;
  // POSTed as application/json when non-empty; else a GET.
  std::string body;
  // Extra "Name: value" header lines.
  std::vector<std::string> headers;
};

// A whole response, for the few plain requests (model list, health).
struct HttpResponse {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  // `max_connections`: idle keep-alive connections kept for reuse (at least
  // the planned concurrency, so a burst does not close and reopen them). Also
  // raises the open-file limit to the hard limit.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(int max_connections);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a transfer; `handler` must outlive it (until its OnDone).
  absl::Status Start(const HttpRequest& request, StreamHandler* handler);
  // Waits up to `timeout_ms` for network events or curl's timers and
  // delivers what happened (OnBody / OnDone calls) before returning.
  void Poll(int timeout_ms);
  // Transfers started and not yet done.
  int active() const;

  // Runs one request to completion (blocking this client's loop).
  absl::StatusOr<HttpResponse> Fetch(const HttpRequest& request);

 private:
  class Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_HTTP_CLIENT_H_
