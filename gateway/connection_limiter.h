// A cap on open client connections, and which ones give way when it is
// reached. Every connection holds a thread (cpp-httplib's model), so a client
// trickling header bytes (slowloris) must not hold one at the expense of
// real requests: at the cap, the connection that has waited longest without
// a complete request head is shut down to make room; only when every
// connection is busy with a request is the newcomer refused.
#ifndef TPSERVE_GATEWAY_CONNECTION_LIMITER_H_
#define TPSERVE_GATEWAY_CONNECTION_LIMITER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace tpserve::gateway {

class ConnectionLimiter {
 public:
  // Answers a peer's half-close while a request is being handled (see
  // HttpConnection::ProbeHalfClosed); true: the client may still be reading.
  using HalfCloseProbe = std::function<bool()>;

  explicit ConnectionLimiter(int max_connections);

  // Registers the connection on `fd`, waiting for its first request. At the
  // cap, the longest-waiting connection is shut down (its thread sees EOF)
  // to make room. Returns an id for the other calls, or 0 when every
  // connection is busy with a request (the caller refuses this one).
  uint64_t Admit(int fd, HalfCloseProbe probe);
  // Waiting: no complete request head yet (or idle between keep-alive
  // requests); such a connection may be shut down to make room. Busy:
  // reading a body, handling a request or writing its response.
  void SetWaiting(uint64_t id, bool waiting);
  // Forgets the connection; call before closing its descriptor.
  void Release(uint64_t id);
  // The probe of the connection on `fd` (false when none is registered,
  // e.g. it closed meanwhile). Runs under the registry lock, so the
  // connection cannot be released while it runs.
  bool ProbeHalfClosed(int fd);
  // Shuts every connection down (server stop): blocked reads return EOF.
  void ShutdownAll();

  int open() const;
  int max_connections() const { return max_connections_; }

 private:
  struct Entry {
    int fd = -1;
    bool waiting = true;
    // When the connection last started waiting; the oldest goes first.
    std::chrono::steady_clock::time_point since;
    HalfCloseProbe probe;
  };

  const int max_connections_;
  mutable std::mutex mu_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 1;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_CONNECTION_LIMITER_H_
