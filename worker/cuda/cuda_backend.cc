#include "worker/cuda/cuda_backend.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/model/model_config.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/device_info.h"
#include "worker/cuda/memory_fit.h"
#include "worker/cuda/sampler.h"

namespace tpserve::worker {
namespace {

using cuda::CudaModel;
using cuda::DeviceBuffer;
using cuda::ForwardShape;
using cuda::StepInput;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The dummy-weight int formats tpserve_bench measures (--load-format dummy
// with --quantization awq|gptq|gptq-int8): random packed codes, group 128.
bool IsDummyIntName(const std::string& name) { return name == "awq" || name == "gptq" || name == "gptq-int8"; }

absl::StatusOr<QuantConfig> DummyIntQuant(const std::string& name) {
  if (!IsDummyIntName(name)) return absl::InvalidArgumentError(absl::StrCat("no dummy int format ", name));
  QuantConfig q;
  q.method = name == "awq" ? QuantMethod::kAwq : QuantMethod::kGptq;
  q.bits = name == "gptq-int8" ? 8 : 4;
  q.group_size = 128;
  q.zero_offset = q.method == QuantMethod::kGptq ? 1 : 0;
  return q;
}

// The format of the linear weights on the GPU: --quantization fp8 asks for
// FP8 (FP8 tensor cores needed); "auto" keeps an FP8 checkpoint in FP8 where
// the GPU has it, and AWQ/GPTQ checkpoints packed in int4/int8 (every
// supported GPU, sm_80+, runs the int kernels; a layer they cannot stream
// loads as bf16, cuda_weights.cc). FP8 checkpoints on GPUs without FP8 are
// dequantized to bf16 as they load. awq/gptq/gptq-int8 are for dummy
// weights only (benchmarks).
absl::StatusOr<cuda::WeightQuant> ChooseWeightQuant(const LoadOptions& options, const cuda::DeviceInfo& device,
                                                    const ModelConfig& config) {
  const bool has_fp8 = device.major * 10 + device.minor >= 89;
  const QuantMethod stored = options.load_format == "dummy" ? QuantMethod::kNone : config.quantization.method;
  if (options.quantization == "fp8") {
    if (!has_fp8) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--quantization fp8 needs FP8 tensor cores (compute capability 8.9 or newer: L40S, RTX 4090, H100/H200, "
          "B200); ", device.name, " is sm_", device.major, device.minor, ". Serve this GPU in bfloat16 "
          "(--quantization auto)"));
    }
    if (stored == QuantMethod::kAwq || stored == QuantMethod::kGptq) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--quantization fp8 would re-quantize this ", config.quantization.Describe(),
          " checkpoint; serve it with --quantization auto, or give the bf16 checkpoint"));
    }
    return cuda::WeightQuant::kFp8;
  }
  if (IsDummyIntName(options.quantization)) {
    if (options.load_format != "dummy") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--quantization ", options.quantization, " makes random packed weights for benchmarks and needs "
          "--load-format dummy; an AWQ/GPTQ checkpoint's own quantization_config is used with "
          "--quantization auto"));
    }
    return cuda::WeightQuant::kInt;
  }
  if (options.quantization != "auto") {
    return absl::InvalidArgumentError(absl::StrCat("unknown --quantization ", options.quantization, " (auto, fp8)"));
  }
  if (stored == QuantMethod::kFp8 && has_fp8) return cuda::WeightQuant::kFp8;
  if (stored == QuantMethod::kAwq || stored == QuantMethod::kGptq) return cuda::WeightQuant::kInt;
  if (stored == QuantMethod::kFp8) {
    spdlog::warn("{} checkpoint: its linear layers are dequantized to bfloat16 as they load (bf16 memory and "
                 "speed): {} has no FP8 (sm_{}{})", config.quantization.Describe(), device.name, device.major,
                 device.minor);
  }
  return cuda::WeightQuant::kNone;
}

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  ~CudaBackend() override {
    for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
    model_.reset();
    sampler_.reset();
    cache_.Reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string device() const override { return "cuda"; }
  std::string device_name() const override {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device_) != cudaSuccess) return "unknown CUDA device";
    return prop.name;
  }
  std::pair<int64_t, int64_t> MemoryInfo() const override {
    size_t free = 0, total = 0;
    cudaSetDevice(device_);
    cudaMemGetInfo(&free, &total);
    return {static_cast<int64_t>(total), static_cast<int64_t>(free)};
  }
  const ModelConfig& config() const override { return config_; }
  const std::vector<int>& eos_token_ids() const override { return eos_token_ids_; }
  int64_t weight_bytes() const override { return model_ ? model_->weight_bytes() : 0; }

  absl::Status Load(const LoadOptions& options, Communicator* comm) override;
  absl::StatusOr<MemoryProfile> ProfileMemory(double memory_fraction, int64_t kv_cache_bytes) override;
  absl::Status InitCache(int num_blocks) override;
  absl::StatusOr<std::vector<SampleResult>> Step(const StepBatch& batch) override;
  absl::StatusOr<std::vector<std::vector<float>>> StepLogits(const StepBatch& batch) override;

 private:
  // Runs the forward pass of `batch` (from a graph when one fits); returns
  // the shape. input_->sampling() then lists the sampling sequences in the
  // order of the logits rows.
  absl::StatusOr<ForwardShape> Run(const StepBatch& batch);
  absl::Status CaptureGraphs();
  // Rows come out in the input's row order; callers get batch order.
  template <typename T>
  std::vector<T> InBatchOrder(std::vector<T> by_row) const {
    std::vector<T> out(by_row.size());
    const std::vector<int>& order = input_->sampling_batch_order();
    for (size_t k = 0; k < by_row.size(); ++k) out[order[k]] = std::move(by_row[k]);
    return out;
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  LoadOptions options_;
  ModelConfig config_;
  std::vector<int> eos_token_ids_;
  std::unique_ptr<CudaModel> model_;
  std::unique_ptr<cuda::Sampler> sampler_;
  DeviceBuffer cache_;
  int num_blocks_ = 0;
  cuda::WeightQuant quant_ = cuda::WeightQuant::kNone;
  std::map<int, cudaGraphExec_t> graphs_;  // decode batch bucket -> graph
  // The step layout, kept from step to step (block tables patched in place).
  std::unique_ptr<StepInput> input_;
};

absl::Status CudaBackend::Load(const LoadOptions& options, Communicator* comm) {
  if (model_) return absl::FailedPreconditionError("Load called twice");
  TP_CUDA_CHECK(cudaSetDevice(device_));
  TP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  options_ = options;
  TP_ASSIGN_OR_RETURN(const cuda::DeviceInfo device, cuda::GetDeviceInfo(device_));
  spdlog::info("cuda device {}: {}", device_, cuda::DescribeDevice(device));
  TP_ASSIGN_OR_RETURN(config_, LoadModelConfig(options.model_path));
  if (options.dtype != "auto" && options.dtype != "bfloat16") {
    // Every supported GPU (sm_80+, docs/gpus.md) computes bf16 at fp16 speed;
    // float16-only GPUs (V100, T4) cannot load the kernels at all.
    return absl::InvalidArgumentError(absl::StrCat(
        "--dtype ", options.dtype, " is not supported; use bfloat16 (or auto): the CUDA kernels compute in "
        "bfloat16, which every supported GPU (A100/A800, A10, L40S, RTX 4090, H100/H200/H20, B200) runs at full "
        "speed; float16 and float32 checkpoints are converted to bfloat16 when loaded"));
  }
  TP_ASSIGN_OR_RETURN(quant_, ChooseWeightQuant(options, device, config_));
  TP_ASSIGN_OR_RETURN(const cuda::KvCacheDtype kv_cache,
                      cuda::ChooseKvCacheDtype(options.kv_cache_dtype, device.name, device.major, device.minor));
  if (quant_ == cuda::WeightQuant::kInt && options.load_format == "dummy") {
    // The dummy weights take the format's bits and group size from here, as
    // a checkpoint's would from its quantization_config.
    TP_ASSIGN_OR_RETURN(config_.quantization, DummyIntQuant(options.quantization));
  }
  const int max_len = options.max_model_len > 0 ? options.max_model_len : config_.max_position_embeddings;
  if (max_len > config_.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("--max-model-len ", max_len, " exceeds the model's max_position_embeddings ",
                                                   config_.max_position_embeddings));
  }
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->world_size() : 1;
  TP_ASSIGN_OR_RETURN(cuda::Partition part, cuda::MakePartition(config_, rank, world));
  {
    size_t free = 0, total = 0;
    TP_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    TP_RETURN_IF_ERROR(cuda::CheckWeightsFit(
        config_, part, {device.name, static_cast<int64_t>(total), static_cast<int64_t>(free)}, quant_));
  }
  cuda::ModelWeights weights;
  std::string dir = options.model_path;
  if (dir.size() >= 11 && dir.compare(dir.size() - 11, 11, "config.json") == 0) {
    dir = dir.size() == 11 ? "." : dir.substr(0, dir.size() - 12);
  }
  if (options.load_format == "dummy") {
    TP_ASSIGN_OR_RETURN(weights, cuda::MakeDummyWeights(config_, part, options.seed, quant_));
  } else if (options.load_format == "auto" || options.load_format == "safetensors") {
    TP_ASSIGN_OR_RETURN(weights, cuda::LoadSafetensorsWeights(dir, config_, part, quant_, kv_cache));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown --load-format ", options.load_format,
                                                   " (auto, safetensors, dummy)"));
  }
  cuda::ModelLimits limits;
  limits.max_tokens = options.max_num_batched_tokens;
  limits.max_seqs = options.max_num_seqs;
  limits.max_model_len = max_len;
  limits.block_size = options.block_size;
  limits.kv_cache = kv_cache;
  auto model = CudaModel::Create(config_, part, std::move(weights), comm, limits, stream_);
  if (absl::IsResourceExhausted(model.status())) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the activation buffers for --max-num-batched-tokens ", limits.max_tokens, " and --max-num-seqs ",
        limits.max_seqs, " do not fit next to the weights: lower them or --max-model-len, or raise "
        "--tensor-parallel-size (", model.status().message(), ")"));
  }
  TP_ASSIGN_OR_RETURN(model_, std::move(model));
  input_ = std::make_unique<StepInput>(limits.max_seqs, model_->max_blocks_per_seq(), limits.max_tokens,
                                       limits.block_size);
  TP_ASSIGN_OR_RETURN(GenerationConfig gen, LoadGenerationConfig(dir));
  eos_token_ids_ = EosTokenIds(config_, gen);
  TP_ASSIGN_OR_RETURN(sampler_, cuda::Sampler::Create(config_.vocab_size, limits.max_seqs, eos_token_ids_));
  spdlog::info("cuda backend: rank {}/{} on {}: {} layers, {:.2f} GiB of weights ({}{}{})", rank, world,
               device_name(), config_.num_hidden_layers, model_->weight_bytes() / kGiB, options.load_format,
               quant_ == cuda::WeightQuant::kFp8   ? std::string(", FP8 linear layers")
               : quant_ == cuda::WeightQuant::kInt ? ", packed " + config_.quantization.Describe() + " linear layers"
                                                   : std::string(),
               kv_cache == cuda::KvCacheDtype::kFp8E4m3 ? ", FP8 E4M3 KV cache" : "");
  return absl::OkStatus();
}

absl::StatusOr<MemoryProfile> CudaBackend::ProfileMemory(double fraction, int64_t /*kv_cache_bytes*/) {
  if (!model_) return absl::FailedPreconditionError("ProfileMemory before Load");
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--gpu-memory-utilization must be in (0, 1], got ", fraction));
  }
  TP_CUDA_CHECK(cudaSetDevice(device_));
  const auto& lim = model_->limits();
  // A worst-case step: max_num_batched_tokens of prefill, every sequence
  // sampling, over a throwaway cache just big enough for it.
  std::vector<std::vector<int32_t>> tokens, tables;
  StepBatch batch;
  SamplingParams greedy;
  int blocks = 0;
  for (int left = lim.max_tokens; left > 0 && static_cast<int>(tokens.size()) < lim.max_seqs;) {
    const int len = std::min(left, lim.max_model_len);
    tokens.emplace_back(len, 0);
    tables.emplace_back();
    for (int b = 0; b < (len + lim.block_size - 1) / lim.block_size; ++b) tables.back().push_back(blocks++);
    left -= len;
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    SeqStep s;
    s.seq_id = i;
    s.token_ids = tokens[i];
    s.num_prompt_tokens = s.num_scheduled_tokens = static_cast<int>(tokens[i].size());
    s.block_table = tables[i];
    s.sample = true;
    s.sampling = &greedy;
    batch.seqs.push_back(s);
  }
  {
    TP_ASSIGN_OR_RETURN(DeviceBuffer tmp, DeviceBuffer::Allocate(blocks * model_->BytesPerBlock()));
    model_->SetCache(tmp.data(), blocks);
    const int saved_blocks = num_blocks_;
    num_blocks_ = blocks;
    auto shape = Run(batch);
    if (shape.ok()) {
      auto sampled = sampler_->Sample(model_->logits(), input_->sampling(), stream_);
      if (!sampled.ok()) shape = sampled.status();
    }
    num_blocks_ = saved_blocks;
    model_->SetCache(nullptr, 0);
    TP_RETURN_IF_ERROR(shape.status());
    TP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  size_t free = 0, total = 0;
  TP_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  cuda::MemoryPlan plan;
  plan.total_bytes = static_cast<int64_t>(total);
  plan.used_bytes = static_cast<int64_t>(total - free);  // everything but the KV cache
  plan.weight_bytes = model_->weight_bytes();
  plan.bytes_per_block = model_->BytesPerBlock();
  plan.fraction = fraction;
  plan.block_size = lim.block_size;
  plan.quant = quant_;
  plan.max_model_len = lim.max_model_len;
  plan.max_num_batched_tokens = lim.max_tokens;
  MemoryProfile p;
  p.total_memory_bytes = plan.total_bytes;
  p.weight_bytes = plan.weight_bytes;
  p.peak_activation_bytes = plan.used_bytes - plan.weight_bytes;
  p.bytes_per_block = plan.bytes_per_block;
  p.num_blocks = cuda::KvCacheBlocks(plan);
  spdlog::info("cuda memory: total {:.2f} GiB x {} = {:.2f} GiB; weights {:.2f} GiB; activations+runtime {:.2f} GiB "
               "(profiled at {} tokens); KV {:.2f} GiB = {} blocks of {} KiB ({} tokens)",
               total / kGiB, fraction, total * fraction / kGiB, p.weight_bytes / kGiB,
               p.peak_activation_bytes / kGiB, lim.max_tokens, std::max(0.0, cuda::KvCacheBudget(plan)) / kGiB,
               p.num_blocks, p.bytes_per_block / 1024, int64_t{p.num_blocks} * lim.block_size);
  TP_RETURN_IF_ERROR(cuda::CheckKvCacheFits(config_, model_->partition().world_size, plan));
  return p;
}

absl::Status CudaBackend::InitCache(int num_blocks) {
  if (!model_) return absl::FailedPreconditionError("InitCache before Load");
  if (num_blocks <= 0) return absl::InvalidArgumentError(absl::StrCat("InitCache: num_blocks ", num_blocks));
  TP_CUDA_CHECK(cudaSetDevice(device_));
  for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
  graphs_.clear();
  model_->SetCache(nullptr, 0);
  cache_.Reset();
  input_->Clear();  // the rows' block ids meant the profiling cache
  TP_ASSIGN_OR_RETURN(cache_, DeviceBuffer::Allocate(static_cast<size_t>(num_blocks) * model_->BytesPerBlock()));
  TP_CUDA_CHECK(cudaMemsetAsync(cache_.data(), 0, cache_.bytes(), stream_));
  num_blocks_ = num_blocks;
  model_->SetCache(cache_.data(), num_blocks);
  if (!options_.enforce_eager) TP_RETURN_IF_ERROR(CaptureGraphs());
  TP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

// Graphs for decode batches at bucket sizes up to max_num_seqs, so every
// decode batch has one; a step of n sequences replays the smallest bucket
// >= n with padding rows (StepInput::PadDecodeRows) that write no cache slot.
absl::Status CudaBackend::CaptureGraphs() {
  const int max_seqs = model_->limits().max_seqs;
  std::vector<int> buckets = {1, 2, 4, 8};
  for (int b = 16; b < max_seqs; b += b < 64 ? 16 : 32) buckets.push_back(b);
  buckets.push_back(max_seqs);
  for (int b : buckets) {
    if (b > max_seqs || graphs_.count(b)) continue;
    StepInput padding(b, /*max_blocks=*/0, b, model_->limits().block_size);
    padding.PadDecodeRows(b);
    TP_ASSIGN_OR_RETURN(ForwardShape shape, model_->Upload(padding));
    shape.partition = model_->GraphPartition(b);
    TP_RETURN_IF_ERROR(model_->Forward(shape));  // warm-up: cuBLASLt plans for this size
    cudaGraph_t graph;
    TP_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const absl::Status st = model_->Forward(shape);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    TP_RETURN_IF_ERROR(st);
    TP_CUDA_CHECK(end);
    cudaGraphExec_t exec;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    TP_CUDA_CHECK(inst);
    graphs_[b] = exec;
  }
  spdlog::info("cuda backend: captured {} decode graphs (batch sizes up to {})", graphs_.size(), max_seqs);
  return absl::OkStatus();
}

absl::StatusOr<ForwardShape> CudaBackend::Run(const StepBatch& batch) {
  TP_CUDA_CHECK(cudaSetDevice(device_));
  if (batch.seqs.empty()) return absl::InvalidArgumentError("empty step");
  // The worker service validated the batch where it applied the step; the
  // input only checks that it fits the buffers.
  TP_RETURN_IF_ERROR(input_->Update(batch));
  const int n = input_->num_rows();
  auto graph = graphs_.lower_bound(n);
  const bool replay = input_->decode() && static_cast<int>(input_->sampling().size()) == n && graph != graphs_.end();
  if (replay) input_->PadDecodeRows(graph->first);
  absl::StatusOr<ForwardShape> shape = model_->Upload(*input_);
  if (!shape.ok()) {
    input_->Clear();  // the device table may have missed the edits
    return shape.status();
  }
  if (replay) {
    TP_CUDA_CHECK(cudaGraphLaunch(graph->second, stream_));
    return shape;
  }
  TP_RETURN_IF_ERROR(model_->Forward(*shape));
  return shape;
}

absl::StatusOr<std::vector<SampleResult>> CudaBackend::Step(const StepBatch& batch) {
  if (!model_ || cache_.data() == nullptr) return absl::FailedPreconditionError("Step before Load/InitCache");
  TP_ASSIGN_OR_RETURN(ForwardShape shape, Run(batch));
  // The forward pass is queued on the stream: the grammar masks (which need
  // the previous step's tokens, on the host since its Sample) are built
  // while it runs, and the sampler's kernels queue behind it.
  if (batch.fill_masks) batch.fill_masks();
  if (shape.num_samples == 0) {
    TP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return std::vector<SampleResult>();
  }
  TP_ASSIGN_OR_RETURN(std::vector<SampleResult> by_row, sampler_->Sample(model_->logits(), input_->sampling(), stream_));
  return InBatchOrder(std::move(by_row));
}

absl::StatusOr<std::vector<std::vector<float>>> CudaBackend::StepLogits(const StepBatch& batch) {
  if (!model_ || cache_.data() == nullptr) return absl::FailedPreconditionError("StepLogits before Load/InitCache");
  TP_RETURN_IF_ERROR(Run(batch).status());
  // Padding rows of a replayed graph have logits too; only real rows count.
  const int rows = static_cast<int>(input_->sampling().size());
  std::vector<std::vector<float>> out(rows, std::vector<float>(config_.vocab_size));
  for (int i = 0; i < rows; ++i) {
    TP_CUDA_CHECK(cudaMemcpyAsync(out[i].data(), model_->logits() + static_cast<size_t>(i) * config_.vocab_size,
                                  config_.vocab_size * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  }
  TP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return InBatchOrder(std::move(out));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError("no CUDA device is available");
  }
  if (device < 0 || device >= count) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA device ", device, " does not exist (", count, " present)"));
  }
  return std::unique_ptr<Backend>(new CudaBackend(device));
}

}  // namespace tpserve::worker
