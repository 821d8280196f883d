// The interface between the worker service and a compute backend (CPU
// float32 reference, CUDA bf16). The service owns per-sequence bookkeeping
// and turns each Step message into a StepBatch; the backend owns weights, KV
// memory, the forward pass and sampling.
#ifndef TPSERVE_WORKER_BACKEND_BACKEND_H_
#define TPSERVE_WORKER_BACKEND_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "worker/comm/communicator.h"

namespace tpserve::worker {

// Sampling parameters of one sequence (the proto's SamplingParams, resolved:
// seed always set).
struct SamplingParams {
  float temperature = 0.0f;   // 0: greedy
  float top_p = 1.0f;         // 1 (or 0): off
  int top_k = 0;              // 0 or -1: off
  float min_p = 0.0f;         // 0: off
  uint64_t seed = 0;
  int min_tokens = 0;         // EOS/stop ids masked until this many outputs
  std::vector<int> stop_token_ids;  // masked with EOS while below min_tokens
  bool ignore_eos = false;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  bool logprobs = false;      // return the sampled token's logprob
  int top_logprobs = 0;       // and this many alternatives
  // OpenAI logit_bias: (token id, bias in [-100, 100]) added to the logit.
  std::vector<std::pair<int32_t, float>> logit_bias;
  // vLLM allowed_token_ids: when non-empty, the only ids that may be sampled.
  std::vector<int32_t> allowed_token_ids;
  // vLLM bad_words as token id sequences (worker/backend/bad_words.h).
  std::vector<std::vector<int32_t>> bad_words;
};

// One sequence's share of a step.
struct SeqStep {
  uint64_t seq_id = 0;
  // Every known token of the sequence: prompt then outputs.
  std::span<const int32_t> token_ids;
  // token_ids[0, num_prompt_tokens) is the prompt.
  int num_prompt_tokens = 0;
  // Tokens whose K/V are already in the cache.
  int num_computed_tokens = 0;
  // Compute positions [num_computed_tokens, num_computed_tokens +
  // num_scheduled_tokens).
  int num_scheduled_tokens = 0;
  // Physical block ids; block i holds positions [i*block_size,(i+1)*block_size).
  std::span<const int32_t> block_table;
  // Sample after the last scheduled position (true when it is the last known
  // token).
  bool sample = false;
  const SamplingParams* sampling = nullptr;
  // Structured output: bit id%32 of word id/32 set = token id allowed by the
  // sequence's grammar (structured/matcher.h); empty for free text.
  std::span<const uint32_t> allowed_mask;
};

// A ragged batch: prefill chunks and decodes mixed.
struct StepBatch {
  std::vector<SeqStep> seqs;
  // Structured output: fills the seqs' allowed_mask spans (sized, not yet
  // filled, when set; null when no sequence has a grammar or the masks are
  // already filled). A backend calls it once per Step, after launching the
  // forward pass and before sampling, so the host's grammar work overlaps
  // the device's forward instead of delaying it (docs/structured_output.md).
  std::function<void()> fill_masks;
};

// What sampling produced for one sequence.
struct SampleResult {
  uint64_t seq_id = 0;
  int32_t token_id = 0;
  bool has_logprobs = false;
  float logprob = 0.0f;  // raw log-softmax of the model's logits
  std::vector<std::pair<int32_t, float>> top_logprobs;  // most likely first
};

// How to load the weights (this rank's tensor-parallel slice).
struct LoadOptions {
  std::string model_path;            // folder, or config.json for dummy
  std::string load_format = "auto";  // auto | safetensors | dummy
  std::string dtype = "auto";
  std::string quantization = "auto";  // auto | fp8
  std::string kv_cache_dtype = "auto";  // auto | fp8 | fp8_e4m3 (IsFp8KvCache)
  uint64_t seed = 0;                 // dummy weights
  int max_model_len = 0;             // 0: max_position_embeddings
  int block_size = 16;
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  bool enforce_eager = false;
};

// LoadOptions::kv_cache_dtype parsed: true for an FP8 E4M3 cache ("fp8",
// "fp8_e4m3", vLLM's two spellings), false for "auto"; anything else is an
// INVALID_ARGUMENT naming the accepted values. Both backends call it once in
// Load.
inline absl::StatusOr<bool> IsFp8KvCache(const std::string& kv_cache_dtype) {
  if (kv_cache_dtype == "auto") return false;
  if (kv_cache_dtype == "fp8" || kv_cache_dtype == "fp8_e4m3") return true;
  return absl::InvalidArgumentError("unknown --kv-cache-dtype \"" + kv_cache_dtype + "\" (auto, fp8, fp8_e4m3)");
}

// Result of memory profiling.
struct MemoryProfile {
  int num_blocks = 0;
  int64_t bytes_per_block = 0;
  int64_t total_memory_bytes = 0;
  int64_t weight_bytes = 0;
  int64_t peak_activation_bytes = 0;
};

// A compute backend for one rank.
class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu" or "cuda".
  virtual std::string device() const = 0;
  // Device name for Info.
  virtual std::string device_name() const = 0;
  // Total and free device memory in bytes.
  virtual std::pair<int64_t, int64_t> MemoryInfo() const = 0;

  // Loads this rank's slice. `comm` (not owned, may be null for world size 1)
  // outlives the backend.
  virtual absl::Status Load(const LoadOptions& options, Communicator* comm) = 0;
  // The loaded model's config (valid after Load).
  virtual const ModelConfig& config() const = 0;
  // The ids that end a sequence (EosTokenIds of the checkpoint; valid after
  // Load): what the sampler masks under min_tokens and what the worker
  // reports to the router for its stop check.
  virtual const std::vector<int>& eos_token_ids() const = 0;
  // Bytes of weights held by this rank.
  virtual int64_t weight_bytes() const = 0;

  // Measures a worst-case step and returns how many KV blocks fit.
  // `memory_fraction` is --gpu-memory-utilization (GPU), `kv_cache_bytes` the
  // CPU budget.
  virtual absl::StatusOr<MemoryProfile> ProfileMemory(double memory_fraction,
                                                      int64_t kv_cache_bytes) = 0;
  // Allocates `num_blocks` KV blocks.
  virtual absl::Status InitCache(int num_blocks) = 0;

  // Runs one forward step and samples the sequences with `sample` set.
  // Results come back in batch order (only the sampling sequences). Every
  // rank returns the same tokens. The batch must be valid (token and block
  // ids in range, spans within the tokens and the block table): the worker
  // service checks each step once, where it applies it, and backends only
  // refuse what exceeds the buffers they were sized for.
  virtual absl::StatusOr<std::vector<SampleResult>> Step(const StepBatch& batch) = 0;

  // Test hook: like Step, but returns the float32 logits (full vocabulary) of
  // the last scheduled position of each sampling sequence instead of sampling.
  virtual absl::StatusOr<std::vector<std::vector<float>>> StepLogits(
      const StepBatch& batch) = 0;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_BACKEND_BACKEND_H_
