#include "gateway/connection_limiter.h"

#include <sys/socket.h>

namespace tpserve::gateway {

ConnectionLimiter::ConnectionLimiter(int max_connections) : max_connections_(max_connections) {}

uint64_t ConnectionLimiter::Admit(int fd, HalfCloseProbe probe) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(entries_.size()) >= max_connections_) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.waiting && (oldest == entries_.end() || it->second.since < oldest->second.since)) {
        oldest = it;
      }
    }
    if (oldest == entries_.end()) return 0;
    // Under the lock: its thread releases (and only then closes the
    // descriptor) under the same lock, so the fd cannot have been reused.
    ::shutdown(oldest->second.fd, SHUT_RDWR);
    entries_.erase(oldest);
  }
  uint64_t id = next_id_++;
  entries_[id] = Entry{fd, true, now, std::move(probe)};
  return id;
}

void ConnectionLimiter::SetWaiting(uint64_t id, bool waiting) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;  // made room for another: it is closing
  if (waiting && !it->second.waiting) it->second.since = std::chrono::steady_clock::now();
  it->second.waiting = waiting;
}

void ConnectionLimiter::Release(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(id);
}

bool ConnectionLimiter::ProbeHalfClosed(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, entry] : entries_) {
    if (entry.fd == fd) return entry.probe ? entry.probe() : false;
  }
  return false;
}

void ConnectionLimiter::ShutdownAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, entry] : entries_) ::shutdown(entry.fd, SHUT_RDWR);
}

int ConnectionLimiter::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(entries_.size());
}

}  // namespace tpserve::gateway
