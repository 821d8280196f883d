// NCCL communicator for GPU ranks (one GPU per worker process). Init is
// non-blocking (ncclConfig_t.blocking = 0) and polled against a deadline, so
// a rank that never joins gives DEADLINE_EXCEEDED (and ncclCommAbort) instead
// of a hang. NVLink SHARP (NVLS) is left to the environment
// (NCCL_NVLS_ENABLE): clusters with the fabric manager and IMEX use it, hosts
// without them (the development GPU machines) must export 0.
#ifndef TPSERVE_WORKER_COMM_NCCL_COMMUNICATOR_H_
#define TPSERVE_WORKER_COMM_NCCL_COMMUNICATOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/comm/comm_factory.h"
#include "worker/comm/communicator.h"

namespace tpserve::worker {

// Number of CUDA devices this process sees (0 when there is no driver or
// device).
int VisibleCudaDevices();

class NcclCommunicator;

// All-gathers `bytes` bytes of host memory per rank into `recv` (world_size *
// bytes, rank-major) through `comm`'s device, waiting at most `timeout`.
absl::Status NcclAllGatherHost(NcclCommunicator& comm, const void* send, void* recv, size_t bytes,
                               absl::Duration timeout);

// Collectives over NCCL on device buffers (see the file comment).
class NcclCommunicator : public Communicator {
 public:
  // ncclGetUniqueId as bytes (rank 0).
  static absl::StatusOr<std::string> CreateUniqueId();
  // Joins the group on CUDA device `device`, waiting at most `timeout` for
  // the other ranks.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      int rank, int world_size, const std::string& unique_id, int device,
      absl::Duration timeout);
  ~NcclCommunicator() override;

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

  // Waits for `stream` (cudaStream_t) to drain, polling NCCL's async error;
  // on timeout aborts the communicator and returns DEADLINE_EXCEEDED. Use it
  // instead of cudaStreamSynchronize after collectives so a dead peer cannot
  // hang the caller.
  absl::Status Synchronize(void* stream, absl::Duration timeout);
  // The CUDA device the communicator was created on.
  int device() const { return device_; }
  // Adds `check` to Health(): a failure it reports (e.g. the custom
  // all-reduce's timed-out wait) makes Health() fail with its status.
  void AddHealthCheck(std::function<absl::Status()> check);

 private:
  struct Impl;
  NcclCommunicator(int rank, int world_size, int device);
  // Polls until the last non-blocking NCCL call completed.
  absl::Status WaitIdle(absl::Time deadline, const char* what);
  // Turns an NCCL result into a status, recording failures.
  absl::Status Check(int result, const char* what);

  const int rank_;
  const int world_size_;
  const int device_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;
  absl::Status failure_;  // guarded by mu_
  std::vector<std::function<absl::Status()>> health_checks_;  // guarded by mu_
};

// CommFactory for NCCL. A rank uses CUDA device rank % VisibleCudaDevices()
// (one device per process when CUDA_VISIBLE_DEVICES is set per worker; rank
// i on GPU i when every worker sees all GPUs of the host).
class NcclCommFactory : public CommFactory {
 public:
  // `op_timeout` bounds AllGatherHost's wait.
  explicit NcclCommFactory(absl::Duration op_timeout) : op_timeout_(op_timeout) {}
  // The device the last Join used (0 before any).
  int device() const { return device_; }

  absl::StatusOr<std::string> CreateUniqueId() override;
  absl::StatusOr<std::unique_ptr<Communicator>> Join(
      int rank, int world_size, const std::string& unique_id,
      absl::Duration timeout) override;
  absl::Status AllGatherHost(Communicator& comm, const void* send, void* recv,
                             size_t bytes) override;

 private:
  int device_ = 0;
  absl::Duration op_timeout_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_NCCL_COMMUNICATOR_H_
