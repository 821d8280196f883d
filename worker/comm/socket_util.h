// Small blocking-with-deadline TCP helpers for the CPU communicator. Every
// wait is bounded by an absolute deadline and can be interrupted through an
// "abort" file descriptor (an eventfd), so no call can hang forever.
#ifndef TPSERVE_WORKER_COMM_SOCKET_UTIL_H_
#define TPSERVE_WORKER_COMM_SOCKET_UTIL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tpserve::worker {

// Owns one file descriptor; closes it on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  // The raw descriptor (-1 when empty).
  int get() const { return fd_; }
  // Whether a descriptor is held.
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release();
  // Closes the descriptor now.
  void reset();

 private:
  int fd_ = -1;
};

// Listens on 127.0.0.1 with a kernel-chosen port; returns the socket and
// stores the port in `*port`.
absl::StatusOr<Fd> ListenLoopback(int* port);

// Connects to host:port, retrying refused connections until `deadline` (the
// peer may not be listening yet). `what` names the peer in errors.
absl::StatusOr<Fd> ConnectWithRetry(const std::string& host, int port,
                                    absl::Time deadline, int abort_fd,
                                    const std::string& what);

// Accepts one connection on `listen_fd` before `deadline`.
absl::StatusOr<Fd> AcceptBefore(int listen_fd, absl::Time deadline,
                                int abort_fd, const std::string& what);

// Sends exactly `n` bytes. A closed peer gives UNAVAILABLE, the deadline
// DEADLINE_EXCEEDED; `what` names the peer in messages.
absl::Status SendAll(int fd, const void* data, size_t n, absl::Time deadline,
                     int abort_fd, const std::string& what);

// Receives exactly `n` bytes, with the same error rules as SendAll.
absl::Status RecvAll(int fd, void* data, size_t n, absl::Time deadline,
                     int abort_fd, const std::string& what);

// Puts the socket in non-blocking mode and disables Nagle's algorithm
// (collectives send small frames whose latency matters).
absl::Status TuneSocket(int fd);

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll().
int PollTimeoutMs(absl::Time deadline);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_SOCKET_UTIL_H_
