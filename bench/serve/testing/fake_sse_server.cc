#include "bench/serve/testing/fake_sse_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tpserve::bench::testing {
namespace {

constexpr double kBarrierTimeoutS = 20.0;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A whole response, cut into the pieces sent one per send(): the status
// line and headers, the token events in groups, then the ending.
struct Reply {
  std::string text;
  std::vector<size_t> cuts{0};
  void Piece(const std::string& s) {
    text += s;
    cuts.push_back(text.size());
  }
  size_t pieces() const { return cuts.size() - 1; }
};

std::string Event(const nlohmann::json& j) { return "data: " + j.dump() + "\n\n"; }

Reply PlainReply(int status, const std::string& reason, const std::string& body) {
  Reply r;
  r.Piece(absl::StrCat("HTTP/1.1 ", status, " ", reason,
                       "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                       "\r\nConnection: close\r\n\r\n", body));
  return r;
}

struct Request {
  std::string method, path, authorization, body;
};

Reply StreamReply(const Request& req, const FakeServerOptions& o) {
  const bool chat = absl::EndsWith(req.path, "/chat/completions");
  int tokens = o.tokens;
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (body.is_object() && body.contains(key) && body[key].is_number_integer()) {
      tokens = body[key].get<int>();
    }
  }
  Reply r;
  r.Piece("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
  const int sent = o.error_after_tokens > 0 ? std::min(tokens, o.error_after_tokens) : tokens;
  std::string group;
  for (int i = 0; i < sent; ++i) {
    nlohmann::json choice = {{"index", 0}, {"finish_reason", nullptr}};
    if (chat) {
      choice["delta"] = {{"content", " tok"}};
    } else {
      choice["text"] = " tok";
    }
    if (i + 1 == tokens) choice["finish_reason"] = "length";
    group += Event(
        {{"object", chat ? "chat.completion.chunk" : "text_completion"}, {"choices", {choice}}});
    if ((i + 1) % o.events_per_write == 0 || i + 1 == sent) {
      r.Piece(group);
      group.clear();
    }
  }
  if (sent < tokens) {
    r.Piece(Event({{"error", {{"message", "fake failure mid-stream"}, {"code", 500}}}}) +
            "data: [DONE]\n\n");
  } else {
    r.Piece(
        Event({{"choices", nlohmann::json::array()},
               {"usage",
                {{"prompt_tokens", 0}, {"completion_tokens", tokens}, {"total_tokens", tokens}}}}) +
        "data: [DONE]\n\n");
  }
  return r;
}

// Parses a complete request out of `in`; false while bytes are missing.
bool ParseRequest(const std::string& in, Request* req) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  const size_t sp1 = in.find(' ');
  const size_t sp2 = in.find(' ', sp1 + 1);
  req->method = in.substr(0, sp1);
  req->path = in.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t length = 0;
  size_t pos = in.find("\r\n") + 2;
  while (pos < end) {
    const size_t eol = in.find("\r\n", pos);
    const std::string line = in.substr(pos, eol - pos);
    const size_t colon = line.find(':');
    const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    if (name == "content-length") absl::SimpleAtoi(value, &length);
    if (name == "authorization") req->authorization = value;
    pos = eol + 2;
  }
  if (in.size() < end + 4 + length) return false;
  req->body = in.substr(end + 4, length);
  return true;
}

}  // namespace

class FakeSseServer::Loop {
 public:
  struct Conn {
    std::string in;
    bool replying = false;
    Reply reply;
    size_t piece = 0;    // next piece to send
    size_t off = 0;      // bytes of reply.text sent
    size_t allowed = 1;  // pieces that may be sent by now (the headers at once)
  };

  Loop(FakeSseServer* owner, int listen_fd, int epfd)
      : owner_(owner),
        listen_fd_(listen_fd),
        epfd_(epfd),
        barrier_open_(owner->options_.barrier == 0) {}
  ~Loop() {
    for (auto& [fd, c] : conns_) close(fd);
    close(listen_fd_);
    close(epfd_);
  }

  void Run() {
    const FakeServerOptions& o = owner_->options_;
    double next_tick = Now();
    epoll_event events[256];
    while (!owner_->stop_.load()) {
      int wait = 50;
      if (o.interval_ms > 0) {
        wait = std::clamp(static_cast<int>((next_tick - Now()) * 1000), 0, 50);
      }
      const int n = epoll_wait(epfd_, events, 256, wait);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          Accept();
        } else if (!conns_.count(fd)) {
          continue;  // closed earlier in this batch
        } else if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
          Read(fd);
        } else if (events[i].events & EPOLLOUT) {
          Pump(fd);
        }
      }
      if (!barrier_open_ && (open_ >= o.barrier ||
                             (first_request_ > 0 && Now() - first_request_ > kBarrierTimeoutS))) {
        barrier_open_ = true;
        if (o.interval_ms == 0) PumpAll(true);
      }
      if (o.interval_ms > 0 && Now() >= next_tick) {
        next_tick += o.interval_ms / 1000.0;
        PumpAll(false);
      }
    }
  }

 private:
  void Accept() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      conns_[fd];
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void Read(int fd) {
    Conn& c = conns_[fd];
    char buf[16384];
    while (true) {
      const ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, r);
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        Close(fd);
        return;
      }
      break;
    }
    Request req;
    if (c.replying || !ParseRequest(c.in, &req)) return;
    c.replying = true;
    const FakeServerOptions& o = owner_->options_;
    if (req.method == "GET") {
      c.reply = PlainReply(200, "OK", R"({"object":"list","data":[{"id":"fake-model"}]})");
    } else if (!o.api_key.empty() && req.authorization != "Bearer " + o.api_key) {
      c.reply =
          PlainReply(401, "Unauthorized", R"({"error":{"message":"Invalid API key","code":401}})");
    } else if (o.status != 200) {
      c.reply =
          PlainReply(o.status, "Error", R"({"error":{"message":"fake server error","code":500}})");
    } else {
      c.reply = StreamReply(req, o);
    }
    if (first_request_ == 0) first_request_ = Now();
    ++open_;
    owner_->peak_open_.store(std::max(owner_->peak_open_.load(), open_));
    // Plain replies and untimed streams go out now; timed ones by tick.
    if (c.reply.pieces() == 1 || (o.interval_ms == 0 && barrier_open_)) {
      c.allowed = c.reply.pieces();
    }
    Pump(fd);
  }

  // Sends allowed pieces, one send() each, until done or the socket is full.
  void Pump(int fd) {
    Conn& c = conns_[fd];
    while (c.piece < std::min(c.allowed, c.reply.pieces())) {
      const size_t end = c.reply.cuts[c.piece + 1];
      const ssize_t w = send(fd, c.reply.text.data() + c.off, end - c.off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          Watch(fd, EPOLLIN | EPOLLOUT);
        } else {
          Finish(fd);
        }
        return;
      }
      c.off += w;
      if (c.off == end) ++c.piece;
    }
    if (c.piece == c.reply.pieces() && c.replying) {
      Finish(fd);
      return;
    }
    Watch(fd, EPOLLIN);
  }

  void PumpAll(bool everything) {
    std::vector<int> fds;
    for (auto& [fd, c] : conns_) {
      if (!c.replying || !barrier_open_) continue;
      c.allowed = everything ? c.reply.pieces() : c.allowed + 1;
      fds.push_back(fd);
    }
    for (int fd : fds) Pump(fd);
  }

  void Watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void Finish(int fd) {
    --open_;
    owner_->answered_.fetch_add(1);
    conns_[fd].replying = false;
    Close(fd);
  }

  void Close(int fd) {
    auto it = conns_.find(fd);
    if (it != conns_.end() && it->second.replying) --open_;
    conns_.erase(fd);
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
  }

  FakeSseServer* owner_;
  int listen_fd_;
  int epfd_;
  std::unordered_map<int, Conn> conns_;
  bool barrier_open_;
  int open_ = 0;
  double first_request_ = 0;
};

FakeSseServer::FakeSseServer(FakeServerOptions options) : options_(std::move(options)) {
  if (options_.events_per_write < 1) options_.events_per_write = 1;
}

FakeSseServer::~FakeSseServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

absl::Status FakeSseServer::Start() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd, 4096) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return absl::InternalError(absl::StrCat("fake server: ", std::strerror(errno)));
  }
  port_ = ntohs(addr.sin_port);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  loop_ = std::make_unique<Loop>(this, fd, epfd);
  thread_ = std::thread([this] { loop_->Run(); });
  return absl::OkStatus();
}

}  // namespace tpserve::bench::testing
