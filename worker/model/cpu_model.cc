#include "worker/model/cpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/quant/fp8_e4m3.h"
#include "common/status_macros.h"
#include "worker/model/cpu_ops.h"
#include "worker/model/cpu_parallel.h"

namespace tpserve::worker {
namespace {

std::vector<float>& Resized(std::vector<float>& buffer, int64_t size) {
  buffer.resize(static_cast<size_t>(size));
  return buffer;
}

}  // namespace

CpuModel::CpuModel(ModelConfig config, TpPlan plan, CpuWeights weights, Communicator* comm,
                   int block_size, bool fp8_kv)
    : config_(std::move(config)),
      plan_(plan),
      weights_(std::move(weights)),
      rope_(MakeRopeTable(config_.head_dim, config_.rope_theta, config_.rope_scaling)),
      comm_(comm),
      block_size_(block_size),
      fp8_kv_(fp8_kv) {}

int64_t CpuModel::bytes_per_block() const {
  return int64_t{2} * config_.num_hidden_layers * block_size_ * plan_.num_kv_heads *
         config_.head_dim * static_cast<int64_t>(sizeof(float));
}

absl::Status CpuModel::AllocateCache(int num_blocks) {
  if (num_blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_blocks must be >= 1, got ", num_blocks));
  }
  const size_t per_layer =
      static_cast<size_t>(num_blocks) * block_size_ * plan_.num_kv_heads * config_.head_dim;
  // Left uninitialised on purpose: attention reads only positions a step has
  // written, and touching gigabytes up front made start-up take tens of
  // seconds (pages now fault in as sequences fill them).
  k_cache_.clear();
  v_cache_.clear();
  try {
    for (int l = 0; l < config_.num_hidden_layers; ++l) {
      k_cache_.emplace_back(new float[per_layer]);
      v_cache_.emplace_back(new float[per_layer]);
    }
  } catch (const std::bad_alloc&) {
    k_cache_.clear();
    v_cache_.clear();
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", num_blocks,
                                                     " KV blocks (", bytes_per_block(),
                                                     " bytes each)"));
  }
  num_blocks_ = num_blocks;
  return absl::OkStatus();
}

absl::Status CpuModel::AllReduce(std::vector<float>& x) {
  if (plan_.world_size == 1) return absl::OkStatus();
  return comm_->AllReduceSum(x.data(), x.size(), CommDType::kFloat32, nullptr);
}

void CpuModel::Attention(const StepBatch& batch, const std::vector<Token>& tokens, int layer,
                         const float* q, float* out) const {
  const int hd = config_.head_dim;
  const int nh = plan_.num_heads;
  const int kv_width = plan_.num_kv_heads * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* kc = k_cache_[layer].get();
  const float* vc = v_cache_[layer].get();
  // Cache rows of every position of every sequence, resolved once.
  std::vector<std::vector<int64_t>> slots(batch.seqs.size());
  for (size_t s = 0; s < batch.seqs.size(); ++s) {
    const SeqStep& seq = batch.seqs[s];
    const int64_t ctx = seq.num_computed_tokens + seq.num_scheduled_tokens;
    slots[s].resize(ctx);
    for (int64_t p = 0; p < ctx; ++p) {
      slots[s][p] = int64_t{seq.block_table[p / block_size_]} * block_size_ + p % block_size_;
    }
  }
  // Tokens are independent (each reads the cache, writes its own row).
  cpu::ParallelFor(static_cast<int64_t>(tokens.size()), 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores;
    for (int64_t t = t0; t < t1; ++t) {
      const std::vector<int64_t>& seq_slots = slots[tokens[t].seq];
      const int64_t len = tokens[t].position + 1;  // causal: self and earlier
      scores.resize(len);
      for (int h = 0; h < nh; ++h) {
        const int kvh = (plan_.head_begin + h) / plan_.group_size - plan_.kv_head_begin;
        const float* qh = q + t * nh * hd + static_cast<int64_t>(h) * hd;
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t p = 0; p < len; ++p) {
          scores[p] = cpu::Dot(qh, kc + seq_slots[p] * kv_width + kvh * hd, hd) * scale;
          max = std::max(max, scores[p]);
        }
        float sum = 0;
        for (int64_t p = 0; p < len; ++p) sum += scores[p] = std::exp(scores[p] - max);
        float* o = out + t * nh * hd + static_cast<int64_t>(h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t p = 0; p < len; ++p) {
          const float w = scores[p] / sum;
          const float* vh = vc + seq_slots[p] * kv_width + kvh * hd;
          for (int d = 0; d < hd; ++d) o[d] += w * vh[d];
        }
      }
    }
  });
}

absl::StatusOr<std::span<const float>> CpuModel::Forward(
    const StepBatch& batch, const std::vector<int>& logit_seqs) {
  const int64_t hidden = config_.hidden_size, hd = config_.head_dim;
  const int64_t q_width = int64_t{plan_.num_heads} * hd;
  const int64_t kv_width = int64_t{plan_.num_kv_heads} * hd;
  const int64_t inter = plan_.intermediate;
  const float eps = static_cast<float>(config_.rms_norm_eps);

  std::vector<Token> tokens;
  std::vector<int> seq_start;
  for (size_t s = 0; s < batch.seqs.size(); ++s) {
    const SeqStep& seq = batch.seqs[s];
    seq_start.push_back(static_cast<int>(tokens.size()));
    for (int i = 0; i < seq.num_scheduled_tokens; ++i) {
      const int64_t pos = seq.num_computed_tokens + i;
      const int64_t slot =
          int64_t{seq.block_table[pos / block_size_]} * block_size_ + pos % block_size_;
      tokens.push_back({static_cast<int>(s), seq.token_ids[pos], pos, slot});
    }
  }
  const int64_t n = static_cast<int64_t>(tokens.size());

  // Vocab-parallel embedding: each rank fills the rows it owns, the sum
  // assembles the full lookup.
  std::vector<float>& x = scratch_.x;
  x.assign(n * hidden, 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t local = tokens[t].id - plan_.vocab_begin;
    if (local >= 0 && local < plan_.vocab) {
      std::memcpy(&x[t * hidden], &weights_.embed[local * hidden], hidden * sizeof(float));
    }
  }
  TP_RETURN_IF_ERROR(AllReduce(x));

  // Every element of these is written before it is read.
  std::vector<float>& h = Resized(scratch_.h, n * hidden);
  std::vector<float>& q = Resized(scratch_.q, n * q_width);
  std::vector<float>& k = Resized(scratch_.k, n * kv_width);
  std::vector<float>& v = Resized(scratch_.v, n * kv_width);
  std::vector<float>& attn = Resized(scratch_.attn, n * q_width);
  std::vector<float>& proj = Resized(scratch_.proj, n * hidden);
  std::vector<float>& gate = Resized(scratch_.gate, n * inter);
  std::vector<float>& up = Resized(scratch_.up, n * inter);
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    const CpuLayerWeights& w = weights_.layers[l];
    auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
    cpu::RmsNorm(x.data(), n, hidden, w.input_norm.data(), eps, h.data());
    cpu::Linear(h.data(), n, hidden, w.q_w.data(), bias(w.q_b), q_width, q.data());
    cpu::Linear(h.data(), n, hidden, w.k_w.data(), bias(w.k_b), kv_width, k.data());
    cpu::Linear(h.data(), n, hidden, w.v_w.data(), bias(w.v_b), kv_width, v.data());
    float* kc = k_cache_[l].get();
    float* vc = v_cache_[l].get();
    for (int64_t t = 0; t < n; ++t) {
      cpu::ApplyRope(&q[t * q_width], plan_.num_heads, hd, tokens[t].position,
                     rope_.inv_freq.data(), rope_.attention_factor);
      cpu::ApplyRope(&k[t * kv_width], plan_.num_kv_heads, hd, tokens[t].position,
                     rope_.inv_freq.data(), rope_.attention_factor);
      float* kdst = kc + tokens[t].slot * kv_width;
      float* vdst = vc + tokens[t].slot * kv_width;
      std::memcpy(kdst, &k[t * kv_width], kv_width * sizeof(float));
      std::memcpy(vdst, &v[t * kv_width], kv_width * sizeof(float));
      if (fp8_kv_) {
        // The code of x * (1 / scale), as the GPU's cache write computes it
        // (rope_cache.cu), read back times the scale.
        const float k_inv = 1.0f / w.k_scale, v_inv = 1.0f / w.v_scale;
        for (int64_t e = 0; e < kv_width; ++e) {
          kdst[e] = RoundToFp8E4M3(kdst[e] * k_inv) * w.k_scale;
          vdst[e] = RoundToFp8E4M3(vdst[e] * v_inv) * w.v_scale;
        }
      }
    }
    Attention(batch, tokens, l, q.data(), attn.data());
    // Row-parallel o_proj: partial sums over this rank's heads.
    cpu::Linear(attn.data(), n, q_width, w.o_w.data(), nullptr, hidden, proj.data());
    TP_RETURN_IF_ERROR(AllReduce(proj));
    cpu::AddInPlace(x.data(), proj.data(), n * hidden);

    cpu::RmsNorm(x.data(), n, hidden, w.post_norm.data(), eps, h.data());
    cpu::Linear(h.data(), n, hidden, w.gate_w.data(), nullptr, inter, gate.data());
    cpu::Linear(h.data(), n, hidden, w.up_w.data(), nullptr, inter, up.data());
    cpu::SiluMul(gate.data(), up.data(), n * inter, gate.data());
    cpu::Linear(gate.data(), n, inter, w.down_w.data(), nullptr, hidden, proj.data());
    TP_RETURN_IF_ERROR(AllReduce(proj));
    cpu::AddInPlace(x.data(), proj.data(), n * hidden);
  }

  // Final norm and lm_head only for the rows whose logits are wanted.
  const int64_t rows = static_cast<int64_t>(logit_seqs.size());
  std::vector<float> last(rows * hidden);
  for (int64_t r = 0; r < rows; ++r) {
    const int s = logit_seqs[r];
    const int t = seq_start[s] + batch.seqs[s].num_scheduled_tokens - 1;
    cpu::RmsNorm(&x[t * hidden], 1, hidden, weights_.norm.data(), eps, &last[r * hidden]);
  }
  const int64_t vl = plan_.vocab, vocab = config_.vocab_size;
  local_logits_.resize(rows * vl);
  cpu::Linear(last.data(), rows, hidden, weights_.lm_head_data(), nullptr, vl,
              local_logits_.data());
  if (plan_.world_size == 1) return std::span<const float>(local_logits_.data(), rows * vl);
  // Vocab-parallel lm_head: gather every rank's slice (rank-major) and
  // reassemble each row in vocabulary order.
  gathered_logits_.resize(static_cast<size_t>(plan_.world_size) * rows * vl);
  TP_RETURN_IF_ERROR(comm_->AllGather(local_logits_.data(), gathered_logits_.data(),
                                      local_logits_.size(), CommDType::kFloat32, nullptr));
  logits_.resize(rows * vocab);
  for (int rank = 0; rank < plan_.world_size; ++rank) {
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(&gathered_logits_[(rank * rows + r) * vl], vl, &logits_[r * vocab + rank * vl]);
    }
  }
  return std::span<const float>(logits_.data(), rows * vocab);
}

}  // namespace tpserve::worker
