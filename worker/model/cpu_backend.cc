#include "worker/model/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/model_config.h"
#include "common/quant/kv_scales.h"
#include "common/safetensors/checkpoint.h"
#include "common/status_macros.h"
#include "worker/model/cpu_model.h"
#include "worker/model/cpu_weights.h"
#include "worker/model/sampler.h"
#include "worker/model/weight_source.h"

namespace tpserve::worker {
namespace {

namespace fs = std::filesystem;

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  }
  return "cpu";
}

class CpuBackend : public Backend {
 public:
  std::string device() const override { return "cpu"; }
  std::string device_name() const override { return CpuModelName(); }

  // Total RAM and MemAvailable (free plus reclaimable page cache; the plain
  // "free" figure would count a warm page cache as used).
  std::pair<int64_t, int64_t> MemoryInfo() const override {
    const int64_t page = sysconf(_SC_PAGESIZE);
    int64_t available = page * sysconf(_SC_AVPHYS_PAGES);
    std::ifstream in("/proc/meminfo");
    std::string key;
    int64_t kib = 0;
    std::string unit;
    while (in >> key >> kib >> unit) {
      if (key == "MemAvailable:") {
        available = kib * 1024;
        break;
      }
    }
    return {page * sysconf(_SC_PHYS_PAGES), available};
  }

  absl::Status Load(const LoadOptions& options, Communicator* comm) override;
  const ModelConfig& config() const override { return config_; }
  const std::vector<int>& eos_token_ids() const override { return eos_token_ids_; }
  int64_t weight_bytes() const override { return model_ ? model_->weights().bytes() : 0; }
  absl::StatusOr<MemoryProfile> ProfileMemory(double memory_fraction,
                                              int64_t kv_cache_bytes) override;
  absl::Status InitCache(int num_blocks) override;
  absl::StatusOr<std::vector<SampleResult>> Step(const StepBatch& batch) override;
  absl::StatusOr<std::vector<std::vector<float>>> StepLogits(const StepBatch& batch) override;

 private:
  // Load and InitCache happened and the step is not empty. The batch's
  // contents were validated where the step was applied (the worker
  // service's SequenceTable), once.
  absl::Status CheckReady(const StepBatch& batch) const;
  // Indices of the sequences with `sample` set.
  static std::vector<int> SamplingSeqs(const StepBatch& batch);

  LoadOptions options_;
  ModelConfig config_;
  std::vector<int> eos_token_ids_;
  int max_model_len_ = 0;
  std::unique_ptr<CpuModel> model_;
};

absl::Status CpuBackend::Load(const LoadOptions& options, Communicator* comm) {
  if (model_ != nullptr) return absl::FailedPreconditionError("model already loaded");
  if (options.block_size < 1 || options.block_size > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be in [1, 4096], got ", options.block_size));
  }
  const std::string& fmt = options.load_format;
  const bool dummy = fmt == "dummy";
  if (!dummy && fmt != "auto" && fmt != "safetensors") {
    return absl::InvalidArgumentError(
        absl::StrCat("load_format \"", fmt, "\" unknown (auto, safetensors or dummy)"));
  }
  const std::string& dt = options.dtype;
  if (dt != "auto" && dt != "bfloat16" && dt != "float16" && dt != "float32") {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype \"", dt, "\" unknown (auto, bfloat16, float16 or float32)"));
  }
  if (options.quantization != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization \"", options.quantization, "\" is not available on the CPU backend, which computes in "
        "float32 (--quantization fp8 needs a CUDA GPU with FP8, sm_89 or newer)"));
  }
  TP_ASSIGN_OR_RETURN(const bool fp8_kv, IsFp8KvCache(options.kv_cache_dtype));
  TP_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_path));
  const std::string dir =
      fs::is_directory(options.model_path) ? options.model_path
                                           : fs::path(options.model_path).parent_path().string();
  TP_ASSIGN_OR_RETURN(GenerationConfig gen, LoadGenerationConfig(dir));
  int max_len = options.max_model_len == 0 ? config.max_position_embeddings : options.max_model_len;
  if (max_len < 1 || max_len > config.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_model_len ", options.max_model_len, " is not in [1, ",
                     config.max_position_embeddings, "] (max_position_embeddings)"));
  }
  const int rank = comm != nullptr ? comm->rank() : 0;
  const int world = comm != nullptr ? comm->world_size() : 1;
  TP_ASSIGN_OR_RETURN(TpPlan plan, MakeTpPlan(config, rank, world));
  std::unique_ptr<WeightSource> source;
  KvCacheScales kv_scales = KvCacheScales::Unit(config.num_hidden_layers);
  if (dummy) {
    source = MakeDummySource(options.seed);
  } else {
    TP_ASSIGN_OR_RETURN(auto ckpt, safetensors::Checkpoint::Open(options.model_path));
    TP_ASSIGN_OR_RETURN(kv_scales, LoadKvCacheScales(*ckpt, config.num_hidden_layers, fp8_kv));
    source = MakeCheckpointSource(std::move(ckpt), config.quantization);
  }
  TP_ASSIGN_OR_RETURN(CpuWeights weights, LoadCpuWeights(config, plan, *source));
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    weights.layers[l].k_scale = kv_scales.k[l];
    weights.layers[l].v_scale = kv_scales.v[l];
  }
  options_ = options;
  config_ = config;
  max_model_len_ = max_len;
  eos_token_ids_ = EosTokenIds(config, gen);
  model_ = std::make_unique<CpuModel>(std::move(config), plan, std::move(weights), comm,
                                      options.block_size, fp8_kv);
  return absl::OkStatus();
}

absl::StatusOr<MemoryProfile> CpuBackend::ProfileMemory(double, int64_t kv_cache_bytes) {
  if (model_ == nullptr) return absl::FailedPreconditionError("ProfileMemory before Load");
  if (kv_cache_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CPU KV cache budget must be > 0 bytes, got ", kv_cache_bytes));
  }
  MemoryProfile p;
  p.bytes_per_block = model_->bytes_per_block();
  const int64_t blocks = kv_cache_bytes / p.bytes_per_block;
  if (blocks < 1) {
    return absl::ResourceExhaustedError(absl::StrCat("CPU KV cache budget of ", kv_cache_bytes,
                                                     " bytes is below one block (",
                                                     p.bytes_per_block, " bytes)"));
  }
  p.num_blocks = static_cast<int>(std::min<int64_t>(blocks, std::numeric_limits<int>::max()));
  p.total_memory_bytes = MemoryInfo().first;
  p.weight_bytes = weight_bytes();
  // Activations of a worst-case step (no real pass needed on CPU, where the
  // buffers are plain vectors sized by token count): the per-token buffers
  // of CpuModel::Forward plus one full-vocabulary logits row per sequence.
  const int64_t per_token = 4 * config_.hidden_size +
                            2 * int64_t{config_.num_attention_heads} * config_.head_dim +
                            2 * int64_t{config_.num_key_value_heads} * config_.head_dim +
                            2 * int64_t{config_.intermediate_size};
  p.peak_activation_bytes =
      (options_.max_num_batched_tokens * per_token +
       int64_t{options_.max_num_seqs} * config_.vocab_size * 2) * static_cast<int64_t>(sizeof(float));
  return p;
}

absl::Status CpuBackend::InitCache(int num_blocks) {
  if (model_ == nullptr) return absl::FailedPreconditionError("InitCache before Load");
  if (num_blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_blocks must be >= 1, got ", num_blocks));
  }
  // Refuse up front: with overcommit the allocation itself would succeed and
  // zeroing it would bring in the OOM killer instead of an error.
  const int64_t bytes = int64_t{num_blocks} * model_->bytes_per_block();
  const int64_t available = MemoryInfo().second;
  if (bytes > available) {
    return absl::ResourceExhaustedError(absl::StrCat(
        num_blocks, " KV blocks need ", bytes, " bytes but only ", available,
        " bytes of memory are available; lower --cpu-kv-cache-space"));
  }
  return model_->AllocateCache(num_blocks);
}

absl::Status CpuBackend::CheckReady(const StepBatch& batch) const {
  if (model_ == nullptr) return absl::FailedPreconditionError("Step before Load");
  if (model_->num_blocks() == 0) return absl::FailedPreconditionError("Step before InitCache");
  if (batch.seqs.empty()) return absl::InvalidArgumentError("empty step");
  return absl::OkStatus();
}

std::vector<int> CpuBackend::SamplingSeqs(const StepBatch& batch) {
  std::vector<int> out;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    if (batch.seqs[i].sample) out.push_back(static_cast<int>(i));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> CpuBackend::StepLogits(const StepBatch& batch) {
  TP_RETURN_IF_ERROR(CheckReady(batch));
  TP_ASSIGN_OR_RETURN(std::span<const float> logits, model_->Forward(batch, SamplingSeqs(batch)));
  const size_t vocab = config_.vocab_size;
  std::vector<std::vector<float>> rows;
  for (size_t r = 0; r * vocab < logits.size(); ++r) {
    rows.emplace_back(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
  }
  return rows;
}

absl::StatusOr<std::vector<SampleResult>> CpuBackend::Step(const StepBatch& batch) {
  TP_RETURN_IF_ERROR(CheckReady(batch));
  const std::vector<int> seqs = SamplingSeqs(batch);
  TP_ASSIGN_OR_RETURN(std::span<const float> logits, model_->Forward(batch, seqs));
  // The CPU forward runs on this thread, so nothing overlaps the masks here.
  if (batch.fill_masks) batch.fill_masks();
  const size_t vocab = config_.vocab_size;
  std::vector<SampleResult> results;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SeqStep& s = batch.seqs[seqs[i]];
    SamplingInput in{logits.subspan(i * vocab, vocab), s.sampling,
                     s.token_ids.first(s.num_computed_tokens + s.num_scheduled_tokens),
                     std::min<int>(s.num_prompt_tokens,
                                   s.num_computed_tokens + s.num_scheduled_tokens),
                     eos_token_ids_, s.allowed_mask};
    auto r = SampleNext(in);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", s.seq_id, ": ", r.status().message()));
    }
    r->seq_id = s.seq_id;
    results.push_back(std::move(*r));
  }
  return results;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend() {
  return std::unique_ptr<Backend>(new CpuBackend());
}

}  // namespace tpserve::worker
