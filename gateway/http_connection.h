// One client connection, as the byte stream cpp-httplib parses requests from
// and writes responses to. Owning the stream (instead of httplib's
// SocketStream) is what lets the gateway
//   - bound the time a request head and body may take (slowloris),
//   - count a body's bytes whatever its framing (chunked uploads obey
//     --max-request-body-bytes),
//   - see the Authorization header as sent (httplib percent-decodes header
//     values and its getters stop at a NUL byte),
//   - keep answering a client that half-closed after its request (httplib's
//     own stream refuses to write once the peer's FIN is seen),
//   - speak TLS through OpenSSL with the same rules.
// The connection's thread does all reads and writes; the one exception is
// ProbeHalfClosed, from the disconnect watcher, serialised by a mutex.
#ifndef TPSERVE_GATEWAY_HTTP_CONNECTION_H_
#define TPSERVE_GATEWAY_HTTP_CONNECTION_H_

#include <httplib.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace tpserve::gateway {

class HttpConnection : public httplib::Stream {
 public:
  using Clock = std::chrono::steady_clock;

  struct Limits {
    // Largest body; a chunked body counts its chunk framing too.
    int64_t max_body_bytes = 16 << 20;
    // The whole body must arrive within this after the head.
    std::chrono::milliseconds body_timeout{60000};
    // A write may wait this long for the client to take bytes.
    std::chrono::milliseconds write_timeout{5000};
  };

  // Why the rest of a request is not read: reads fail from then on and the
  // answer is this status (413, 415, 431, 408, 400) with `message`.
  struct Refusal {
    int http_status = 400;
    std::string message;
  };

  // Takes ownership of `ssl` (nullptr: plain TCP); the socket must be
  // non-blocking.
  HttpConnection(int fd, SSL* ssl, const Limits& limits);
  ~HttpConnection() override;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // TLS only: completes the server handshake by `deadline`.
  bool Handshake(Clock::time_point deadline);
  // Waits for the first byte of the next request (true), EOF, or `deadline`.
  bool WaitForRequest(Clock::time_point deadline);
  // Starts a request whose head must be complete by `head_deadline`.
  void BeginRequest(Clock::time_point head_deadline);
  // cpp-httplib's setup hook, called once the head is parsed: restores the
  // Authorization header as sent and decides how the body may be read.
  void OnHead(httplib::Request& req);
  // Whether the connection can carry another request after this one (the
  // body was read exactly, nothing was refused).
  bool CanKeepAlive() const;

  // Refuses the rest of the request (see Refusal); the first reason wins.
  void Refuse(int http_status, std::string message);
  const std::optional<Refusal>& refusal() const { return refusal_; }
  // The answer was sent without reading the body: close after it.
  void SkipBody() { body_skipped_ = true; }

  // Called (from the disconnect watcher's thread) when the peer has shut
  // its sending side while its request is being handled. A client that
  // half-closes still reads the answer; one that closed completely answers
  // any bytes with a reset. So, before the response has begun, an HTTP/1.1
  // client is sent an interim "100 Continue" (which clients skip) to find
  // out. True: keep waiting for a reset; false: the client is gone (or is
  // HTTP/1.0 and cannot be asked).
  bool ProbeHalfClosed();

  // Ends the connection; the caller closes the descriptor afterwards. When
  // request bytes were left unread, it first stops sending and drains input
  // briefly, so the client reads the answer instead of a reset.
  void Shutdown();

  // The connection the calling thread is serving (for httplib's handlers,
  // which only see the Request).
  static HttpConnection* Current();
  static void SetCurrent(HttpConnection* connection);

  // httplib::Stream.
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  int socket() const override { return fd_; }

 private:
  enum class Phase { kIdle, kHead, kBody };
  enum class BodyMode { kNone, kLength, kChunked };

  // Fills buffer_ from the socket; bytes read, 0 at EOF, -1 on error or
  // when `deadline` passes (timed_out_ set).
  ssize_t Fill(Clock::time_point deadline);
  // Writes all of `data` or fails; io_mu_ held.
  bool WriteAll(const char* data, size_t size);
  // Waits for `events` on the socket until `deadline`; false on timeout.
  bool Wait(short events, Clock::time_point deadline) const;

  const int fd_;
  SSL* ssl_;
  const Limits limits_;
  // Serialises socket/TLS use between this connection's thread and the
  // watcher's probe.
  std::mutex io_mu_;

  std::vector<char> buffer_;
  size_t buffer_begin_ = 0;
  size_t buffer_end_ = 0;
  bool timed_out_ = false;

  Phase phase_ = Phase::kIdle;
  Clock::time_point deadline_;
  // The request head as received, for headers httplib would alter.
  std::string head_;
  BodyMode body_mode_ = BodyMode::kNone;
  uint64_t content_length_ = 0;
  uint64_t body_read_ = 0;
  bool expects_body_ = false;
  bool body_skipped_ = false;
  std::optional<Refusal> refusal_;
  bool http11_ = true;
  // Bytes of the final response written for the current request.
  uint64_t response_bytes_ = 0;
  bool probed_ = false;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_HTTP_CONNECTION_H_
