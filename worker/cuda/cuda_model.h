// The Qwen2 forward pass of one rank on the GPU: fixed device buffers sized
// for max_num_batched_tokens / max_num_seqs, so a step launches work without
// allocating and a decode step can be captured into a CUDA graph.
#ifndef TPSERVE_WORKER_CUDA_CUDA_MODEL_H_
#define TPSERVE_WORKER_CUDA_CUDA_MODEL_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "worker/comm/communicator.h"
#include "worker/comm/custom_allreduce.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/cuda_weights.h"
#include "worker/cuda/device_buffer.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda/kv_cache_dtype.h"
#include "worker/cuda/step_input.h"
#include "worker/backend/backend.h"

namespace tpserve::worker::cuda {

// Limits the buffers are sized for, and the KV cache's element type.
struct ModelLimits {
  int max_tokens = 0;     // max_num_batched_tokens
  int max_seqs = 0;       // max_num_seqs
  int max_model_len = 0;
  int block_size = 16;
  KvCacheDtype kv_cache = KvCacheDtype::kBf16;  // --kv-cache-dtype
};

// What one forward pass computes; the per-token / per-sequence arrays it
// reads were uploaded by Upload().
struct ForwardShape {
  int num_tokens = 0;
  int num_seqs = 0;
  int num_tiles = 0;    // prefill attention tiles (unused when decode)
  int num_samples = 0;  // rows of logits
  bool decode = false;  // every sequence has exactly one query row
  DecodePartition partition;
};

// Weights, activation buffers and the layer loop of one rank.
class CudaModel {
 public:
  // `comm` may be null for a single rank.
  static absl::StatusOr<std::unique_ptr<CudaModel>> Create(const ModelConfig& config,
                                                           const Partition& part,
                                                           ModelWeights weights,
                                                           Communicator* comm,
                                                           const ModelLimits& limits,
                                                           cudaStream_t stream);

  ~CudaModel();

  // Points the attention layers at the KV cache (`num_blocks` blocks of
  // BytesPerBlock(), elements of limits().kv_cache).
  void SetCache(void* cache, int num_blocks);
  // Bytes of K and V for one block across all layers on this rank.
  int64_t BytesPerBlock() const;

  // Copies the step arrays of `input` to the device metadata (async on the
  // model's stream, through a page-locked staging buffer, in as few copies
  // as possible), patches the device block tables with its block edits (and
  // clears them), and returns the shape of the step. `input` was sized for
  // this model's limits (max_blocks_per_seq()).
  absl::StatusOr<ForwardShape> Upload(StepInput& input);
  // Launches the forward pass; logits() then holds [num_samples, vocab]
  // float32. No host synchronisation (capturable).
  absl::Status Forward(const ForwardShape& shape);

  // Device logits of the last Forward.
  const float* logits() const { return logits_.as<float>(); }
  const ModelConfig& config() const { return config_; }
  const Partition& partition() const { return part_; }
  const ModelLimits& limits() const { return limits_; }
  int64_t weight_bytes() const { return weights_.bytes; }
  cudaStream_t stream() const { return stream_; }
  // Decode partition of the graph for `batch` sequences (covers max_model_len).
  DecodePartition GraphPartition(int batch) const {
    return ChooseDecodePartition(batch, part_.num_kv_heads, limits_.max_model_len, num_sms_);
  }
  // Max blocks a sequence may hold.
  int max_blocks_per_seq() const { return max_blocks_; }

 private:
  CudaModel() = default;
  absl::Status AllReduce(__nv_bfloat16* data, size_t count);
  // proj = x · wᵀ, all-reduced across ranks: into proj_ (bf16) at TP=1; at
  // TP > 1 float32 partials and a float32 all-reduce into proj_f32_, which
  // AddProjAndNorm rounds to bf16 once while adding (see proj_f32_).
  absl::Status RowParallelLinear(const __nv_bfloat16* x, const LinearWeight& w, int t, int n, int k);
  // out[t, n] = x[t, k] · wᵀ + bias on the GEMM for w's format.
  absl::Status Linear(const __nv_bfloat16* x, const LinearWeight& w, const __nv_bfloat16* bias, void* out,
                      bool out_fp32, int t, int n, int k);
  // residual += the last RowParallelLinear output (when `add`), then
  // normed_ = RMSNorm(residual) * weight, in one kernel.
  absl::Status AddProjAndNorm(bool add, const __nv_bfloat16* weight, int t);
  int* Meta(int64_t offset) const { return meta_.as<int>() + offset; }

  ModelConfig config_;
  Partition part_;
  ModelWeights weights_;
  Communicator* comm_ = nullptr;
  ModelLimits limits_;
  cudaStream_t stream_ = nullptr;
  AttnDims dims_;
  RopeParams rope_;  // config's RoPE table (YaRN included), from MakeRopeTable
  int max_blocks_ = 0;
  int num_sms_ = 0;  // the device's, for the decode attention split
  std::unique_ptr<Gemm> gemm_;
  DeviceBuffer residual_, normed_, qkv_, attn_, proj_, gate_up_, act_, sample_hidden_;
  DeviceBuffer logits_local_, logits_gathered_, logits_, decode_ws_, meta_;
  // Page-locked mirror of meta_ up to the block tables (which only get
  // edits) that Upload stages into; meta_copied_ marks when the last copy
  // out of it has run.
  HostBuffer meta_host_;
  std::vector<int> tiles_;
  cudaEvent_t meta_copied_ = nullptr;
  bool meta_pending_ = false;
  // Regions at most this many ints apart are copied together.
  static constexpr int kMetaCopyGap = 2048;
  // TP > 1: o_proj / down_proj partial sums stay float32 through the
  // all-reduce and are rounded to bf16 once, as the single-GPU GEMM rounds its
  // float32 accumulator once; a bf16 all-reduce would round every partial
  // and the sum again, and TP output would drift from TP=1.
  DeviceBuffer proj_f32_;
  // TP > 1 on peer-accessible GPUs: decode steps all-reduce proj_f32_ with
  // the custom all-reduce, fused into the add + norm that follows
  // (sums_pending_: proj_f32_ holds this rank's partials, not yet summed).
  std::unique_ptr<CustomAllReduce> custom_ar_;
  bool fuse_allreduce_ = false;
  bool sums_pending_ = false;
  // Offsets of the metadata arrays in meta_ (ints); the block tables come
  // last, after the staging area for their edits.
  int64_t off_tokens_ = 0, off_positions_ = 0, off_slots_ = 0, off_samples_ = 0, off_qstart_ = 0;
  int64_t off_qlen_ = 0, off_ctx_ = 0, off_tiles_ = 0, off_edits_ = 0, off_tables_ = 0, meta_ints_ = 0;
  void* cache_ = nullptr;
  int num_blocks_ = 0;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_CUDA_MODEL_H_
