#include "gateway/disconnect_watcher.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace tpserve::gateway {
namespace {

int PortOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  }
  return -1;
}

bool AddressMatches(const sockaddr_storage& addr, socklen_t len, const std::string& host,
                    int port) {
  // The port rules out almost every other socket without formatting the
  // address (a scan may see a thousand connections).
  if (PortOf(addr) != port) return false;
  char host_buf[NI_MAXHOST];
  char port_buf[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host_buf, sizeof(host_buf),
                  port_buf, sizeof(port_buf), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  return std::atoi(port_buf) == port && (host.empty() || host == host_buf);
}

bool FdIsConnection(int fd, const std::string& remote_addr, int remote_port, int local_port) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (!AddressMatches(addr, len, remote_addr, remote_port)) return false;
  len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  return AddressMatches(addr, len, "", local_port);
}

// Keep-alive clients send many requests over one socket served by one
// thread, so the last match (or the hint) is the likely one.
thread_local int last_fd = -1;

}  // namespace

void DisconnectWatcher::HintConnectionFd(int fd) { last_fd = fd; }

int DisconnectWatcher::FindConnectionFd(const std::string& remote_addr, int remote_port,
                                        int local_port) {
  if (last_fd >= 0 && FdIsConnection(last_fd, remote_addr, remote_port, local_port)) {
    return last_fd;
  }
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    if (FdIsConnection(static_cast<int>(fd), remote_addr, remote_port, local_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  last_fd = found;
  return found;
}

DisconnectWatcher::DisconnectWatcher(HalfCloseCheck still_reading)
    : still_reading_(std::move(still_reading)),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  thread_ = std::thread([this] { Loop(); });
}

DisconnectWatcher::~DisconnectWatcher() {
  stopping_.store(true);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(wake_fd_);
  close(epoll_fd_);
}

uint64_t DisconnectWatcher::Watch(int fd, std::function<void()> on_hangup) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  entries_[id] = {fd, std::move(on_hangup), false};
  // One report, then the entry is gone or re-armed (RDHUP stays true once
  // it is).
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = id;
  // A descriptor still registered for an entry whose socket was closed and
  // whose number came back is re-pointed at the new entry.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  }
  if (auto old = fd_owner_.find(fd); old != fd_owner_.end()) entries_.erase(old->second);
  fd_owner_[fd] = id;
  return id;
}

std::function<void()> DisconnectWatcher::RemoveLocked(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return nullptr;
  std::function<void()> fn = std::move(it->second.on_hangup);
  auto owner = fd_owner_.find(it->second.fd);
  if (owner != fd_owner_.end() && owner->second == id) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
    fd_owner_.erase(owner);
  }
  entries_.erase(it);
  return fn;
}

void DisconnectWatcher::Unwatch(uint64_t id) {
  std::lock_guard<std::mutex> callbacks(callback_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  RemoveLocked(id);
}

void DisconnectWatcher::Loop() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stopping_.load()) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    if (n <= 0) continue;  // EINTR
    std::lock_guard<std::mutex> callbacks(callback_mu_);
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == 0) continue;  // the shutdown wake-up
      const uint32_t what = events[i].events;
      if ((what & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) continue;
      int fd = -1;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(id);
        // Gone already (unwatched): the request finished.
        if (it == entries_.end()) continue;
        fd = it->second.fd;
      }
      const bool reset = (what & (EPOLLHUP | EPOLLERR)) != 0;
      // Asked without mu_ (it may write to the socket); callback_mu_ keeps
      // the entry from being unwatched meanwhile.
      if (!reset && still_reading_ && still_reading_(fd)) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(id);
        if (it == entries_.end()) continue;
        it->second.half_closed = true;
        // Re-armed for a reset only (always reported, whatever is asked).
        epoll_event ev{};
        ev.events = EPOLLONESHOT;
        ev.data.u64 = id;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        continue;
      }
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        fn = RemoveLocked(id);
      }
      if (fn) fn();
    }
  }
}

}  // namespace tpserve::gateway
