#include "gateway/testing/sse_load_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tpserve::gateway::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kTokensKey[] = "\"completion_tokens\":";

absl::StatusOr<int> ConnectAndSend(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  // Bounded: a full accept queue would otherwise retry the SYN for minutes.
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size())) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect/send to port ", port, ": ",
                                               std::strerror(err)));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SseLoadClient>> SseLoadClient::Start(int port,
                                                                    const std::string& path,
                                                                    const std::string& body,
                                                                    int streams) {
  std::unique_ptr<SseLoadClient> client(new SseLoadClient());
  client->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  const std::string request = absl::StrCat(
      "POST ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
      "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  client->streams_.resize(streams);
  for (int i = 0; i < streams; ++i) {
    SseStream& s = client->streams_[i];
    s.start = Clock::now();
    auto fd = ConnectAndSend(port, request);
    if (!fd.ok()) return fd.status();
    s.fd = *fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(client->epoll_fd_, EPOLL_CTL_ADD, s.fd, &ev);
  }
  return client;
}

SseLoadClient::~SseLoadClient() {
  CloseAll();
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void SseLoadClient::CloseAll() {
  for (SseStream& s : streams_) {
    if (s.fd < 0) continue;
    close(s.fd);
    s.fd = -1;
    s.closed = true;
  }
}

int SseLoadClient::PollUntil(Clock::time_point deadline) {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  char buf[65536];
  while (open() > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, static_cast<int>(left.count()));
    for (int i = 0; i < n; ++i) {
      SseStream& s = streams_[events[i].data.u32];
      // Read what is there; a zero read or an error ends the stream.
      while (s.fd >= 0) {
        ssize_t r = read(s.fd, buf, sizeof(buf));
        if (r > 0) {
          Consume(s, buf, static_cast<size_t>(r));
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        close(s.fd);
        s.fd = -1;
        s.closed = true;
      }
    }
  }
  return open();
}

void SseLoadClient::Consume(SseStream& s, const char* data, size_t n) {
  const auto now = Clock::now();
  s.partial.append(data, n);
  size_t begin = 0;
  for (size_t nl; (nl = s.partial.find('\n', begin)) != std::string::npos; begin = nl + 1) {
    absl::string_view line(s.partial.data() + begin, nl - begin);
    if (s.status == 0 && absl::StartsWith(line, "HTTP/1.1 ")) {
      s.status = std::atoi(std::string(line.substr(9, 3)).c_str());
      continue;
    }
    if (!absl::StartsWith(line, "data: ")) continue;  // headers, chunk sizes
    if (absl::StartsWith(line, "data: [DONE]")) {
      s.done = true;
    } else if (absl::StartsWith(line, "data: {\"error\"")) {
      s.error_event = true;
    }
    const size_t key = line.rfind(kTokensKey);
    if (key == absl::string_view::npos) continue;
    const absl::string_view number = line.substr(key + sizeof(kTokensKey) - 1, 12);
    const int tokens = std::atoi(std::string(number).c_str());
    if (tokens > s.tokens) {
      s.tokens = tokens;
      s.token_chunks.push_back(now);
    }
  }
  s.partial.erase(0, begin);
}

long SseLoadClient::total_tokens() const {
  long total = 0;
  for (const SseStream& s : streams_) total += s.tokens;
  return total;
}

int SseLoadClient::open() const {
  int open = 0;
  for (const SseStream& s : streams_) open += s.fd >= 0 ? 1 : 0;
  return open;
}

}  // namespace tpserve::gateway::testing
