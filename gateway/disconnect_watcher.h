// Notices HTTP clients that hang up while their request is still running, so
// the router call is cancelled at once (KV blocks freed) instead of when the
// next token fails to write. cpp-httplib 0.11 does not expose the socket of a
// request, so the connection is found by its addresses (see FindConnectionFd)
// and watched for EPOLLRDHUP by one background thread that sleeps in
// epoll_wait until a watched peer hangs up (no periodic wake-up).
#ifndef TPSERVE_GATEWAY_DISCONNECT_WATCHER_H_
#define TPSERVE_GATEWAY_DISCONNECT_WATCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace tpserve::gateway {

// One thread watching many client sockets for hang-ups.
class DisconnectWatcher {
 public:
  // Called on the watcher thread when the peer of `fd` shuts its sending
  // side (FIN) but has not reset: a client that half-closed after its
  // request still reads the answer, and a FIN alone cannot tell it from one
  // that closed. True: the client may still be there; the watch goes on
  // until a reset (EPOLLHUP/EPOLLERR). False (or no callback): a hang-up.
  using HalfCloseCheck = std::function<bool(int fd)>;

  explicit DisconnectWatcher(HalfCloseCheck still_reading = nullptr);
  ~DisconnectWatcher();
  DisconnectWatcher(const DisconnectWatcher&) = delete;
  DisconnectWatcher& operator=(const DisconnectWatcher&) = delete;

  // The descriptor of this process's TCP socket whose peer is
  // remote_addr:remote_port and whose local port is local_port, or -1.
  // remote_addr is in getnameinfo's numeric form, as cpp-httplib reports it.
  static int FindConnectionFd(const std::string& remote_addr, int remote_port, int local_port);
  // Tells FindConnectionFd, on this thread, which descriptor to try first
  // (the connection this thread serves), sparing a /proc scan over
  // thousands of sockets.
  static void HintConnectionFd(int fd);

  // Calls `on_hangup` once, on the watcher thread, when the peer of `fd`
  // closes or resets the connection. Returns an id for Unwatch.
  uint64_t Watch(int fd, std::function<void()> on_hangup);

  // Stops watching; once it returns the callback is not running and will not
  // run.
  void Unwatch(uint64_t id);

 private:
  void Loop();
  // Stops watching entry `id` (mu_ held); returns its callback.
  std::function<void()> RemoveLocked(uint64_t id);

  struct Entry {
    int fd;
    std::function<void()> on_hangup;
    // The peer half-closed and may still read: only a reset counts now.
    bool half_closed = false;
  };
  const HalfCloseCheck still_reading_;
  std::mutex mu_;
  // Held while callbacks run, so Unwatch can wait them out.
  std::mutex callback_mu_;
  std::map<uint64_t, Entry> entries_;
  // Which entry owns each registered descriptor: a closed descriptor leaves
  // the epoll set by itself, and its number may come back for a new socket.
  std::map<int, uint64_t> fd_owner_;
  uint64_t next_id_ = 1;
  int epoll_fd_ = -1;
  // Wakes the thread for shutdown (epoll data 0; entry ids start at 1).
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_DISCONNECT_WATCHER_H_
