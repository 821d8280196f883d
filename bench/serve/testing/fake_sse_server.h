// A loopback OpenAI-style streaming server for the benchmark's tests and its
// client-capacity bench: one epoll thread answers POST .../completions and
// .../chat/completions with a stream of one-token SSE chunks (max_tokens of
// the request, else `tokens`), a usage chunk and [DONE]. It costs about one
// send() per write, so the client under test, not the server, is the limit.
#ifndef TPSERVE_BENCH_SERVE_TESTING_FAKE_SSE_SERVER_H_
#define TPSERVE_BENCH_SERVE_TESTING_FAKE_SSE_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace tpserve::bench::testing {

struct FakeServerOptions {
  // Tokens per reply when the request has no max_tokens.
  int tokens = 16;
  // SSE events per send() (each token is one event).
  int events_per_write = 1;
  // Gap between a stream's writes; 0: write everything at once.
  int interval_ms = 0;
  // Token streams start only once this many requests are open (or after
  // 20 s), so a test knows they were all open together; 0: no wait.
  int barrier = 0;
  // When set, requests without "Authorization: Bearer <api_key>" get a 401.
  std::string api_key;
  // Every POST gets this status with an OpenAI error body (200: stream).
  int status = 200;
  // > 0: after this many tokens the stream sends an in-band error and ends.
  int error_after_tokens = 0;
};

class FakeSseServer {
 public:
  explicit FakeSseServer(FakeServerOptions options);
  ~FakeSseServer();
  // Binds 127.0.0.1 on a free port and starts the loop thread.
  absl::Status Start();
  int port() const { return port_; }
  // Most requests open at the same time so far.
  int peak_open() const { return peak_open_.load(); }
  // Requests answered (streams finished or errors sent).
  int answered() const { return answered_.load(); }

 private:
  class Loop;
  FakeServerOptions options_;
  int port_ = 0;
  std::atomic<int> peak_open_{0};
  std::atomic<int> answered_{0};
  std::atomic<bool> stop_{false};
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace tpserve::bench::testing

#endif  // TPSERVE_BENCH_SERVE_TESTING_FAKE_SSE_SERVER_H_
