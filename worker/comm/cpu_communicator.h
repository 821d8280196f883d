// The communicator for CPU ranks that are separate processes on one host:
// a full mesh of TCP connections on loopback. Every collective exchanges
// whole buffers with every peer and reduces in rank order, so all ranks end
// with bit-identical results. Every wait is bounded, a closed peer socket is
// reported at once (and by Health()), and Abort() wakes a blocked call.
//
// Rendezvous: rank 0's CpuRendezvous listens on 127.0.0.1 and its id
// ("tpcpu1:127.0.0.1:<port>:<token>") goes to every rank; ranks >= 1 connect
// to it, receive the listening ports of the others, and connect pairwise.
#ifndef TPSERVE_WORKER_COMM_CPU_COMMUNICATOR_H_
#define TPSERVE_WORKER_COMM_CPU_COMMUNICATOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/comm/communicator.h"
#include "worker/comm/socket_util.h"

namespace tpserve::worker {

// Rank 0's listening end of the rendezvous, made by the CreateUniqueId RPC
// and consumed by rank 0's own InitDistributed.
class CpuRendezvous {
 public:
  // Opens the listener and draws a random token.
  static absl::StatusOr<std::unique_ptr<CpuRendezvous>> Create();
  // The opaque id to hand to every rank.
  const std::string& unique_id() const { return unique_id_; }

 private:
  friend class CpuCommunicator;
  CpuRendezvous() = default;
  Fd listener_;
  std::string unique_id_;
};

// Tunables of the CPU communicator.
struct CpuCommOptions {
  // Longest wait for a peer inside one collective.
  absl::Duration op_timeout = absl::Seconds(120);
};

// Host-memory collectives over loopback TCP (see the file comment).
class CpuCommunicator : public Communicator {
 public:
  // Joins the group. Blocks until all ranks are connected or `timeout`
  // passes. Rank 0 must pass the rendezvous that produced `unique_id`
  // (others pass null).
  static absl::StatusOr<std::unique_ptr<CpuCommunicator>> Create(
      int rank, int world_size, const std::string& unique_id,
      absl::Duration timeout, CpuRendezvous* rendezvous,
      CpuCommOptions options = {});

  ~CpuCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::Status AllReduceSum(void* data, size_t count, CommDType dtype,
                            void* stream) override;
  absl::Status AllGather(const void* send, void* recv, size_t count,
                         CommDType dtype, void* stream) override;
  absl::Status Broadcast(void* data, size_t count, CommDType dtype, int root,
                         void* stream) override;
  void Abort(const std::string& reason) override;
  absl::Status Health() const override;

  // One peer's transfer in a collective (public for the .cc's helpers).
  struct PeerIo;

 private:
  CpuCommunicator(int rank, int world_size, CpuCommOptions options);

  // Sends/receives every PeerIo concurrently (non-blocking, one poll loop),
  // so that large symmetric exchanges cannot deadlock on socket buffers.
  absl::Status Exchange(std::vector<PeerIo>& ios, const char* op_name,
                        uint64_t seq);
  // Checks the communicator is usable and starts a collective.
  absl::Status BeginOp(uint64_t* seq);
  // Records a failure so that every later call (and Health) reports it.
  absl::Status Fail(absl::Status status) const;

  const int rank_;
  const int world_size_;
  const CpuCommOptions options_;
  std::vector<Fd> peers_;  // indexed by rank; own slot empty
  Fd abort_fd_;            // eventfd written by Abort()
  uint64_t next_seq_ = 0;
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;
  mutable absl::Status failure_;  // first failure, guarded by mu_
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_CPU_COMMUNICATOR_H_
