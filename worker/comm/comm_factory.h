// How the worker service creates a communicator without knowing its kind:
// one factory per kind (CPU sockets, NCCL) covers the unique-id handshake and
// the few host-side collectives the service itself needs.
#ifndef TPSERVE_WORKER_COMM_COMM_FACTORY_H_
#define TPSERVE_WORKER_COMM_COMM_FACTORY_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/comm/communicator.h"
#include "worker/comm/cpu_communicator.h"

namespace tpserve::worker {

// Creates communicators of one kind for one worker process.
class CommFactory {
 public:
  virtual ~CommFactory() = default;

  // Rank 0 only: a fresh id for a new group (keeps what rank 0 needs to
  // accept the others).
  virtual absl::StatusOr<std::string> CreateUniqueId() = 0;
  // Joins the group named by `unique_id`; blocks at most `timeout`.
  virtual absl::StatusOr<std::unique_ptr<Communicator>> Join(
      int rank, int world_size, const std::string& unique_id,
      absl::Duration timeout) = 0;
  // All-gathers `bytes` bytes of host memory per rank into `recv`
  // (world_size * bytes, rank-major), staging through the device if the
  // communicator needs device buffers.
  virtual absl::Status AllGatherHost(Communicator& comm, const void* send,
                                     void* recv, size_t bytes) = 0;
};

// Factory for CpuCommunicator.
class CpuCommFactory : public CommFactory {
 public:
  // `options` apply to every communicator it creates.
  explicit CpuCommFactory(CpuCommOptions options = {}) : options_(options) {}

  absl::StatusOr<std::string> CreateUniqueId() override;
  absl::StatusOr<std::unique_ptr<Communicator>> Join(
      int rank, int world_size, const std::string& unique_id,
      absl::Duration timeout) override;
  absl::Status AllGatherHost(Communicator& comm, const void* send, void* recv,
                             size_t bytes) override;

 private:
  CpuCommOptions options_;
  std::mutex mu_;
  // The latest rendezvous rank 0 created; a newer CreateUniqueId replaces it
  // (the router retrying a failed handshake).
  std::unique_ptr<CpuRendezvous> rendezvous_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_COMM_FACTORY_H_
