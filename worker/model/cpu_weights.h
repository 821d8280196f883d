// One tensor-parallel rank's float32 weights (Megatron split) and the plan
// that decides which slice a rank holds. The plan is backend-independent, so
// the CUDA backend can slice the same way.
#ifndef TPSERVE_WORKER_MODEL_CPU_WEIGHTS_H_
#define TPSERVE_WORKER_MODEL_CPU_WEIGHTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "worker/model/weight_source.h"

namespace tpserve::worker {

// Which part of the model rank `rank` of `world_size` holds.
struct TpPlan {
  int rank = 0;
  int world_size = 1;
  // Query heads [head_begin, head_begin + num_heads).
  int head_begin = 0;
  int num_heads = 0;
  // KV heads [kv_head_begin, kv_head_begin + num_kv_heads); one replicated
  // head when world_size > num_key_value_heads.
  int kv_head_begin = 0;
  int num_kv_heads = 0;
  // MLP rows [inter_begin, inter_begin + intermediate).
  int inter_begin = 0;
  int intermediate = 0;
  // Vocabulary rows [vocab_begin, vocab_begin + vocab).
  int vocab_begin = 0;
  int vocab = 0;
  // Query heads per KV head (GQA group size).
  int group_size = 1;
};

// The split of `config` over `world_size` ranks. Fails (naming the numbers)
// unless world_size divides the attention heads, the intermediate size and the
// vocabulary, and either divides or is a multiple of the KV heads.
absl::StatusOr<TpPlan> MakeTpPlan(const ModelConfig& config, int rank, int world_size);

// One decoder layer's slice, float32, PyTorch [out, in] layout.
struct CpuLayerWeights {
  std::vector<float> input_norm, post_norm;             // [hidden]
  std::vector<float> q_w, k_w, v_w;                     // column-parallel rows
  std::vector<float> q_b, k_b, v_b;                     // empty without bias
  std::vector<float> o_w;                               // [hidden, local q*hd]
  std::vector<float> gate_w, up_w;                      // [local inter, hidden]
  std::vector<float> down_w;                            // [hidden, local inter]
  // The FP8 KV cache's scales (common/quant/kv_scales.h); 1.0 unless the
  // checkpoint has them and the cache is FP8.
  float k_scale = 1.0f, v_scale = 1.0f;
};

// A rank's whole model.
struct CpuWeights {
  std::vector<float> embed;  // [local vocab, hidden]
  std::vector<CpuLayerWeights> layers;
  std::vector<float> norm;     // [hidden]
  std::vector<float> lm_head;  // [local vocab, hidden]; empty when tied
  // Bytes held (float32).
  int64_t bytes() const;
  // The lm_head rows to use (the embedding when tied).
  const float* lm_head_data() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

// Reads `plan`'s slice of every tensor from `source`, checking each full shape
// against `config`.
absl::StatusOr<CpuWeights> LoadCpuWeights(const ModelConfig& config, const TpPlan& plan,
                                          const WeightSource& source);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_CPU_WEIGHTS_H_
