#include "worker/cuda/memory_fit.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve::worker::cuda {
namespace {

// Tensor-parallel sizes one host usually has.
constexpr int kTensorParallelSizes[] = {1, 2, 4, 8};

std::string GiB(double bytes) {
  const int64_t tenths = std::llround(bytes * 10.0 / (1024.0 * 1024.0 * 1024.0));
  return absl::StrCat(tenths / 10, ".", tenths % 10, " GiB");
}

// Rank 0's weights at tensor-parallel size `world` (the largest share: the
// last rank's vocabulary slice may be smaller); 0 when the model does not
// divide.
int64_t WeightsAt(const ModelConfig& config, int world, WeightQuant quant) {
  absl::StatusOr<Partition> p = MakePartition(config, 0, world);
  return p.ok() ? RankWeightBytes(config, *p, quant) : 0;
}

// "per-GPU weights at --tensor-parallel-size 1: 135.4 GiB, 2: 67.7 GiB, ...;
// the smallest that fits within 71.4 GiB is 2", for the sizes the model
// divides into.
std::string TensorParallelHint(const ModelConfig& config, double limit_bytes, WeightQuant quant) {
  std::vector<std::string> sizes;
  int smallest = 0;
  for (int world : kTensorParallelSizes) {
    const int64_t w = WeightsAt(config, world, quant);
    if (w == 0) continue;
    sizes.push_back(absl::StrCat(world, ": ", GiB(w)));
    if (smallest == 0 && w < limit_bytes) smallest = world;
  }
  std::string hint = absl::StrCat("per-GPU weights at --tensor-parallel-size ", absl::StrJoin(sizes, ", "));
  if (smallest > 0) {
    absl::StrAppend(&hint, "; the smallest that fits within ", GiB(limit_bytes), " is ", smallest,
                    " (the KV cache and activations need room on top)");
  } else {
    absl::StrAppend(&hint, "; none up to ", kTensorParallelSizes[std::size(kTensorParallelSizes) - 1],
                    " fits within ", GiB(limit_bytes));
  }
  return hint;
}

}  // namespace

int64_t RankWeightBytes(const ModelConfig& c, const Partition& p, WeightQuant quant) {
  const int64_t h = c.hidden_size, d = c.head_dim;
  const int64_t qkv_rows = (int64_t{p.num_heads} + 2 * p.num_kv_heads) * d;
  // The four linear weights: elements and rows (one FP8 scale per row).
  const int64_t linear = qkv_rows * h + h * p.num_heads * d + 2 * int64_t{p.intermediate} * h + h * p.intermediate;
  const int64_t linear_rows = qkv_rows + h + 2 * int64_t{p.intermediate} + h;
  const int64_t layer_bf16 = 2 * h + qkv_rows;  // norms and the q/k/v bias
  int64_t layer_bytes = quant == WeightQuant::kFp8 ? 2 * layer_bf16 + linear + 4 * linear_rows
                                                   : 2 * (layer_bf16 + linear);
  if (quant == WeightQuant::kInt && c.quantization.bits > 0) {
    // Packed codes plus a float scale and a 16-bit zero point per group
    // (per-channel weights are stored in groups of up to 1024; 128 counted).
    const int64_t group = c.quantization.group_size > 0 ? c.quantization.group_size : 128;
    layer_bytes = 2 * layer_bf16 + linear * c.quantization.bits / 8 + linear / group * 6;
  }
  const int64_t other = std::max(1, p.local_vocab) * h + int64_t{p.shard_vocab} * h + h;  // embed, lm_head, norm
  return 2 * other + c.num_hidden_layers * layer_bytes;
}

absl::Status CheckWeightsFit(const ModelConfig& config, const Partition& part, const GpuMemory& gpu,
                             WeightQuant quant) {
  const int64_t weights = RankWeightBytes(config, part, quant);
  if (weights < gpu.free_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the model does not fit: each GPU must hold ", GiB(weights), " of weights at --tensor-parallel-size ",
      part.world_size, ", but ", gpu.name, " has ", GiB(gpu.free_bytes), " free of ", GiB(gpu.total_bytes), "; ",
      TensorParallelHint(config, gpu.free_bytes, quant),
      ". Raise --tensor-parallel-size (or free the GPU); --max-model-len and --gpu-memory-utilization "
      "do not shrink the weights"));
}

int64_t KvBlockBytes(const ModelConfig& config, const Partition& part, int block_size, KvCacheDtype dtype) {
  return int64_t{2} * config.num_hidden_layers * block_size * part.num_kv_heads * config.head_dim *
         KvCacheElementBytes(dtype);
}

double KvCacheBudget(const MemoryPlan& plan) {
  return static_cast<double>(plan.total_bytes) * plan.fraction - static_cast<double>(plan.used_bytes);
}

int KvCacheBlocks(const MemoryPlan& plan) {
  const double budget = KvCacheBudget(plan);
  if (budget <= 0 || plan.bytes_per_block <= 0) return 0;
  return static_cast<int>(std::min(budget / plan.bytes_per_block, 2e9));
}

absl::Status CheckKvCacheFits(const ModelConfig& config, int world_size, const MemoryPlan& plan) {
  const double allowed = static_cast<double>(plan.total_bytes) * plan.fraction;
  if (plan.weight_bytes >= allowed) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the model does not fit: ", GiB(plan.weight_bytes), " of weights per GPU at --tensor-parallel-size ",
        world_size, " exceed --gpu-memory-utilization ", plan.fraction, " of the GPU's ", GiB(plan.total_bytes),
        " (", GiB(allowed), "); ", TensorParallelHint(config, allowed, plan.quant),
        ". Raise --tensor-parallel-size or --gpu-memory-utilization"));
  }
  const int blocks = KvCacheBlocks(plan);
  if (int64_t{blocks} * plan.block_size >= plan.max_model_len) return absl::OkStatus();
  const double budget = KvCacheBudget(plan);
  const int64_t activations = plan.used_bytes - plan.weight_bytes;
  return absl::ResourceExhaustedError(absl::StrCat(
      "not enough GPU memory for one sequence of --max-model-len ", plan.max_model_len, " tokens: the GPU's ",
      GiB(plan.total_bytes), " x --gpu-memory-utilization ", plan.fraction, " leaves ", GiB(std::max(0.0, budget)),
      " for the KV cache after ", GiB(plan.weight_bytes), " of weights and ", GiB(activations),
      " of activations and runtime (profiled at --max-num-batched-tokens ", plan.max_num_batched_tokens,
      "); that is ", blocks, " blocks of ", plan.block_size, " tokens (", plan.bytes_per_block / 1024,
      " KiB each). Lower --max-model-len or --max-num-batched-tokens, raise --gpu-memory-utilization, or raise "
      "--tensor-parallel-size from ", world_size, " (each GPU then holds a smaller share of the weights and of "
      "the KV cache)"));
}

}  // namespace tpserve::worker::cuda
