#include "gateway/testing/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace tpserve::gateway::testing {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t len = std::strtoul(raw.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (len == 0) break;
    out += raw.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
  return out;
}

}  // namespace

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Close();
}

RawConnection::~RawConnection() { Close(); }

void RawConnection::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool RawConnection::Send(const std::string& method, const std::string& path,
                         const std::string& body, const std::vector<std::string>& headers) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  bool has_type = false;
  for (const std::string& h : headers) {
    req += h + "\r\n";
    has_type = has_type || Lower(h).rfind("content-type:", 0) == 0;
  }
  if (!body.empty() || method == "POST") {
    if (!has_type) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return SendRaw(req + "\r\n" + body);
}

bool RawConnection::SendRaw(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void RawConnection::ShutdownWrite() {
  if (fd_ >= 0) shutdown(fd_, SHUT_WR);
}

std::string RawConnection::ReadUntil(const std::string& needle, int timeout_ms) {
  char buf[4096];
  while (buffer_.find(needle) == std::string::npos) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) break;
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) break;
    buffer_.append(buf, static_cast<size_t>(n));
  }
  return buffer_;
}

RawResponse RawConnection::ReadResponse(int timeout_ms) {
  // Connection: close, so EOF ends the response.
  ReadUntil(std::string("\0never\0", 7), timeout_ms);
  RawResponse out;
  // Interim answers ("HTTP/1.1 100 Continue") come before the real one;
  // clients skip them.
  while (buffer_.rfind("HTTP/1.1 1", 0) == 0 && buffer_.find("\r\n\r\n") != std::string::npos) {
    buffer_.erase(0, buffer_.find("\r\n\r\n") + 4);
  }
  size_t header_end = buffer_.find("\r\n\r\n");
  if (header_end == std::string::npos) return out;
  std::string head = buffer_.substr(0, header_end);
  std::string raw_body = buffer_.substr(header_end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  size_t sp = status_line.find(' ');
  if (sp != std::string::npos) out.status = std::atoi(status_line.c_str() + sp + 1);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string::npos) eol = head.size();
    std::string line = head.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      out.headers[Lower(line.substr(0, colon))] = value;
    }
    pos = eol + 2;
  }
  out.body = Lower(out.headers["transfer-encoding"]) == "chunked" ? Dechunk(raw_body) : raw_body;
  return out;
}

RawResponse Request(int port, const std::string& method, const std::string& path,
                    const std::string& body, const std::vector<std::string>& headers) {
  RawConnection conn(port);
  if (!conn.ok() || !conn.Send(method, path, body, headers)) return {};
  return conn.ReadResponse();
}

std::vector<std::string> SseEvents(const std::string& body) {
  std::vector<std::string> events;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    events.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return events;
}

}  // namespace tpserve::gateway::testing
