// The gateway's HTTP(S) server: cpp-httplib parses and routes requests, over
// connections the gateway runs itself (gateway/http_connection.h). Each
// connection has a thread, as in httplib, but
//   - their number is capped (--max-connections), the longest-waiting
//     connection without a complete request giving way first
//     (gateway/connection_limiter.h), so trickling clients cannot starve
//     real ones;
//   - a request head must arrive within --http-header-timeout-ms and its body
//     within --http-body-timeout-ms;
//   - an admission check (API key, Content-Type) runs before the body is
//     read, and bodies over the limit are refused whatever their framing;
//   - with a TLS context every connection speaks TLS.
#ifndef TPSERVE_GATEWAY_HTTP_SERVER_H_
#define TPSERVE_GATEWAY_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/connection_limiter.h"
#include "gateway/http_connection.h"
#include "gateway/tls_context.h"

namespace tpserve::gateway {

struct HttpServerOptions {
  int max_connections = 2048;
  // From accept (or a keep-alive request's first byte) to the end of the
  // request head; a TLS handshake counts too.
  std::chrono::milliseconds header_timeout{10000};
  // A kept-alive connection may wait this long for its next request.
  std::chrono::milliseconds keep_alive_timeout{5000};
  HttpConnection::Limits limits;
  // Null: plain HTTP.
  TlsContext tls;
};

class HttpServer : public httplib::Server {
 public:
  // Runs once a request's head is in, before its body is read. False: `res`
  // holds the answer (401, 415, ...) and the body is never read.
  using Admission = std::function<bool(const httplib::Request& req, httplib::Response& res)>;

  HttpServer(const HttpServerOptions& options, Admission admission);
  ~HttpServer() override;

  // Binds host:port (port 0: a free one) and returns the port. SO_REUSEADDR,
  // not httplib's SO_REUSEPORT: a restarted server binds over the TIME-WAIT
  // sockets of the last one, and a second server on the same port fails
  // instead of silently sharing it.
  absl::StatusOr<int> Bind(const std::string& host, int port);
  // Accepts and serves connections until Stop(); blocks.
  void Serve();
  // Stops accepting and shuts every open connection down. Idempotent.
  void Stop();

  // For DisconnectWatcher: the peer of `fd` half-closed while its request
  // is handled; true when the client may still read the answer.
  bool ProbeHalfClosed(int fd) { return limiter_.ProbeHalfClosed(fd); }
  int open_connections() const { return limiter_.open(); }
  int max_connections() const { return limiter_.max_connections(); }

 private:
  bool process_and_close_socket(int sock) override;
  // Whether the request may go on; otherwise `res` holds the answer.
  bool Admit(const httplib::Request& req, httplib::Response& res);
  // Serves requests on one admitted connection until it ends.
  void ServeRequests(HttpConnection& conn, uint64_t id);

  const HttpServerOptions options_;
  const Admission admission_;
  ConnectionLimiter limiter_;
  std::atomic<bool> stopping_{false};
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_HTTP_SERVER_H_
