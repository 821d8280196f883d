// A custom all-reduce for the small and medium float32 messages of decode
// steps, faster than NCCL's on one host with NVLink: every rank allocates one
// buffer, the ranks map each other's (CUDA IPC across processes, peer access
// within one), and kernels push data and epoch flags straight into peers'
// memory (worker/cuda/allreduce.cu). Set up once, so a CUDA graph can
// capture the calls. Used only when every pair of ranks is peer-accessible;
// NCCL carries everything else. TPSERVE_CUSTOM_ALLREDUCE=0 turns it off.
#ifndef TPSERVE_WORKER_COMM_CUSTOM_ALLREDUCE_H_
#define TPSERVE_WORKER_COMM_CUSTOM_ALLREDUCE_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/cuda/allreduce.h"

namespace tpserve::worker {

// False when TPSERVE_CUSTOM_ALLREDUCE=0 is set.
bool CustomAllReduceEnabled();

// One rank's share of the custom all-reduce (see the file comment).
class CustomAllReduce {
 public:
  struct Options {
    // Largest message (bytes) it carries; larger ones go to NCCL.
    size_t max_bytes = 8 << 20;
    // One-shot up to this many bytes, two-shot above; 0: by world size.
    size_t one_shot_max_bytes = 0;
    // A kernel waiting longer than this for a peer gives up and the group
    // turns UNAVAILABLE (a dead or stuck peer, never a hang).
    absl::Duration timeout = absl::Seconds(30);
  };

  // The default one-shot limit: one-shot sends world - 1 copies of the
  // message per rank, two-shot 2 (world - 1) / world but waits twice. At
  // TP=2 on H200s fused one-shot won up to 64 rows of 8192 (2 MiB) and tied
  // two-shot at 128 (docs/performance.md); TP > 2 is not measured yet.
  static size_t DefaultOneShotMaxBytes(int world) { return world == 2 ? size_t{2} << 20 : size_t{256} << 10; }

  // Collective over `comm` (every rank calls it with the same options).
  // Null when the custom path cannot serve this group (disabled, world size
  // 1 or over 8, or a pair of ranks without peer access); then the caller
  // keeps using NCCL.
  static absl::StatusOr<std::unique_ptr<CustomAllReduce>> Create(NcclCommunicator& comm, const Options& options);
  ~CustomAllReduce();
  CustomAllReduce(const CustomAllReduce&) = delete;
  CustomAllReduce& operator=(const CustomAllReduce&) = delete;

  // Whether it carries an all-reduce of `count` float32 values.
  bool Supports(size_t count) const { return Choose(count).ok(); }
  // Whether it carries the fused form for `rows` x `hidden`.
  bool SupportsFused(int rows, int hidden) const {
    return hidden % 8 == 0 && hidden <= cuda::kMaxFusedHidden && Supports(static_cast<size_t>(rows) * hidden);
  }
  // The algorithm it uses for `count` values.
  absl::StatusOr<cuda::AllReduceAlgo> Choose(size_t count) const;

  // out = the sum of every rank's `in` (in == out allowed), on `stream`.
  absl::Status AllReduce(const float* in, float* out, size_t count, cudaStream_t stream);
  absl::Status AllReduce(const float* in, float* out, size_t count, cuda::AllReduceAlgo algo, cudaStream_t stream);
  // The sum of every rank's `in` ([rows, hidden]) added to `residual` (each
  // value rounded to bf16 first), then out = RMSNorm(residual) * weight;
  // `in` is left as it was. Equals AllReduce + AddRmsNorm (norm.h).
  absl::Status AllReduceAddRmsNorm(const float* in, __nv_bfloat16* residual, const __nv_bfloat16* weight,
                                   __nv_bfloat16* out, int rows, int hidden, float eps, cudaStream_t stream);
  absl::Status AllReduceAddRmsNorm(const float* in, __nv_bfloat16* residual, const __nv_bfloat16* weight,
                                   __nv_bfloat16* out, int rows, int hidden, float eps, cuda::AllReduceAlgo algo,
                                   cudaStream_t stream);

  // OK, or UNAVAILABLE naming the rank a kernel gave up waiting for (the
  // group is dead from then on: later calls fail at once).
  absl::Status Health() const;
  int rank() const { return group_.rank; }
  int world_size() const { return group_.world; }

 private:
  struct ErrorWord;
  CustomAllReduce() = default;

  cuda::AllReduceGroup group_;
  size_t one_shot_max_bytes_ = 0;
  absl::Duration timeout_;
  void* own_buffer_ = nullptr;
  std::vector<void*> opened_;  // peers' buffers mapped with cudaIpcOpenMemHandle
  // Shared with the communicator's health check, which may outlive this.
  std::shared_ptr<ErrorWord> error_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_COMM_CUSTOM_ALLREDUCE_H_
