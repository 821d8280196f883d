#include "worker/comm/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tpserve::worker {
namespace {

std::string ErrnoText(int err) { return std::string(std::strerror(err)); }

// Waits until `fd` has one of `events`, the abort fd fires, or the deadline
// passes. Returns the revents of `fd`.
absl::StatusOr<short> WaitFor(int fd, short events, absl::Time deadline,
                              int abort_fd, const std::string& what,
                              const char* action) {
  while (true) {
    pollfd fds[2] = {{fd, events, 0}, {abort_fd, POLLIN, 0}};
    const int nfds = abort_fd >= 0 ? 2 : 1;
    const int timeout = PollTimeoutMs(deadline);
    const int rc = ::poll(fds, nfds, timeout);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("poll failed while ", action,
                                              " ", what, ": ", ErrnoText(errno)));
    }
    if (nfds == 2 && fds[1].revents != 0) {
      return absl::UnavailableError(
          absl::StrCat("communicator aborted while ", action, " ", what));
    }
    if (fds[0].revents != 0) return fds[0].revents;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("timed out ", action, " ", what));
    }
  }
}

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() { reset(); }

int Fd::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int PollTimeoutMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  const int64_t ms = absl::ToInt64Milliseconds(left) + 1;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

absl::Status TuneSocket(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return absl::InternalError(
        absl::StrCat("fcntl(O_NONBLOCK) failed: ", ErrnoText(errno)));
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return absl::OkStatus();
}

absl::StatusOr<Fd> ListenLoopback(int* port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    return absl::InternalError(absl::StrCat("socket(): ", ErrnoText(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      ::listen(fd.get(), 64) < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1: ", ErrnoText(errno)));
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    return absl::InternalError(absl::StrCat("getsockname: ", ErrnoText(errno)));
  }
  if (absl::Status s = TuneSocket(fd.get()); !s.ok()) return s;
  *port = ntohs(addr.sin_port);
  return fd;
}

absl::StatusOr<Fd> ConnectWithRetry(const std::string& host, int port,
                                    absl::Time deadline, int abort_fd,
                                    const std::string& what) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad IPv4 address '", host, "' for ", what));
  }
  std::string last_error = "no attempt";
  while (absl::Now() < deadline) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
      return absl::InternalError(absl::StrCat("socket(): ", ErrnoText(errno)));
    }
    if (absl::Status s = TuneSocket(fd.get()); !s.ok()) return s;
    int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      absl::StatusOr<short> ready =
          WaitFor(fd.get(), POLLOUT, deadline, abort_fd, what, "connecting to");
      if (!ready.ok()) return ready.status();
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0) return fd;
    last_error = ErrnoText(err);
    if (err != ECONNREFUSED && err != ETIMEDOUT && err != ECONNRESET) break;
    // The peer is not listening yet: retry shortly, still bounded.
    pollfd pfd{abort_fd, POLLIN, 0};
    ::poll(&pfd, abort_fd >= 0 ? 1 : 0,
           std::min(20, PollTimeoutMs(deadline)));
    if (abort_fd >= 0 && pfd.revents != 0) {
      return absl::UnavailableError(
          absl::StrCat("communicator aborted while connecting to ", what));
    }
  }
  return absl::UnavailableError(absl::StrCat("cannot connect to ", what, " at ",
                                             host, ":", port, ": ", last_error));
}

absl::StatusOr<Fd> AcceptBefore(int listen_fd, absl::Time deadline,
                                int abort_fd, const std::string& what) {
  while (true) {
    absl::StatusOr<short> ready =
        WaitFor(listen_fd, POLLIN, deadline, abort_fd, what, "waiting for");
    if (!ready.ok()) return ready.status();
    Fd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (fd.valid()) {
      if (absl::Status s = TuneSocket(fd.get()); !s.ok()) return s;
      return fd;
    }
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      return absl::InternalError(absl::StrCat("accept: ", ErrnoText(errno)));
    }
  }
}

absl::Status SendAll(int fd, const void* data, size_t n, absl::Time deadline,
                     int abort_fd, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t rc = ::send(fd, p, n, MSG_NOSIGNAL);
    if (rc > 0) {
      p += rc;
      n -= static_cast<size_t>(rc);
      continue;
    }
    if (rc < 0 && (errno == EAGAIN || errno == EINTR)) {
      absl::StatusOr<short> ready =
          WaitFor(fd, POLLOUT, deadline, abort_fd, what, "sending to");
      if (!ready.ok()) return ready.status();
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat("lost connection to ", what, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

absl::Status RecvAll(int fd, void* data, size_t n, absl::Time deadline,
                     int abort_fd, const std::string& what) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t rc = ::recv(fd, p, n, 0);
    if (rc > 0) {
      p += rc;
      n -= static_cast<size_t>(rc);
      continue;
    }
    if (rc == 0) {
      return absl::UnavailableError(
          absl::StrCat(what, " closed the connection (process gone?)"));
    }
    if (errno == EAGAIN || errno == EINTR) {
      absl::StatusOr<short> ready =
          WaitFor(fd, POLLIN, deadline, abort_fd, what, "waiting for data from");
      if (!ready.ok()) return ready.status();
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat("lost connection to ", what, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tpserve::worker
