#include "bench/serve/http_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace tpserve::bench {

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

namespace {

constexpr int kMaxEvents = 512;

// One transfer's state, owned by the client from Start to OnDone.
struct Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  StreamHandler* handler = nullptr;
  long status = 0;
  char error[CURL_ERROR_SIZE] = {};
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  // The status line is in by the first body byte; ask once.
  if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
  t->handler->OnBody(std::string_view(data, size * n), MonotonicSeconds(), t->status);
  return size * n;
}

// Each benchmark stream may hold a socket; the default soft limit (often
// 1024) would cap the run well below what the hard limit allows.
void RaiseOpenFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace

class HttpClient::Impl {
 public:
  CURLM* multi = nullptr;
  int epfd = -1;
  // When curl wants CURL_SOCKET_TIMEOUT called; < 0: no timer.
  double timer_at = -1;
  // Transfers started and not done, released with the client on an early exit.
  std::unordered_set<Transfer*> transfers;

  ~Impl() {
    for (Transfer* t : transfers) {
      curl_multi_remove_handle(multi, t->easy);
      Release(t);
    }
    if (multi != nullptr) curl_multi_cleanup(multi);
    if (epfd >= 0) close(epfd);
  }

  static void Release(Transfer* t) {
    if (t == nullptr) return;
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    delete t;
  }

  static int OnSocket(CURL*, curl_socket_t s, int what, void* user, void* socketp) {
    auto* self = static_cast<Impl*>(user);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epfd, EPOLL_CTL_DEL, s, nullptr);
      curl_multi_assign(self->multi, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = s;
    // A socket curl already registered is modified; a descriptor number
    // reused after a close without REMOVE is re-added.
    int op = socketp != nullptr ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(self->epfd, op, s, &ev) != 0) {
      op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      epoll_ctl(self->epfd, op, s, &ev);
    }
    curl_multi_assign(self->multi, s, self);
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->timer_at = timeout_ms < 0 ? -1 : MonotonicSeconds() + timeout_ms / 1000.0;
    return 0;
  }

  void DeliverDone() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      const CURLcode code = msg->data.result;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
      std::string error;
      if (code != CURLE_OK) {
        error = t->error[0] != '\0' ? t->error : curl_easy_strerror(code);
      }
      curl_multi_remove_handle(multi, t->easy);
      transfers.erase(t);
      t->handler->OnDone(error, t->status, MonotonicSeconds());
      Release(t);
    }
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(int max_connections) {
  static std::once_flag once;
  static CURLcode init = CURLE_OK;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init != CURLE_OK) {
    return absl::InternalError(absl::StrCat("libcurl: ", curl_easy_strerror(init)));
  }
  RaiseOpenFileLimit();
  auto impl = std::make_unique<Impl>();
  impl->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (impl->epfd < 0) return absl::InternalError(absl::StrCat("epoll: ", std::strerror(errno)));
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) return absl::InternalError("libcurl: curl_multi_init failed");
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETFUNCTION, &Impl::OnSocket);
  curl_multi_setopt(impl->multi, CURLMOPT_SOCKETDATA, impl.get());
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERFUNCTION, &Impl::OnTimer);
  curl_multi_setopt(impl->multi, CURLMOPT_TIMERDATA, impl.get());
  curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS, static_cast<long>(max_connections));
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

absl::Status HttpClient::Start(const HttpRequest& request, StreamHandler* handler) {
  auto* t = new Transfer;
  t->handler = handler;
  t->body = request.body;
  t->easy = curl_easy_init();
  if (t->easy == nullptr) {
    delete t;
    return absl::InternalError("libcurl: curl_easy_init failed");
  }
  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
  // Resolve a host name once per run, not once per request of a burst.
  curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, -1L);
  if (!t->body.empty()) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    // No "Expect: 100-continue" round trip before large prompts.
    t->headers = curl_slist_append(t->headers, "Expect:");
  }
  for (const std::string& h : request.headers)
    t->headers = curl_slist_append(t->headers, h.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  if (CURLMcode rc = curl_multi_add_handle(impl_->multi, e); rc != CURLM_OK) {
    Impl::Release(t);
    return absl::InternalError(absl::StrCat("libcurl: ", curl_multi_strerror(rc)));
  }
  impl_->transfers.insert(t);
  return absl::OkStatus();
}

void HttpClient::Poll(int timeout_ms) {
  Impl& m = *impl_;
  int wait = timeout_ms;
  if (m.timer_at >= 0) {
    const double left_ms = (m.timer_at - MonotonicSeconds()) * 1000.0;
    wait = std::min(wait, std::max(0, static_cast<int>(std::ceil(left_ms))));
  }
  epoll_event events[kMaxEvents];
  const int n = epoll_wait(m.epfd, events, kMaxEvents, wait);
  int running = 0;
  for (int i = 0; i < n; ++i) {
    int flags = 0;
    if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(m.multi, events[i].data.fd, flags, &running);
  }
  if (m.timer_at >= 0 && MonotonicSeconds() >= m.timer_at) {
    m.timer_at = -1;
    curl_multi_socket_action(m.multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  m.DeliverDone();
}

int HttpClient::active() const { return static_cast<int>(impl_->transfers.size()); }

namespace {

class Collector : public StreamHandler {
 public:
  void OnBody(std::string_view bytes, double, long) override { response.body.append(bytes); }
  void OnDone(const std::string& e, long status, double) override {
    error = e;
    response.status = status;
    done = true;
  }
  HttpResponse response;
  std::string error;
  bool done = false;
};

}  // namespace

absl::StatusOr<HttpResponse> HttpClient::Fetch(const HttpRequest& request) {
  Collector c;
  if (absl::Status s = Start(request, &c); !s.ok()) return s;
  while (!c.done) Poll(100);
  if (!c.error.empty()) return absl::UnavailableError(c.error);
  return c.response;
}

}  // namespace tpserve::bench
