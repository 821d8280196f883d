// Collective operations between the tensor-parallel ranks of one worker
// group. Two implementations: NCCL (device buffers, on a CUDA stream) and a
// host one for CPU ranks on one machine (so TP runs in every CI build).
#ifndef TPSERVE_WORKER_COMM_COMMUNICATOR_H_
#define TPSERVE_WORKER_COMM_COMMUNICATOR_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace tpserve::worker {

// Element types a collective can carry.
enum class CommDType { kFloat32, kBFloat16, kFloat16, kInt32 };

// Bytes of one element of `dtype`.
inline size_t CommDTypeSize(CommDType dtype) {
  switch (dtype) {
    case CommDType::kFloat32:
    case CommDType::kInt32:
      return 4;
    case CommDType::kBFloat16:
    case CommDType::kFloat16:
      return 2;
  }
  return 0;
}

// One rank's handle on the group. All calls are collective: every rank must
// make the same calls in the same order. Buffers are device pointers for NCCL
// and host pointers for the CPU communicator; `stream` is a cudaStream_t for
// NCCL and ignored on CPU. A failed or timed-out peer yields UNAVAILABLE (or
// DEADLINE_EXCEEDED), never a hang.
class Communicator {
 public:
  virtual ~Communicator() = default;

  // This process's rank in [0, world_size).
  virtual int rank() const = 0;
  // Number of ranks in the group.
  virtual int world_size() const = 0;

  // In-place element-wise sum of `count` elements across ranks.
  virtual absl::Status AllReduceSum(void* data, size_t count, CommDType dtype,
                                    void* stream) = 0;
  // Gathers `count` elements from every rank into `recv` (world_size * count
  // elements, rank-major).
  virtual absl::Status AllGather(const void* send, void* recv, size_t count,
                                 CommDType dtype, void* stream) = 0;
  // Copies `count` elements from `root` to every rank, in place.
  virtual absl::Status Broadcast(void* data, size_t count, CommDType dtype,
                                 int root, void* stream) = 0;
  // Tears the communicator down so blocked peers return; later calls fail.
  virtual void Abort(const std::string& reason) = 0;
  // OK while every peer is reachable; otherwise says which one is lost.
  virtual absl::Status Health() const = 0;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_COMMUNICATOR_H_
