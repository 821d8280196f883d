#include "worker/cuda/cuda_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/model/rope.h"
#include "common/status_macros.h"
#include "worker/cuda/activation.h"
#include "worker/cuda/fill.h"
#include "worker/cuda/gather.h"
#include "worker/cuda/block_table.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/memory_fit.h"
#include "worker/cuda/device_info.h"
#include "worker/cuda/gemv.h"
#include "worker/cuda/norm.h"
#include "worker/cuda/rope_cache.h"

namespace tpserve::worker::cuda {
namespace {

using bf16 = __nv_bfloat16;

absl::StatusOr<DeviceBuffer> Bf16Buffer(int64_t elems) { return DeviceBuffer::Allocate(elems * 2); }

}  // namespace

absl::StatusOr<std::unique_ptr<CudaModel>> CudaModel::Create(const ModelConfig& config,
                                                             const Partition& part,
                                                             ModelWeights weights,
                                                             Communicator* comm,
                                                             const ModelLimits& limits,
                                                             cudaStream_t stream) {
  if (limits.max_tokens <= 0 || limits.max_seqs <= 0 || limits.max_model_len <= 0 || limits.block_size <= 0) {
    return absl::InvalidArgumentError("CudaModel: limits must be positive");
  }
  std::unique_ptr<CudaModel> m(new CudaModel());
  m->config_ = config;
  m->part_ = part;
  m->weights_ = std::move(weights);
  m->comm_ = comm;
  m->limits_ = limits;
  m->stream_ = stream;
  m->dims_.num_heads = part.num_heads;
  m->dims_.num_kv_heads = part.num_kv_heads;
  m->dims_.head_dim = config.head_dim;
  m->dims_.block_size = limits.block_size;
  const RopeTable rope = MakeRopeTable(config.head_dim, config.rope_theta, config.rope_scaling);
  if (rope.inv_freq.size() > static_cast<size_t>(kMaxRopePairs)) {
    return absl::InvalidArgumentError(absl::StrCat("head_dim ", config.head_dim, " is over the RoPE kernel's ",
                                                   2 * kMaxRopePairs));
  }
  std::copy(rope.inv_freq.begin(), rope.inv_freq.end(), m->rope_.inv_freq);
  m->rope_.attention_factor = rope.attention_factor;
  m->max_blocks_ = (limits.max_model_len + limits.block_size - 1) / limits.block_size;
  TP_ASSIGN_OR_RETURN(const DeviceInfo device, GetCurrentDeviceInfo());
  m->num_sms_ = device.num_sms;
  TP_ASSIGN_OR_RETURN(m->gemm_, Gemm::Create());
  // Activation scratch of the FP8 GEMMs, if any layer has one (an FP8
  // checkpoint may leave some layers unquantized).
  const bool any_fp8 = std::any_of(m->weights_.layers.begin(), m->weights_.layers.end(), [](const LayerWeights& l) {
    return l.qkv.fp8() || l.o_proj.fp8() || l.gate_up.fp8() || l.down.fp8();
  });
  if (any_fp8) {
    const int widest = std::max({config.hidden_size, part.num_heads * config.head_dim, part.intermediate});
    TP_RETURN_IF_ERROR(m->gemm_->ReserveFp8(limits.max_tokens, widest));
  }
  // Packed int weights (AWQ/GPTQ): a bf16 scratch for the largest one.
  int64_t int_elems = 0;
  for (const LayerWeights& l : m->weights_.layers) {
    const int64_t h = config.hidden_size, qkv_rows = (part.num_heads + 2 * part.num_kv_heads) * config.head_dim;
    const std::pair<const LinearWeight*, int64_t> sizes[] = {{&l.qkv, qkv_rows * h},
                                                             {&l.o_proj, h * part.num_heads * config.head_dim},
                                                             {&l.gate_up, 2 * h * part.intermediate},
                                                             {&l.down, h * part.intermediate}};
    for (const auto& [w, elems] : sizes) int_elems = std::max(int_elems, w->packed_int() ? elems : 0);
  }
  if (int_elems > 0) {
    const int widest = std::max({config.hidden_size, part.num_heads * config.head_dim, part.intermediate});
    TP_RETURN_IF_ERROR(m->gemm_->ReserveInt(int_elems, widest));
  }
  const int64_t t = limits.max_tokens, s = limits.max_seqs, h = config.hidden_size, d = config.head_dim;
  TP_ASSIGN_OR_RETURN(m->residual_, Bf16Buffer(t * h));
  TP_ASSIGN_OR_RETURN(m->normed_, Bf16Buffer(t * h));
  TP_ASSIGN_OR_RETURN(m->qkv_, Bf16Buffer(t * (part.num_heads + 2 * part.num_kv_heads) * d));
  TP_ASSIGN_OR_RETURN(m->attn_, Bf16Buffer(t * part.num_heads * d));
  TP_ASSIGN_OR_RETURN(m->proj_, Bf16Buffer(t * h));
  if (part.world_size > 1) {
    TP_ASSIGN_OR_RETURN(m->proj_f32_, DeviceBuffer::Allocate(static_cast<size_t>(t) * h * sizeof(float)));
    if (auto* nccl = dynamic_cast<NcclCommunicator*>(comm)) {  // collective: every rank gets here
      CustomAllReduce::Options options;
      options.max_bytes = std::min(options.max_bytes, static_cast<size_t>(s * h) * sizeof(float));
      TP_ASSIGN_OR_RETURN(m->custom_ar_, CustomAllReduce::Create(*nccl, options));
    }
  }
  TP_ASSIGN_OR_RETURN(m->gate_up_, Bf16Buffer(t * 2 * part.intermediate));
  TP_ASSIGN_OR_RETURN(m->act_, Bf16Buffer(t * part.intermediate));
  TP_ASSIGN_OR_RETURN(m->sample_hidden_, Bf16Buffer(s * h));
  TP_ASSIGN_OR_RETURN(m->logits_, DeviceBuffer::Allocate(s * config.vocab_size * sizeof(float)));
  if (part.world_size > 1) {
    TP_ASSIGN_OR_RETURN(m->logits_local_, DeviceBuffer::Allocate(s * part.shard_vocab * sizeof(float)));
    TP_ASSIGN_OR_RETURN(m->logits_gathered_,
                        DeviceBuffer::Allocate(s * part.shard_vocab * part.world_size * sizeof(float)));
  }
  // Decode workspace for the widest partitioning any step can use: splits
  // grow with the context bound and shrink with the batch.
  size_t ws = 0;
  for (int b = 1; b <= s; ++b) {
    ws = std::max(ws, DecodeWorkspaceBytes(b, part.num_heads, d,
                                           m->GraphPartition(b)));
  }
  TP_ASSIGN_OR_RETURN(m->decode_ws_, DeviceBuffer::Allocate(ws));
  int64_t off = 0;
  auto region = [&](int64_t& o, int64_t n) { o = off; off += n; };
  region(m->off_tokens_, t);
  region(m->off_positions_, t);
  region(m->off_slots_, t);
  region(m->off_samples_, s);
  region(m->off_qstart_, s);
  region(m->off_qlen_, s);
  region(m->off_ctx_, s);
  region(m->off_tiles_, 2 * MaxPrefillTiles(t, s, m->dims_));
  region(m->off_edits_, 2 * s * m->max_blocks_);  // every row rewritten at worst
  region(m->off_tables_, s * m->max_blocks_);
  m->meta_ints_ = off;
  TP_ASSIGN_OR_RETURN(m->meta_, DeviceBuffer::Allocate(static_cast<size_t>(off) * sizeof(int)));
  TP_ASSIGN_OR_RETURN(m->meta_host_,
                      HostBuffer::Allocate(static_cast<size_t>(m->off_tables_) * sizeof(int)));
  TP_CUDA_CHECK(cudaEventCreateWithFlags(&m->meta_copied_, cudaEventDisableTiming));
  TP_CUDA_CHECK(cudaMemset(m->meta_.data(), 0, m->meta_.bytes()));
  return m;
}

void CudaModel::SetCache(void* cache, int num_blocks) {
  cache_ = cache;
  num_blocks_ = num_blocks;
}

int64_t CudaModel::BytesPerBlock() const {
  return KvBlockBytes(config_, part_, limits_.block_size, limits_.kv_cache);
}

CudaModel::~CudaModel() {
  if (meta_copied_ != nullptr) cudaEventDestroy(meta_copied_);
}

absl::StatusOr<ForwardShape> CudaModel::Upload(StepInput& input) {
  // The previous step's copy must have left the staging buffer.
  if (meta_pending_) TP_CUDA_CHECK(cudaEventSynchronize(meta_copied_));
  ForwardShape shape;
  shape.decode = input.decode();
  tiles_.clear();
  if (!shape.decode) {
    const int tile_positions = PrefillTilePositions(dims_);
    for (int r = 0; r < input.num_rows(); ++r) AppendPrefillTiles(r, input.q_len()[r], tile_positions, tiles_);
  }
  int* staged = meta_host_.as<int>();
  struct Span {
    int64_t begin, end;
  };
  std::vector<Span> spans;
  const std::pair<int64_t, const std::vector<int>*> regions[] = {
      {off_tokens_, &input.tokens()},   {off_positions_, &input.positions()},
      {off_slots_, &input.slots()},     {off_samples_, &input.sample_rows()},
      {off_qstart_, &input.q_start()},  {off_qlen_, &input.q_len()},
      {off_ctx_, &input.context_lens()}, {off_tiles_, &tiles_},
      {off_edits_, &input.block_edits()}};
  for (const auto& [off, v] : regions) {
    if (v->empty()) continue;
    std::copy(v->begin(), v->end(), staged + off);
    const int64_t end = off + static_cast<int64_t>(v->size());
    // Regions are laid out in this order; nearby ones go in one copy (a few
    // unused ints cost less than another DMA).
    if (!spans.empty() && off - spans.back().end <= kMetaCopyGap) {
      spans.back().end = end;
    } else {
      spans.push_back({off, end});
    }
  }
  for (const Span& sp : spans) {
    TP_CUDA_CHECK(cudaMemcpyAsync(Meta(sp.begin), staged + sp.begin, (sp.end - sp.begin) * sizeof(int),
                                  cudaMemcpyHostToDevice, stream_));
  }
  TP_CUDA_CHECK(cudaEventRecord(meta_copied_, stream_));
  meta_pending_ = true;
  TP_RETURN_IF_ERROR(ApplyBlockTableEdits(Meta(off_edits_), static_cast<int>(input.block_edits().size() / 2),
                                          Meta(off_tables_), stream_));
  input.ClearBlockEdits();
  shape.num_tokens = static_cast<int>(input.tokens().size());
  shape.num_seqs = static_cast<int>(input.q_start().size());
  shape.num_tiles = static_cast<int>(tiles_.size() / 2);
  shape.num_samples = static_cast<int>(input.sample_rows().size());
  shape.partition =
      ChooseDecodePartition(shape.num_seqs, part_.num_kv_heads, std::max(1, input.max_context()), num_sms_);
  return shape;
}

absl::Status CudaModel::AllReduce(bf16* data, size_t count) {
  if (comm_ == nullptr || comm_->world_size() == 1) return absl::OkStatus();
  return comm_->AllReduceSum(data, count, CommDType::kBFloat16, stream_);
}

absl::Status CudaModel::Linear(const bf16* x, const LinearWeight& w, const bf16* bias, void* out, bool out_fp32,
                              int t, int n, int k) {
  if (w.packed_int()) return gemm_->LinearInt(x, w.int_view(), bias, out, out_fp32, t, n, k, stream_);
  if (w.fp8()) {
    return gemm_->LinearFp8(x, w.data.as<__nv_fp8_e4m3>(), w.scale.as<float>(), bias, out, out_fp32, t, n, k,
                            stream_);
  }
  return gemm_->Linear(x, w.data.as<bf16>(), bias, out, out_fp32, t, n, k, stream_);
}

absl::Status CudaModel::RowParallelLinear(const bf16* x, const LinearWeight& w, int t, int n, int k) {
  if (part_.world_size == 1) return Linear(x, w, nullptr, proj_.as<bf16>(), false, t, n, k);
  float* partial = proj_f32_.as<float>();
  TP_RETURN_IF_ERROR(Linear(x, w, nullptr, partial, true, t, n, k));
  if (fuse_allreduce_) {  // summed by the next AddProjAndNorm (or after the layer loop)
    sums_pending_ = true;
    return absl::OkStatus();
  }
  return comm_->AllReduceSum(partial, static_cast<size_t>(t) * n, CommDType::kFloat32, stream_);
}

absl::Status CudaModel::AddProjAndNorm(bool add, const bf16* weight, int t) {
  bf16 *res = residual_.as<bf16>(), *normed = normed_.as<bf16>();
  const int h = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  if (!add) return AddRmsNorm(static_cast<const bf16*>(nullptr), res, weight, normed, t, h, eps, stream_);
  if (sums_pending_) {
    sums_pending_ = false;
    return custom_ar_->AllReduceAddRmsNorm(proj_f32_.as<float>(), res, weight, normed, t, h, eps, stream_);
  }
  if (part_.world_size == 1) return AddRmsNorm(proj_.as<bf16>(), res, weight, normed, t, h, eps, stream_);
  return AddRmsNorm(proj_f32_.as<float>(), res, weight, normed, t, h, eps, stream_);
}

absl::Status CudaModel::Forward(const ForwardShape& s) {
  if (cache_ == nullptr) return absl::FailedPreconditionError("KV cache not initialised");
  const PdlStepScope pdl(s.decode);  // recorded into the decode graphs at capture
  const int t = s.num_tokens, h = config_.hidden_size, d = config_.head_dim;
  const int nh = part_.num_heads, nkv = part_.num_kv_heads, inter = part_.intermediate;
  const int qkv_cols = (nh + 2 * nkv) * d;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  bf16 *res = residual_.as<bf16>(), *normed = normed_.as<bf16>(), *qkv = qkv_.as<bf16>();
  bf16 *attn = attn_.as<bf16>(), *proj = proj_.as<bf16>();
  fuse_allreduce_ = s.decode && custom_ar_ != nullptr && custom_ar_->SupportsFused(t, h);
  sums_pending_ = false;
  TP_RETURN_IF_ERROR(EmbeddingGather(Meta(off_tokens_), weights_.embed.as<bf16>(), res, t, h,
                                     part_.vocab_start, part_.local_vocab, stream_));
  TP_RETURN_IF_ERROR(AllReduce(res, static_cast<size_t>(t) * h));
  PagedAttnBatch ab;
  ab.num_seqs = s.num_seqs;
  ab.q_start = Meta(off_qstart_);
  ab.q_len = Meta(off_qlen_);
  ab.context_len = Meta(off_ctx_);
  ab.block_tables = Meta(off_tables_);
  ab.max_blocks_per_seq = max_blocks_;
  // Each layer's K then V, [slot][kv_head][head_dim] of the cache's type.
  const size_t layer_bytes = static_cast<size_t>(num_blocks_) * limits_.block_size * nkv * d *
                             KvCacheElementBytes(limits_.kv_cache);
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const LayerWeights& w = weights_.layers[l];
    KvCacheRef kv;
    kv.k = static_cast<uint8_t*>(cache_) + 2 * l * layer_bytes;
    kv.v = static_cast<uint8_t*>(kv.k) + layer_bytes;
    kv.dtype = limits_.kv_cache;
    kv.k_scale = w.k_scale;  // the checkpoint's with an FP8 cache, else 1.0
    kv.v_scale = w.v_scale;
    TP_RETURN_IF_ERROR(AddProjAndNorm(l > 0, w.input_norm.as<bf16>(), t));
    TP_RETURN_IF_ERROR(Linear(normed, w.qkv, w.qkv_bias.as<bf16>(), qkv, false, t, qkv_cols, h));
    if (s.decode) {  // RoPE, the KV write and attention (attention.h: DecodeRope)
      TP_RETURN_IF_ERROR(PagedDecodeAttentionWithRope(qkv, qkv_cols, attn, Meta(off_positions_), Meta(off_slots_),
                                                      kv, ab, s.partition, decode_ws_.data(), dims_, rope_, stream_));
    } else {
      TP_RETURN_IF_ERROR(RopeAndCacheWrite(qkv, Meta(off_positions_), Meta(off_slots_), kv, t, dims_, rope_,
                                           stream_));
      TP_RETURN_IF_ERROR(PagedPrefillAttention(qkv, qkv_cols, attn, kv, ab, Meta(off_tiles_),
                                               s.num_tiles, dims_, stream_));
    }
    TP_RETURN_IF_ERROR(RowParallelLinear(attn, w.o_proj, t, h, nh * d));
    TP_RETURN_IF_ERROR(AddProjAndNorm(true, w.post_norm.as<bf16>(), t));
    if (w.gate_up.packed_int() && IntSiluMulFused(w.gate_up.int_view(), t)) {  // the same on AWQ/GPTQ codes
      TP_RETURN_IF_ERROR(gemm_->LinearIntSiluMul(normed, w.gate_up.int_view(), act_.as<bf16>(), t, inter, h, stream_));
    } else if (t <= kGemvFastRows && !w.gate_up.packed_int()) {  // decode: gate/up and SiLU in one pass
      TP_RETURN_IF_ERROR(w.gate_up.fp8() ? GemvFp8SiluMul(normed, w.gate_up.data.as<__nv_fp8_e4m3>(),
                                                          w.gate_up.scale.as<float>(), act_.as<bf16>(), t, inter,
                                                          h, stream_)
                                         : GemvSiluMul(normed, w.gate_up.data.as<bf16>(), act_.as<bf16>(), t,
                                                       inter, h, stream_));
    } else {
      TP_RETURN_IF_ERROR(Linear(normed, w.gate_up, nullptr, gate_up_.as<bf16>(), false, t, 2 * inter, h));
      TP_RETURN_IF_ERROR(SiluAndMul(gate_up_.as<bf16>(), act_.as<bf16>(), t, inter, stream_));
    }
    TP_RETURN_IF_ERROR(RowParallelLinear(act_.as<bf16>(), w.down, t, h, inter));
  }
  if (s.num_samples == 0) return absl::OkStatus();
  if (sums_pending_) {  // the last down_proj: no norm of its own follows
    sums_pending_ = false;
    TP_RETURN_IF_ERROR(custom_ar_->AllReduce(proj_f32_.as<float>(), proj_f32_.as<float>(),
                                             static_cast<size_t>(t) * h, stream_));
  }
  if (part_.world_size > 1) {  // the last down_proj's sums, rounded as AddProjAndNorm rounds them
    TP_RETURN_IF_ERROR(Float32ToBf16(proj_f32_.as<float>(), proj, static_cast<size_t>(t) * h, stream_));
  }
  // Only the sampled positions go through the final norm and lm_head.
  TP_RETURN_IF_ERROR(GatherRows(res, Meta(off_samples_), normed, s.num_samples, h, stream_));
  TP_RETURN_IF_ERROR(GatherRows(proj, Meta(off_samples_), attn, s.num_samples, h, stream_));
  bf16* hid = sample_hidden_.as<bf16>();
  TP_RETURN_IF_ERROR(AddRmsNorm(attn, normed, weights_.final_norm.as<bf16>(), hid, s.num_samples, h, eps, stream_));
  if (part_.world_size == 1) {
    return gemm_->Linear(hid, weights_.lm_head.as<bf16>(), nullptr, logits_.data(), true, s.num_samples,
                         config_.vocab_size, h, stream_);
  }
  TP_RETURN_IF_ERROR(gemm_->Linear(hid, weights_.lm_head.as<bf16>(), nullptr, logits_local_.data(), true,
                                   s.num_samples, part_.shard_vocab, h, stream_));
  TP_RETURN_IF_ERROR(comm_->AllGather(logits_local_.data(), logits_gathered_.data(),
                                      static_cast<size_t>(s.num_samples) * part_.shard_vocab,
                                      CommDType::kFloat32, stream_));
  return VocabShardsToRows(logits_gathered_.as<float>(), logits_.as<float>(), part_.world_size,
                           s.num_samples, part_.shard_vocab, config_.vocab_size, stream_);
}

}  // namespace tpserve::worker::cuda
