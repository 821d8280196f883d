#include "worker/model/cpu_weights.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/model_tensors.h"
#include "common/model/tensor_parallel.h"
#include "common/status_macros.h"

namespace tpserve::worker {

absl::StatusOr<TpPlan> MakeTpPlan(const ModelConfig& c, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is not in [0, world_size ", world_size, ")"));
  }
  TP_RETURN_IF_ERROR(CheckTensorParallel(c, world_size));
  // The CPU backend also splits the vocabulary evenly (the CUDA one pads).
  if (c.vocab_size % world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", world_size,
                                                   " does not divide vocab_size (", c.vocab_size,
                                                   ") on the CPU backend"));
  }
  const HeadSplit split = SplitHeads(c, rank, world_size);
  TpPlan p;
  p.rank = rank;
  p.world_size = world_size;
  p.num_heads = split.num_heads;
  p.head_begin = split.first_head;
  p.num_kv_heads = split.num_kv_heads;
  p.kv_head_begin = split.first_kv_head;
  p.intermediate = split.intermediate;
  p.inter_begin = rank * p.intermediate;
  p.vocab = c.vocab_size / world_size;
  p.vocab_begin = rank * p.vocab;
  p.group_size = c.num_attention_heads / c.num_key_value_heads;
  return p;
}

int64_t CpuWeights::bytes() const {
  int64_t n = embed.size() + norm.size() + lm_head.size();
  for (const auto& l : layers) {
    n += l.input_norm.size() + l.post_norm.size() + l.q_w.size() + l.k_w.size() + l.v_w.size() +
         l.q_b.size() + l.k_b.size() + l.v_b.size() + l.o_w.size() + l.gate_w.size() +
         l.up_w.size() + l.down_w.size();
  }
  return n * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<CpuWeights> LoadCpuWeights(const ModelConfig& c, const TpPlan& p,
                                          const WeightSource& src) {
  const int64_t h = c.hidden_size, hd = c.head_dim;
  const int64_t q = int64_t{c.num_attention_heads} * hd;
  const int64_t kv = int64_t{c.num_key_value_heads} * hd;
  const int64_t inter = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q0 = p.head_begin * hd, q1 = q0 + p.num_heads * hd;
  const int64_t kv0 = p.kv_head_begin * hd, kv1 = kv0 + p.num_kv_heads * hd;
  const int64_t i0 = p.inter_begin, i1 = i0 + p.intermediate;
  const int64_t v0 = p.vocab_begin, v1 = v0 + p.vocab;

  CpuWeights w;
  TP_ASSIGN_OR_RETURN(w.embed, src.Rows("model.embed_tokens.weight", {vocab, h}, v0, v1));
  TP_ASSIGN_OR_RETURN(w.norm, src.Rows("model.norm.weight", {h}, 0, h));
  if (!c.tie_word_embeddings) {
    TP_ASSIGN_OR_RETURN(w.lm_head, src.Rows("lm_head.weight", {vocab, h}, v0, v1));
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [l](const char* suffix) { return LayerTensorName(l, suffix); };
    CpuLayerWeights lw;
    TP_ASSIGN_OR_RETURN(lw.input_norm, src.Rows(name("input_layernorm.weight"), {h}, 0, h));
    TP_ASSIGN_OR_RETURN(lw.post_norm,
                        src.Rows(name("post_attention_layernorm.weight"), {h}, 0, h));
    TP_ASSIGN_OR_RETURN(lw.q_w, src.Rows(name("self_attn.q_proj.weight"), {q, h}, q0, q1));
    TP_ASSIGN_OR_RETURN(lw.k_w, src.Rows(name("self_attn.k_proj.weight"), {kv, h}, kv0, kv1));
    TP_ASSIGN_OR_RETURN(lw.v_w, src.Rows(name("self_attn.v_proj.weight"), {kv, h}, kv0, kv1));
    if (c.attention_bias) {
      TP_ASSIGN_OR_RETURN(lw.q_b, src.Rows(name("self_attn.q_proj.bias"), {q}, q0, q1));
      TP_ASSIGN_OR_RETURN(lw.k_b, src.Rows(name("self_attn.k_proj.bias"), {kv}, kv0, kv1));
      TP_ASSIGN_OR_RETURN(lw.v_b, src.Rows(name("self_attn.v_proj.bias"), {kv}, kv0, kv1));
    }
    TP_ASSIGN_OR_RETURN(lw.o_w, src.Columns(name("self_attn.o_proj.weight"), {h, q}, q0, q1));
    TP_ASSIGN_OR_RETURN(lw.gate_w, src.Rows(name("mlp.gate_proj.weight"), {inter, h}, i0, i1));
    TP_ASSIGN_OR_RETURN(lw.up_w, src.Rows(name("mlp.up_proj.weight"), {inter, h}, i0, i1));
    TP_ASSIGN_OR_RETURN(lw.down_w, src.Columns(name("mlp.down_proj.weight"), {h, inter}, i0, i1));
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace tpserve::worker
