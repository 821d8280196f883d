// The Qwen2/Llama forward pass in float32 over one rank's weight slice and KV
// cache: a ragged batch of prefill chunks and decodes, paged attention through
// block tables, Megatron tensor parallelism through a Communicator.
#ifndef TPSERVE_WORKER_MODEL_CPU_MODEL_H_
#define TPSERVE_WORKER_MODEL_CPU_MODEL_H_

#include <cstdint>
#include <span>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "common/model/rope.h"
#include "worker/comm/communicator.h"
#include "worker/backend/backend.h"
#include "worker/model/cpu_weights.h"

namespace tpserve::worker {

// One rank's model: weights, plan and paged KV cache.
class CpuModel {
 public:
  // `comm` may be null when plan.world_size is 1; not owned. `fp8_kv`
  // (--kv-cache-dtype fp8): every K/V value x is stored as
  // E4M3(x / scale) * scale with the layer's weights k_scale / v_scale, so
  // attention reads what the GPU's FP8 cache holds; the cache stays float32
  // (bytes_per_block unchanged).
  CpuModel(ModelConfig config, TpPlan plan, CpuWeights weights, Communicator* comm,
           int block_size, bool fp8_kv = false);

  // Bytes of one KV block on this rank (K and V, all layers).
  int64_t bytes_per_block() const;
  // Allocates `num_blocks` blocks (zeroed); RESOURCE_EXHAUSTED if it cannot.
  absl::Status AllocateCache(int num_blocks);
  // Blocks allocated (0 before AllocateCache).
  int num_blocks() const { return num_blocks_; }
  // The weights held.
  const CpuWeights& weights() const { return weights_; }

  // Runs the batch (already validated by the caller), writing every scheduled
  // position's K/V into the cache, and returns full-vocabulary logits for the
  // last scheduled position of each sequence whose index is in `logit_seqs`
  // (in that order): a row-major [logit_seqs.size(), vocab] view into a
  // buffer reused by the next call (reuse avoids faulting in fresh pages for
  // a 150k-vocabulary row on every step).
  absl::StatusOr<std::span<const float>> Forward(const StepBatch& batch,
                                                 const std::vector<int>& logit_seqs);

 private:
  // One scheduled token of the flattened batch.
  struct Token {
    int seq;
    int32_t id;
    int64_t position;
    int64_t slot;
  };

  absl::Status AllReduce(std::vector<float>& x);
  void Attention(const StepBatch& batch, const std::vector<Token>& tokens, int layer,
                 const float* q, float* out) const;

  const ModelConfig config_;
  const TpPlan plan_;
  const CpuWeights weights_;
  const RopeTable rope_;
  Communicator* const comm_;
  const int block_size_;
  const bool fp8_kv_;
  int num_blocks_ = 0;
  // Per layer: [num_blocks * block_size, local kv heads * head_dim].
  // One uninitialised buffer per layer: [num_blocks][block_size][kv_heads][head_dim].
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;
  // Scratch reused across steps (fresh multi-MB vectors per step spend more
  // time faulting in pages than computing): activations, this rank's logits
  // slice, all ranks' slices, and the assembled [rows, vocab] logits.
  struct Scratch {
    std::vector<float> x, h, q, k, v, attn, proj, gate, up;
  } scratch_;
  std::vector<float> local_logits_, gathered_logits_, logits_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_CPU_MODEL_H_
