// An in-process Communicator for N ranks running as threads of one test, so
// tensor-parallel code paths run in unit tests without processes or NCCL.
// Test-only: the multi-process CPU communicator lives in worker/comm/.
#ifndef TPSERVE_WORKER_MODEL_TESTING_THREAD_COMMUNICATOR_H_
#define TPSERVE_WORKER_MODEL_TESTING_THREAD_COMMUNICATOR_H_

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "worker/comm/communicator.h"

namespace tpserve::worker::testing {

// State shared by the ranks of one group: a generation-counting barrier and
// one posted buffer per rank.
class ThreadCommGroup {
 public:
  // A group of `world_size` ranks; a collective waiting longer than
  // `timeout` for a peer fails with DEADLINE_EXCEEDED instead of hanging.
  explicit ThreadCommGroup(int world_size,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // One Communicator per rank (index = rank); each is used by one thread.
  std::vector<std::unique_ptr<Communicator>> MakeCommunicators();

  // Number of ranks.
  int world_size() const { return world_size_; }

 private:
  friend class ThreadCommunicator;

  // Blocks until every rank arrived (or abort/timeout).
  absl::Status Barrier();
  void Abort(const std::string& reason);

  const int world_size_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
  std::string abort_reason_;
  std::vector<const void*> posted_;
};

}  // namespace tpserve::worker::testing

#endif  // TPSERVE_WORKER_MODEL_TESTING_THREAD_COMMUNICATOR_H_
