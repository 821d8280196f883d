#include "gateway/http_connection.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tpserve::gateway {
namespace {

using Clock = HttpConnection::Clock;

// Request line plus headers; httplib bounds each line but not their number.
constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;
// How long a connection whose request was answered without reading its body
// keeps draining input before closing (see Shutdown).
constexpr auto kLingerTime = std::chrono::seconds(1);

thread_local HttpConnection* current_connection = nullptr;

int MillisUntil(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 1 << 30));
}

// Values of header `name` in a raw request head, as httplib would split
// them (CRLF-terminated lines, the value without surrounding blanks) but not
// decoded: percent escapes and NUL bytes stay as sent.
std::vector<std::string> RawHeaderValues(const std::string& head, absl::string_view name) {
  std::vector<std::string> out;
  size_t pos = head.find('\n');  // skip the request line
  while (pos != std::string::npos && pos + 1 < head.size()) {
    size_t begin = pos + 1;
    size_t end = head.find('\n', begin);
    if (end == std::string::npos) break;
    pos = end;
    if (end == begin || head[end - 1] != '\r') continue;  // httplib skips such lines
    absl::string_view line(head.data() + begin, end - 1 - begin);
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
      continue;
    }
    absl::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.emplace_back(value);
  }
  return out;
}

void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  // Numeric, as httplib reports it (DisconnectWatcher matches on it).
  if (getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof(host), serv, sizeof(serv),
                  NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(serv);
  }
}

}  // namespace

HttpConnection::HttpConnection(int fd, SSL* ssl, const Limits& limits)
    : fd_(fd), ssl_(ssl), limits_(limits), buffer_(kReadChunk) {}

HttpConnection::~HttpConnection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

HttpConnection* HttpConnection::Current() { return current_connection; }
void HttpConnection::SetCurrent(HttpConnection* connection) { current_connection = connection; }

bool HttpConnection::Wait(short events, Clock::time_point deadline) const {
  while (true) {
    pollfd p{fd_, events, 0};
    int n = poll(&p, 1, MillisUntil(deadline));
    if (n > 0) return true;  // ready, or an error the next call reports
    if (n == 0) return false;
    if (errno != EINTR) return true;
  }
}

bool HttpConnection::Handshake(Clock::time_point deadline) {
  if (ssl_ == nullptr) return true;
  std::lock_guard<std::mutex> lock(io_mu_);
  while (true) {
    ERR_clear_error();
    int rc = SSL_accept(ssl_);
    if (rc == 1) return true;
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) {
      if (!Wait(POLLIN, deadline)) return false;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      if (!Wait(POLLOUT, deadline)) return false;
    } else {
      return false;
    }
  }
}

ssize_t HttpConnection::Fill(Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(io_mu_);
  buffer_begin_ = buffer_end_ = 0;
  timed_out_ = false;
  while (true) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      errno = 0;
      int n = SSL_read(ssl_, buffer_.data(), static_cast<int>(buffer_.size()));
      if (n > 0) {
        buffer_end_ = static_cast<size_t>(n);
        return n;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      // A peer that closes TCP without close_notify: EOF too.
      if (err == SSL_ERROR_SYSCALL && errno == 0) return 0;
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (events == 0) return -1;
      if (!Wait(events, deadline)) {
        timed_out_ = true;
        return -1;
      }
      continue;
    }
    ssize_t n = recv(fd_, buffer_.data(), buffer_.size(), 0);
    if (n >= 0) {
      buffer_end_ = static_cast<size_t>(n);
      return n;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (!Wait(POLLIN, deadline)) {
      timed_out_ = true;
      return -1;
    }
  }
}

bool HttpConnection::WaitForRequest(Clock::time_point deadline) {
  if (buffer_begin_ < buffer_end_) return true;
  return Fill(deadline) > 0;
}

void HttpConnection::BeginRequest(Clock::time_point head_deadline) {
  phase_ = Phase::kHead;
  deadline_ = head_deadline;
  head_.clear();
  body_mode_ = BodyMode::kNone;
  content_length_ = body_read_ = 0;
  expects_body_ = body_skipped_ = false;
  refusal_.reset();
  response_bytes_ = 0;
  probed_ = false;
}

void HttpConnection::OnHead(httplib::Request& req) {
  phase_ = Phase::kBody;
  deadline_ = Clock::now() + limits_.body_timeout;
  http11_ = req.version == "HTTP/1.1";
  expects_body_ = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                  req.method == "DELETE";
  // httplib percent-decoded the value and its getters stop at a NUL byte:
  // "Bearer %73ecret" would pass for "Bearer secret". Keys are compared
  // against the header exactly as sent.
  std::vector<std::string> auth = RawHeaderValues(head_, "Authorization");
  req.headers.erase("Authorization");
  for (std::string& value : auth) req.headers.emplace("Authorization", std::move(value));

  const std::string te = req.get_header_value("Transfer-Encoding");
  const bool has_length = req.has_header("Content-Length");
  if (!te.empty()) {
    if (!absl::EqualsIgnoreCase(te, "chunked")) {
      Refuse(400, absl::StrCat("Transfer-Encoding '", te, "' is not supported"));
    } else if (has_length) {
      Refuse(400, "a request cannot have both Content-Length and Transfer-Encoding");
    }
    body_mode_ = BodyMode::kChunked;
  } else if (has_length) {
    body_mode_ = BodyMode::kLength;
    const std::string value = req.get_header_value("Content-Length");
    if (value.empty() || !absl::ascii_isdigit(value[0]) ||
        !absl::SimpleAtoi(value, &content_length_)) {
      Refuse(400, absl::StrCat("Content-Length '", value, "' is not a number"));
    } else if (content_length_ > static_cast<uint64_t>(limits_.max_body_bytes)) {
      Refuse(413, absl::StrCat("request body exceeds the limit of ", limits_.max_body_bytes,
                               " bytes"));
    }
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && !absl::EqualsIgnoreCase(encoding, "identity")) {
    // httplib would inflate it past the body limit (a zip bomb).
    Refuse(415, absl::StrCat("Content-Encoding '", encoding,
                             "' is not supported; send the body uncompressed"));
  }
}

bool HttpConnection::CanKeepAlive() const {
  if (refusal_.has_value() || body_skipped_ || phase_ != Phase::kBody) return false;
  switch (body_mode_) {
    case BodyMode::kNone: return true;
    case BodyMode::kLength: return body_read_ == content_length_;
    // httplib reads a chunked body to its end only for methods with bodies.
    case BodyMode::kChunked: return expects_body_;
  }
  return false;
}

void HttpConnection::Refuse(int http_status, std::string message) {
  if (!refusal_.has_value()) refusal_ = Refusal{http_status, std::move(message)};
}

ssize_t HttpConnection::read(char* ptr, size_t size) {
  if (phase_ == Phase::kBody) {
    if (refusal_.has_value()) return -1;
    if (body_mode_ == BodyMode::kNone) return 0;  // HTTP/1.1: no length, no body
    if (body_mode_ == BodyMode::kLength) {
      if (body_read_ >= content_length_) return 0;
      size = static_cast<size_t>(std::min<uint64_t>(size, content_length_ - body_read_));
    }
  }
  if (buffer_begin_ == buffer_end_) {
    ssize_t n = Fill(deadline_);
    if (n <= 0) {
      if (timed_out_) {
        Refuse(408, phase_ == Phase::kBody ? "the request body did not arrive in time"
                                           : "the request head did not arrive in time");
      }
      return n;
    }
  }
  size_t n = std::min(size, buffer_end_ - buffer_begin_);
  std::memcpy(ptr, buffer_.data() + buffer_begin_, n);
  buffer_begin_ += n;
  if (phase_ == Phase::kHead) {
    head_.append(ptr, n);
    if (head_.size() > kMaxHeadBytes) {
      Refuse(431, absl::StrCat("request line and headers exceed ", kMaxHeadBytes, " bytes"));
      return -1;
    }
  } else if (phase_ == Phase::kBody) {
    body_read_ += n;
    if (body_mode_ == BodyMode::kChunked &&
        body_read_ > static_cast<uint64_t>(limits_.max_body_bytes)) {
      Refuse(413, absl::StrCat("request body exceeds the limit of ", limits_.max_body_bytes,
                               " bytes"));
      return -1;
    }
  }
  return static_cast<ssize_t>(n);
}

bool HttpConnection::WriteAll(const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const auto deadline = Clock::now() + limits_.write_timeout;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int n = SSL_write(ssl_, data + done, static_cast<int>(std::min<size_t>(size - done, 1 << 30)));
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (events == 0 || !Wait(events, deadline)) return false;
      continue;
    }
    ssize_t n = send(fd_, data + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!Wait(POLLOUT, deadline)) return false;
    } else {
      return false;
    }
  }
  return true;
}

ssize_t HttpConnection::write(const char* ptr, size_t size) {
  std::lock_guard<std::mutex> lock(io_mu_);
  // httplib's answer to "Expect: 100-continue" is interim, not the response.
  constexpr absl::string_view kInterim = "HTTP/1.1 100 ";
  if (response_bytes_ > 0 || !absl::StartsWith(absl::string_view(ptr, size), kInterim)) {
    response_bytes_ += size;
  }
  return WriteAll(ptr, size) ? static_cast<ssize_t>(size) : -1;
}

bool HttpConnection::ProbeHalfClosed() {
  std::unique_lock<std::mutex> lock(io_mu_, std::try_to_lock);
  // Busy writing: the response has begun and its own writes meet the reset.
  if (!lock.owns_lock() || response_bytes_ > 0 || probed_) return true;
  if (!http11_) return false;
  probed_ = true;
  static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  return WriteAll(kContinue, sizeof(kContinue) - 1);
}

void HttpConnection::Shutdown() {
  std::lock_guard<std::mutex> lock(io_mu_);
  const bool unread = phase_ == Phase::kBody && !CanKeepAlive();
  if (ssl_ != nullptr) SSL_shutdown(ssl_);  // close_notify, best effort
  if (unread) {
    // Closing with unread input makes the kernel send a reset, which can
    // destroy the answer before the client reads it.
    ::shutdown(fd_, SHUT_WR);
    const auto deadline = Clock::now() + kLingerTime;
    char sink[4096];
    while (Wait(POLLIN, deadline)) {
      ssize_t n = recv(fd_, sink, sizeof(sink), 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
    }
  }
  ::shutdown(fd_, SHUT_RDWR);
}

bool HttpConnection::is_readable() const {
  if (buffer_begin_ < buffer_end_) return true;
  if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return true;
  pollfd p{fd_, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

bool HttpConnection::is_writable() const {
  // Only a reset (or our own shutdown) stops writes; a peer's half-close
  // does not.
  pollfd p{fd_, POLLOUT, 0};
  poll(&p, 1, 0);
  return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) == 0;
}

void HttpConnection::get_remote_ip_and_port(std::string& ip, int& port) const {
  AddressOf(fd_, /*peer=*/true, ip, port);
}

void HttpConnection::get_local_ip_and_port(std::string& ip, int& port) const {
  AddressOf(fd_, /*peer=*/false, ip, port);
}

}  // namespace tpserve::gateway
