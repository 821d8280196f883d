#include "gateway/http_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/disconnect_watcher.h"
#include "gateway/http_error.h"

namespace tpserve::gateway {
namespace {

// cpp-httplib's compiled-in listen backlog is 5: a burst of new clients
// overflows it and their SYNs are dropped and retried after seconds.
constexpr int kListenBacklog = 1024;
// Descriptors kept for everything but client connections (router channels,
// model files, /proc scans).
constexpr int kReservedFds = 256;

// Set while a connection is handed to process_and_close_socket on the
// accepting thread because no thread could be started for it.
thread_local bool refuse_inline = false;

// One thread per connection, joined when it ends (the connection cap bounds
// how many there are). httplib's fixed pool would queue new connections
// behind trickling ones.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    Reap();
    const uint64_t id = next_id_++;
    try {
      threads_.emplace(id, std::thread([this, id, fn] {
                         fn();
                         std::lock_guard<std::mutex> l(mu_);
                         finished_.push_back(id);
                       }));
    } catch (const std::system_error& e) {
      spdlog::error("gateway: cannot start a connection thread ({}); refusing the connection",
                    e.what());
      refuse_inline = true;
      fn();
      refuse_inline = false;
    }
  }

  void shutdown() override {
    std::map<uint64_t, std::thread> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(threads_);
      finished_.clear();
    }
    for (auto& [id, thread] : all) thread.join();
  }

 private:
  void Reap() {
    for (uint64_t id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      it->second.join();
      threads_.erase(it);
    }
    finished_.clear();
  }

  std::mutex mu_;
  std::map<uint64_t, std::thread> threads_;
  std::vector<uint64_t> finished_;
  uint64_t next_id_ = 1;
};

// Raises the soft descriptor limit to the hard one (systemd's default soft
// limit is 1024) and returns how many connections fit under it.
int ConnectionsThatFit(int wanted) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return wanted;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur == RLIM_INFINITY) return wanted;
  const rlim_t reserved = std::min<rlim_t>(lim.rlim_cur / 2, kReservedFds);
  const int fit = static_cast<int>(std::min<rlim_t>(lim.rlim_cur - reserved, 1 << 30));
  if (fit < wanted) {
    spdlog::warn("gateway: the open-file limit ({}) allows {} connections, not --max-connections "
                 "{}; raise it (ulimit -n, LimitNOFILE=) for more",
                 lim.rlim_cur, fit, wanted);
    return fit;
  }
  return wanted;
}

// A complete 503 for a connection refused before any request was read.
void WriteBusy(int sock) {
  const std::string body = ErrorBodyForHttpStatus(
      503, "the server has too many open connections; retry later");
  const std::string response =
      absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n",
                   "Retry-After: 1\r\nConnection: close\r\nContent-Length: ", body.size(),
                   "\r\n\r\n", body);
  (void)send(sock, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

std::string MessageFor(const httplib::Request& req, int status) {
  switch (status) {
    case 404: return absl::StrCat("no route for ", req.method, " ", req.path);
    case 414: return "request URI too long";
    case 400: return "malformed HTTP request";
    default: return absl::StrCat("the request failed with HTTP status ", status);
  }
}

}  // namespace

HttpServer::HttpServer(const HttpServerOptions& options, Admission admission)
    : options_(options),
      admission_(std::move(admission)),
      limiter_(ConnectionsThatFit(options.max_connections)) {
  new_task_queue = [] { return new ConnectionThreads(); };
  set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  set_payload_max_length(static_cast<size_t>(options.limits.max_body_bytes));
  // Requests per connection before it is closed (httplib's default is 5).
  set_keep_alive_max_count(100);
  set_keep_alive_timeout(
      std::chrono::duration_cast<std::chrono::seconds>(options.keep_alive_timeout).count());
  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return Admit(req, res) ? HandlerResponse::Unhandled : HandlerResponse::Handled;
  });
  // Refuse before the client sends a body it announced with Expect.
  set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
    return Admit(req, res) ? 100 : res.status;
  });
  // httplib's own answers (unknown path, malformed request) and refusals of
  // the connection layer get an OpenAI error object instead of an empty body.
  set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
    std::string message;
    HttpConnection* conn = HttpConnection::Current();
    if (conn != nullptr && conn->refusal().has_value()) {
      res.status = conn->refusal()->http_status;
      message = conn->refusal()->message;
    } else {
      message = MessageFor(req, res.status);
    }
    res.set_content(ErrorBodyForHttpStatus(res.status, message), "application/json");
  });
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Bind(const std::string& host, int port) {
  int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port));
  }
  // listen() again on the bound socket raises the backlog (Linux).
  ::listen(svr_sock_, kListenBacklog);
  return bound;
}

void HttpServer::Serve() { listen_after_bind(); }

void HttpServer::Stop() {
  stopping_.store(true);
  // httplib's stop() does this only once its accept loop runs; closing the
  // socket ourselves also stops a loop that has not started yet.
  int sock = svr_sock_.exchange(INVALID_SOCKET);
  if (sock != INVALID_SOCKET) {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  limiter_.ShutdownAll();
}

bool HttpServer::Admit(const httplib::Request& req, httplib::Response& res) {
  HttpConnection* conn = HttpConnection::Current();
  if (conn != nullptr && conn->refusal().has_value()) {
    res.status = conn->refusal()->http_status;
    res.set_content(ErrorBodyForHttpStatus(res.status, conn->refusal()->message),
                    "application/json");
    res.set_header("Connection", "close");
    return false;
  }
  if (admission_ && !admission_(req, res)) {
    if (conn != nullptr) conn->SkipBody();
    res.set_header("Connection", "close");
    return false;
  }
  return true;
}

bool HttpServer::process_and_close_socket(int sock) {
  if (refuse_inline) {
    WriteBusy(sock);
    ::close(sock);
    return false;
  }
  fcntl(sock, F_SETFL, fcntl(sock, F_GETFL, 0) | O_NONBLOCK);
  int yes = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  SSL* ssl = nullptr;
  if (options_.tls != nullptr) {
    ssl = SSL_new(options_.tls.get());
    if (ssl == nullptr || SSL_set_fd(ssl, sock) != 1) {
      if (ssl != nullptr) SSL_free(ssl);
      ::close(sock);
      return false;
    }
  }
  HttpConnection conn(sock, ssl, options_.limits);
  const uint64_t id = limiter_.Admit(sock, [&conn] { return conn.ProbeHalfClosed(); });
  if (id == 0) {
    // Every connection is busy with a request: tell a plain-HTTP client to
    // come back (a TLS one would need a handshake first).
    if (ssl == nullptr) WriteBusy(sock);
    ::close(sock);
    return false;
  }
  HttpConnection::SetCurrent(&conn);
  // Handlers run on this thread: the watcher finds their socket at once.
  DisconnectWatcher::HintConnectionFd(sock);
  ServeRequests(conn, id);
  // A closing connection may give way to a new one.
  limiter_.SetWaiting(id, true);
  conn.Shutdown();
  HttpConnection::SetCurrent(nullptr);
  // Released before the descriptor closes, so the limiter never shuts down
  // a reused descriptor.
  limiter_.Release(id);
  ::close(sock);
  return true;
}

void HttpServer::ServeRequests(HttpConnection& conn, uint64_t id) {
  using Clock = HttpConnection::Clock;
  // The first request's head (and the TLS handshake) must be in by then.
  Clock::time_point head_deadline = Clock::now() + options_.header_timeout;
  if (!conn.Handshake(head_deadline)) return;
  for (size_t left = keep_alive_max_count_; left > 0 && !stopping_.load(); --left) {
    const bool first = left == keep_alive_max_count_;
    limiter_.SetWaiting(id, true);
    if (!conn.WaitForRequest(first ? head_deadline : Clock::now() + options_.keep_alive_timeout)) {
      return;
    }
    if (!first) head_deadline = Clock::now() + options_.header_timeout;
    conn.BeginRequest(head_deadline);
    bool closed = false;
    bool ok = process_request(conn, /*close_connection=*/left == 1 || stopping_.load(), closed,
                              [&](httplib::Request& req) {
                                conn.OnHead(req);
                                limiter_.SetWaiting(id, false);
                              });
    if (!ok || closed || !conn.CanKeepAlive()) return;
  }
}

}  // namespace tpserve::gateway
