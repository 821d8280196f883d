// A minimal blocking HTTP/1.1 client over a raw socket for gateway tests:
// exact control over bytes (SSE framing, chunked bodies) and over when the
// client hangs up, which a full client library hides.
#ifndef TPSERVE_GATEWAY_TESTING_RAW_HTTP_H_
#define TPSERVE_GATEWAY_TESTING_RAW_HTTP_H_

#include <map>
#include <string>
#include <vector>

namespace tpserve::gateway::testing {

// A parsed response.
struct RawResponse {
  int status = 0;
  // Header names lower-cased.
  std::map<std::string, std::string> headers;
  // De-chunked body.
  std::string body;
};

// An open connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  // Whether connect() succeeded.
  bool ok() const { return fd_ >= 0; }
  // Sends a request; `headers` are extra "Name: value" lines. A POST gets
  // "Content-Type: application/json" unless `headers` set a Content-Type.
  bool Send(const std::string& method, const std::string& path, const std::string& body,
            const std::vector<std::string>& headers = {});
  // Sends bytes as they are (hand-made heads, chunked bodies, trickles).
  bool SendRaw(const std::string& bytes);
  // Half-closes: no more bytes from this side, the answer can still come.
  void ShutdownWrite();
  // Reads until the body holds `needle` (or EOF); returns what was read.
  std::string ReadUntil(const std::string& needle, int timeout_ms = 5000);
  // Reads the whole response (the server closes: Connection: close),
  // skipping interim 1xx answers as clients do.
  RawResponse ReadResponse(int timeout_ms = 10000);
  // Hangs up.
  void Close();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buffer_;
};

// One request on a fresh connection ("Connection: close").
RawResponse Request(int port, const std::string& method, const std::string& path,
                    const std::string& body = "", const std::vector<std::string>& headers = {});

// The "data: ..." payloads of an SSE body, in order.
std::vector<std::string> SseEvents(const std::string& body);

}  // namespace tpserve::gateway::testing

#endif  // TPSERVE_GATEWAY_TESTING_RAW_HTTP_H_
