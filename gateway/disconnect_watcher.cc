#include "gateway/disconnect_watcher.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <vector>

namespace tpserve::gateway {
namespace {

// How often the socket list is rebuilt; bounds how late a hang-up of a
// just-registered socket is seen.
constexpr int kPollMs = 20;

bool AddressMatches(const sockaddr_storage& addr, socklen_t len, const std::string& host,
                    int port) {
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
    : still_reading_(std::move(still_reading)), thread_([this] { Loop(); }) {}

DisconnectWatcher::~DisconnectWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t DisconnectWatcher::Watch(int fd, std::function<void()> on_hangup) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  entries_[id] = {fd, std::move(on_hangup), false};
  cv_.notify_all();
  return id;
}

void DisconnectWatcher::Unwatch(uint64_t id) {
  std::lock_guard<std::mutex> callbacks(callback_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(id);
}

void DisconnectWatcher::Loop() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !entries_.empty(); });
      if (stopping_) return;
      fds.clear();
      ids.clear();
      for (const auto& [id, entry] : entries_) {
        // POLLRDHUP only: pending request bytes (POLLIN) are not a hang-up.
        // After a half-close, no event asked: poll still reports a reset.
        fds.push_back({entry.fd, static_cast<short>(entry.half_closed ? 0 : POLLRDHUP), 0});
        ids.push_back(id);
      }
    }
    int n = poll(fds.data(), fds.size(), kPollMs);
    if (n <= 0) continue;
    std::lock_guard<std::mutex> callbacks(callback_mu_);
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0) continue;
      const bool reset = (fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
      // Asked without mu_ (it may write to the socket); callback_mu_ keeps
      // the entry from being unwatched meanwhile.
      if (!reset && still_reading_ && still_reading_(fds[i].fd)) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(ids[i]);
        if (it != entries_.end()) it->second.half_closed = true;
        continue;
      }
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(ids[i]);
        // Gone already: the request finished and the fd may be reused.
        if (it == entries_.end()) continue;
        fn = std::move(it->second.on_hangup);
        entries_.erase(it);
      }
      if (fn) fn();
    }
  }
}

}  // namespace tpserve::gateway
