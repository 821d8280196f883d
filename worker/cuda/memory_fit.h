// Whether a model fits the GPUs it is given, and what to change when it does
// not: this rank's weights against the card's memory before loading, and the
// KV cache budget after profiling. Pure arithmetic, so the 24, 48 and 80 GB
// cases are tested without those cards.
#ifndef TPSERVE_WORKER_CUDA_MEMORY_FIT_H_
#define TPSERVE_WORKER_CUDA_MEMORY_FIT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/model/model_config.h"
#include "worker/cuda/cuda_weights.h"
#include "worker/cuda/kv_cache_dtype.h"

namespace tpserve::worker::cuda {

// Bytes of weights `part`'s rank holds in `quant`'s format: what
// LoadSafetensorsWeights and MakeDummyWeights allocate.
int64_t RankWeightBytes(const ModelConfig& config, const Partition& part, WeightQuant quant = WeightQuant::kNone);

// Bytes of one KV block on `part`'s rank: K and V of `block_size` tokens in
// every layer, at KvCacheElementBytes(dtype) per element (an FP8 cache holds
// twice the blocks of a bf16 one in the same memory).
int64_t KvBlockBytes(const ModelConfig& config, const Partition& part, int block_size, KvCacheDtype dtype);

// The GPU a rank runs on.
struct GpuMemory {
  std::string name;
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
};

// Before loading: RESOURCE_EXHAUSTED when this rank's weights do not fit in
// the GPU's free memory, naming the per-GPU weights at the tensor-parallel
// sizes the model divides into and the flags that would help.
absl::Status CheckWeightsFit(const ModelConfig& config, const Partition& part, const GpuMemory& gpu,
                             WeightQuant quant = WeightQuant::kNone);

// What ProfileMemory measured on one rank.
struct MemoryPlan {
  int64_t total_bytes = 0;      // the card's memory
  int64_t used_bytes = 0;       // after a worst-case step: weights, activations, CUDA/cuBLAS/NCCL
  int64_t weight_bytes = 0;
  int64_t bytes_per_block = 0;  // K and V of one block, all layers
  double fraction = 0.9;        // --gpu-memory-utilization
  int block_size = 16;
  int max_model_len = 0;
  int max_num_batched_tokens = 0;
  WeightQuant quant = WeightQuant::kNone;  // for the per-size weights in messages
};

// Bytes left for the KV cache: total * fraction - used (may be negative).
double KvCacheBudget(const MemoryPlan& plan);
// KV blocks that fit the budget (0 when none).
int KvCacheBlocks(const MemoryPlan& plan);

// After profiling: RESOURCE_EXHAUSTED when the weights alone exceed the
// fraction of the card, or the KV cache cannot hold one max_model_len
// sequence, naming the flags that would help (--tensor-parallel-size,
// --gpu-memory-utilization, --max-model-len, --max-num-batched-tokens).
absl::Status CheckKvCacheFits(const ModelConfig& config, int world_size, const MemoryPlan& plan);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_MEMORY_FIT_H_
