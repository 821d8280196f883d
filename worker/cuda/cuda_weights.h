// One rank's weights on the device, Megatron-partitioned: q/k/v fused
// (with biases) and gate/up fused, split by output rows; o_proj and
// down_proj split by input columns; embedding and lm_head split by
// vocabulary. bf16, or with `--quantization fp8` the four linear weights of
// every layer in FP8 E4M3 with one scale per output row (quantized from
// bf16 as each layer loads; embedding, lm_head, norms and biases stay bf16).
#ifndef TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_H_
#define TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_H_

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "worker/cuda/device_buffer.h"

namespace tpserve::worker::cuda {

// How the model divides across `world_size` ranks, seen from `rank`.
struct Partition {
  int rank = 0, world_size = 1;
  int num_heads = 0;        // query heads on this rank
  int num_kv_heads = 0;     // KV heads on this rank (1 when replicated)
  int first_head = 0;       // first query head of this rank
  int first_kv_head = 0;    // first KV head of this rank
  int intermediate = 0;     // MLP columns on this rank
  int shard_vocab = 0;      // vocabulary rows per rank (the last may hold fewer)
  int vocab_start = 0;      // first id of this rank's vocabulary slice
  int local_vocab = 0;      // ids held here
};

// Checks that `config` divides across `world_size` ranks and returns
// `rank`'s share; INVALID_ARGUMENT naming the dimension otherwise.
absl::StatusOr<Partition> MakePartition(const ModelConfig& config, int rank, int world_size);

// How the linear layers' weights are stored.
enum class WeightQuant {
  kNone,  // bf16
  kFp8,   // E4M3, one float scale per output row
};

// A linear layer's weight [n, k]: bf16, or E4M3 with `scale` [n].
struct LinearWeight {
  DeviceBuffer data;
  DeviceBuffer scale;  // empty for bf16
  bool fp8() const { return scale.data() != nullptr; }
};

// One decoder layer's weights on this rank.
struct LayerWeights {
  DeviceBuffer input_norm, post_norm;  // [hidden]
  LinearWeight qkv;                    // [(nh + 2 nkv) * d, hidden]
  DeviceBuffer qkv_bias;               // [(nh + 2 nkv) * d]
  LinearWeight o_proj;                 // [hidden, nh * d]
  LinearWeight gate_up;                // [2 * inter, hidden]
  LinearWeight down;                   // [hidden, inter]
};

// The whole rank's weights.
struct ModelWeights {
  DeviceBuffer embed;    // [local_vocab, hidden]
  DeviceBuffer lm_head;  // [shard_vocab, hidden], rows past local_vocab zero
  DeviceBuffer final_norm;
  std::vector<LayerWeights> layers;
  int64_t bytes = 0;
};

// Reads this rank's slices from the safetensors checkpoint in `dir` straight
// from the mapped files to the device (bf16 as is; f16/f32 converted).
absl::StatusOr<ModelWeights> LoadSafetensorsWeights(const std::string& dir, const ModelConfig& config,
                                                    const Partition& part,
                                                    WeightQuant quant = WeightQuant::kNone);

// Seeded random weights generated on the device (uniform with the std of
// HF's initializer, norms at 1), for benchmarks at real sizes.
absl::StatusOr<ModelWeights> MakeDummyWeights(const ModelConfig& config, const Partition& part,
                                              uint64_t seed, WeightQuant quant = WeightQuant::kNone);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_H_
