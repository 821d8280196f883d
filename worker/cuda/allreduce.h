// The kernels of the custom all-reduce (worker/comm/custom_allreduce.h sets
// up the shared buffers): float32 sums across the GPUs of one host through
// buffers every rank maps (CUDA IPC or peer access), synchronised by flags
// that carry a per-call epoch, alone or fused with the residual add + RMSNorm
// that follows a row-parallel projection.
#ifndef TPSERVE_WORKER_CUDA_ALLREDUCE_H_
#define TPSERVE_WORKER_CUDA_ALLREDUCE_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

// The layout below is computed by host and device code alike.
#ifdef __CUDACC__
#define TP_ALLREDUCE_HD __host__ __device__
#else
#define TP_ALLREDUCE_HD
#endif

namespace tpserve::worker::cuda {

inline constexpr int kMaxAllReduceRanks = 8;
// Widest row the fused form takes (Qwen2's largest hidden size; a row is
// held in registers).
inline constexpr int kMaxFusedHidden = 8192;
// Blocks of one call (also bounds the flags in a shared buffer).
inline constexpr int kMaxAllReduceBlocks = 64;

// One-shot: every rank pushes its whole input into every peer's buffer,
// which starts filled with a sentinel (0xFFFFFFFF words, a NaN no float
// arithmetic produces), and each rank sums as soon as its peers' values are
// no longer the sentinel: no flags, no fences, one NVLink latency (the
// "Lamport" scheme of TensorRT-LLM's all-reduce). Three slots rotate by
// epoch; each call re-fills the slot the previous call read. Two-shot:
// reduce-scatter then all-gather through flags that carry the epoch (two
// latencies, 2/world of the bytes per rank).
enum class AllReduceAlgo { kOneShot, kTwoShot };

// Where a rank's kernels find everything; fixed for the group's life, so a
// captured CUDA graph replays correctly.
struct AllReduceGroup {
  int rank = 0;
  int world = 0;
  // Every rank's shared buffer as mapped in this process (index = rank);
  // laid out by AllReduceLayout.
  char* buffers[kMaxAllReduceRanks] = {};
  // This rank's private device words (AllReduceState).
  uint32_t* state = nullptr;
  // Host-mapped word the host polls: 0, or 1 + a rank that did not arrive.
  volatile int* host_error = nullptr;
  int64_t timeout_ns = 0;
  size_t one_shot_stride = 0;  // bytes of one source's one-shot region (the one-shot limit)
  size_t max_bytes = 0;        // the two-shot limit
  size_t src_stride = 0;       // bytes of one source's two-shot region (max_bytes / world)
  int blocks = kMaxAllReduceBlocks;  // of every call: at most the device's SMs (co-residency)
};

// Word offsets in AllReduceGroup::state. Every call runs the same number of
// blocks, so each block keeps its own copy of the epoch (and of what to
// re-fill) and no block waits for another to publish them.
struct AllReduceState {
  static constexpr int kEpoch = 0;                          // [block]: the last call's epoch
  static constexpr int kRefill = kMaxAllReduceBlocks;       // [block]: float4s the last one-shot left
  static constexpr int kPartial = 2 * kMaxAllReduceBlocks;  // [block]: a row part's sum of squares
  static constexpr int kPartialFlag = 3 * kMaxAllReduceBlocks;  // [block]: epoch of that sum
  static constexpr int kDead = 4 * kMaxAllReduceBlocks;     // nonzero once a wait timed out
  static constexpr size_t kBytes = (kDead + 1) * sizeof(uint32_t);
};

// Byte offsets inside a shared buffer: flags, [3 slots][world] one-shot
// regions (sentinel-filled), [2 slots][world] two-shot source regions, [2
// slots] two-shot gather regions.
struct AllReduceLayout {
  static constexpr size_t kFlagsBytes = 2 * kMaxAllReduceBlocks * kMaxAllReduceRanks * sizeof(uint32_t);
  TP_ALLREDUCE_HD static size_t OneShotOffset(const AllReduceGroup& g, int slot, int src) {
    return kFlagsBytes + (static_cast<size_t>(slot) * g.world + src) * g.one_shot_stride;
  }
  TP_ALLREDUCE_HD static size_t SrcOffset(const AllReduceGroup& g, int slot, int src) {
    return OneShotOffset(g, 3, 0) + (static_cast<size_t>(slot) * g.world + src) * g.src_stride;
  }
  TP_ALLREDUCE_HD static size_t GatherOffset(const AllReduceGroup& g, int slot) {
    return SrcOffset(g, 2, 0) + static_cast<size_t>(slot) * g.max_bytes;
  }
  TP_ALLREDUCE_HD static size_t TotalBytes(const AllReduceGroup& g) { return GatherOffset(g, 2); }
};

// out = sum over ranks of `in` (`count` float32; in == out allowed).
// Every rank makes the same calls with the same `count` and algorithm.
// count % 4 == 0; one-shot needs count * 4 <= one_shot_stride, two-shot
// count % (4 * world) == 0 and count * 4 <= max_bytes.
absl::Status LaunchAllReduce(const AllReduceGroup& group, AllReduceAlgo algo, const float* in, float* out,
                             size_t count, cudaStream_t stream);

// The sum of `in` ([rows, hidden] float32 partials) across ranks, each value
// rounded to bf16, added to `residual`; then out = RMSNorm(residual) *
// weight: exactly LaunchAllReduce followed by AddRmsNorm(const float*, ...)
// (norm.h), in one kernel. `in` is left as it was. hidden % 8 == 0 and
// hidden <= kMaxFusedHidden.
absl::Status LaunchAllReduceAddRmsNorm(const AllReduceGroup& group, AllReduceAlgo algo, const float* in,
                                       __nv_bfloat16* residual, const __nv_bfloat16* weight,
                                       __nv_bfloat16* out, int rows, int hidden, float eps, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ALLREDUCE_H_
