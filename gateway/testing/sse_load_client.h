// Many concurrent SSE streams from ONE thread: every request is sent over its
// own loopback connection, then one epoll loop reads them all. For load tests
// and benchmarks, where a thread per client would compete with the servers
// for the CPU and bound what is measured. Tokens are counted from the usage
// every chunk carries (send stream_options.continuous_usage_stats).
#ifndef TPSERVE_GATEWAY_TESTING_SSE_LOAD_CLIENT_H_
#define TPSERVE_GATEWAY_TESTING_SSE_LOAD_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tpserve::gateway::testing {

// What one stream received so far.
struct SseStream {
  int fd = -1;
  std::chrono::steady_clock::time_point start;
  // Arrival of each chunk whose usage counted new tokens.
  std::vector<std::chrono::steady_clock::time_point> token_chunks;
  // The last usage.completion_tokens seen.
  int tokens = 0;
  // HTTP status of the response (0 until the status line arrived).
  int status = 0;
  // An in-band `data: {"error": ...}` event arrived.
  bool error_event = false;
  // `data: [DONE]` arrived.
  bool done = false;
  // The connection ended (closed by the server, or failed).
  bool closed = false;
  // Unparsed bytes (a line cut by the read).
  std::string partial;
};

// N streams on one epoll loop.
class SseLoadClient {
 public:
  // Connects `streams` times to 127.0.0.1:port and sends
  // `POST path` with `body` on each (bounded: fails if a connect takes over
  // 10 s).
  static absl::StatusOr<std::unique_ptr<SseLoadClient>> Start(int port, const std::string& path,
                                                              const std::string& body,
                                                              int streams);
  ~SseLoadClient();
  SseLoadClient(const SseLoadClient&) = delete;
  SseLoadClient& operator=(const SseLoadClient&) = delete;

  // Reads whatever arrives until `deadline` or until every connection has
  // closed; returns the number still open.
  int PollUntil(std::chrono::steady_clock::time_point deadline);
  // Sum of the streams' token counts.
  long total_tokens() const;
  // Streams whose connection is still open.
  int open() const;
  const std::vector<SseStream>& streams() const { return streams_; }
  // Closes every connection (clients hanging up).
  void CloseAll();

 private:
  SseLoadClient() = default;
  void Consume(SseStream& s, const char* data, size_t n);

  int epoll_fd_ = -1;
  std::vector<SseStream> streams_;
};

}  // namespace tpserve::gateway::testing

#endif  // TPSERVE_GATEWAY_TESTING_SSE_LOAD_CLIENT_H_
