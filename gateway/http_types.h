// The HTTP the handlers see: plain request and response structs. One adapter
// (gateway_server.cc) fills them from cpp-httplib and sends them back, so the
// handlers never touch the HTTP library and a different HTTP layer is a
// change to that one file.
#ifndef TPSERVE_GATEWAY_HTTP_TYPES_H_
#define TPSERVE_GATEWAY_HTTP_TYPES_H_

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tpserve::gateway {

// A request whose head the gateway has accepted (route, API key,
// Content-Type) and whose body it has read within the limits.
struct HttpRequest {
  const std::string& body;  // valid while the handler runs
  std::string remote_addr;  // the client's address and port, and ours:
  int remote_port = 0;      // they find the connection for disconnect
  int local_port = 0;       // watching (DisconnectWatcher)
};

// Writes the next part of a streamed body; false once the client is gone.
using BodyWriter = std::function<bool(std::string_view)>;

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;  // of `body` or `stream`; empty: no body
  std::string body;
  // A streamed body (chunked) instead of `body`: called once, on the
  // connection's thread, after the head is sent; returns false when the
  // client went away (the connection is then closed).
  std::function<bool(const BodyWriter&)> stream;
  // With `stream`: called once when the connection is done with it, sent in
  // full or abandoned.
  std::function<void()> on_done;

  void SetContent(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_HTTP_TYPES_H_
