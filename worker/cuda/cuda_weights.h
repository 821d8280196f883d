// One rank's weights on the device, Megatron-partitioned: q/k/v fused
// (with biases) and gate/up fused, split by output rows; o_proj and
// down_proj split by input columns; embedding and lm_head split by
// vocabulary. bf16, or with `--quantization fp8` the four linear weights of
// every layer in FP8 E4M3 with one scale per output row (quantized from
// bf16 as each layer loads; embedding, lm_head, norms and biases stay bf16),
// or for AWQ/GPTQ checkpoints packed int4/int8 codes with group scales and
// zero points (worker/cuda/gemv_int.h's layout).
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
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/kv_cache_dtype.h"

namespace tpserve::worker::cuda {

// How the model divides across `world_size` ranks, seen from `rank`.
struct Partition {
  int rank = 0, world_size = 1;
  int num_heads = 0;        // query heads on this rank
  int num_kv_heads = 0;     // KV heads on this rank (1 when replicated)
  int first_head = 0;       // first query head of this rank
  int first_kv_head = 0;    // first KV head of this rank
  int intermediate = 0;     // MLP columns on this rank, padding included
  // AWQ/GPTQ: the intermediate dimension padded to whole groups per rank
  // (common/quant/tp_partition.h): this rank's first checkpoint column and
  // how many of its `intermediate` columns are real (the rest are zeros).
  int intermediate_begin = 0;
  int intermediate_real = 0;
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
  kInt,   // AWQ/GPTQ int4/int8 codes kept packed (layers that cannot be: bf16)
};

// A linear layer's weight [n, k]: bf16; E4M3 with `scale` [n]; or packed
// int4/int8 codes with `scale` and `zero` [n, k / group] and, for act-order
// weights, `perm` [k] (gemv_int.h).
struct LinearWeight {
  DeviceBuffer data;
  DeviceBuffer scale;  // empty for bf16
  DeviceBuffer zero, perm;
  int bits = 0;        // 4 or 8 for packed int weights
  int group = 0;
  bool tiled = false;  // packed codes in gemv_int.h's tiled layout
  bool packed_int() const { return bits != 0; }
  bool fp8() const { return scale.data() != nullptr && !packed_int(); }
  IntWeightView int_view() const {
    return {data.as<uint32_t>(), scale.as<float>(), zero.as<uint16_t>(), perm.as<int32_t>(), bits, group, tiled};
  }
};

// One decoder layer's weights on this rank.
struct LayerWeights {
  DeviceBuffer input_norm, post_norm;  // [hidden]
  LinearWeight qkv;                    // [(nh + 2 nkv) * d, hidden]
  DeviceBuffer qkv_bias;               // [(nh + 2 nkv) * d]
  LinearWeight o_proj;                 // [hidden, nh * d]
  LinearWeight gate_up;                // [2 * inter, hidden]
  LinearWeight down;                   // [hidden, inter]
  // The FP8 KV cache's scales (common/quant/kv_scales.h): the checkpoint's
  // k_scale / v_scale with an FP8 cache, else 1.0.
  float k_scale = 1.0f, v_scale = 1.0f;
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
// from the mapped files to the device (bf16 as is; f16/f32 converted), and
// with an FP8 `kv_cache` every layer's KV cache scales.
absl::StatusOr<ModelWeights> LoadSafetensorsWeights(const std::string& dir, const ModelConfig& config,
                                                    const Partition& part,
                                                    WeightQuant quant = WeightQuant::kNone,
                                                    KvCacheDtype kv_cache = KvCacheDtype::kBf16);

// Seeded random weights generated on the device (uniform with the std of
// HF's initializer, norms at 1), for benchmarks at real sizes. With
// WeightQuant::kInt the linear layers are random packed codes in the format
// of config.quantization (bits, group size) with scales of the same std.
absl::StatusOr<ModelWeights> MakeDummyWeights(const ModelConfig& config, const Partition& part,
                                              uint64_t seed, WeightQuant quant = WeightQuant::kNone);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_H_
