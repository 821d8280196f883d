#include "worker/service/worker_service.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/model/model_config.h"
#include "common/model/tensor_parallel.h"
#include "common/security/group_token.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "worker/service/model_fingerprint.h"

namespace tpserve::worker {
namespace {

const std::string kWorkerVersion = absl::StrCat("tpserve-worker ", tpserve::kVersion);
constexpr absl::Duration kDefaultJoinTimeout = absl::Seconds(120);

// What each rank shares after LoadModel (fixed size for the all-gather).
struct LoadRecord {
  int32_t ok = 0;
  char fingerprint[24] = {};
  char detail[228] = {};  // the error, or the model path
};

void CopyTruncated(char* dst, size_t n, const std::string& src) {
  std::strncpy(dst, src.c_str(), n - 1);
  dst[n - 1] = '\0';
}

}  // namespace

WorkerService::WorkerService(const ServerConfig& config, std::string device_kind,
                             BackendMaker make_backend,
                             std::unique_ptr<CommFactory> comm_factory)
    : config_(config), device_kind_(std::move(device_kind)),
      make_backend_(std::move(make_backend)), comm_factory_(std::move(comm_factory)),
      rank_(config.rank) {}

WorkerService::~WorkerService() { Release(); }

absl::Status WorkerService::Require(Phase phase, const char* call) const {
  static const char* kNeeds[] = {"", "InitDistributed", "LoadModel", "ProfileMemory",
                                 "InitCache"};
  if (draining_.load()) return absl::UnavailableError("worker is shutting down");
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    if (!failure_.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "worker failed (", failure_, "); InitDistributed again to rejoin a group"));
    }
  }
  if (phase_ < phase) {
    return absl::FailedPreconditionError(absl::StrCat(
        call, " before ", kNeeds[static_cast<int>(phase)],
        ": the handshake is Info, CreateUniqueId (rank 0), InitDistributed, LoadModel, "
        "ProfileMemory, InitCache, then Step"));
  }
  return absl::OkStatus();
}

void WorkerService::ResetLocked() {
  ready_.store(false);
  ++stream_epoch_;
  sequences_.Clear();
  backend_.reset();
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    comm_.reset();
    failure_.clear();
  }
  model_.Clear();
  limits_ = StepLimits();
  relay_ = RelayOptions();
  group_token_.clear();
  phase_ = Phase::kFresh;
}

grpc::Status WorkerService::Info(grpc::ServerContext*, const v1::InfoRequest*,
                                 v1::InfoResponse* resp) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  resp->set_rank(rank_);
  resp->set_world_size(world_size_);
  resp->set_device(device_kind_);
  resp->set_version(kWorkerVersion);
  if (backend_ != nullptr) {
    resp->set_device_name(backend_->device_name());
    auto [total, free] = backend_->MemoryInfo();
    resp->set_total_memory_bytes(total);
    resp->set_free_memory_bytes(free);
  }
  if (phase_ >= Phase::kLoaded) *resp->mutable_model() = model_;
  return grpc::Status::OK;
}

grpc::Status WorkerService::CreateUniqueId(grpc::ServerContext*,
                                           const v1::CreateUniqueIdRequest*,
                                           v1::CreateUniqueIdResponse* resp) {
  if (draining_.load()) return ToGrpcStatus(absl::UnavailableError("worker is shutting down"));
  absl::StatusOr<std::string> id = comm_factory_->CreateUniqueId();
  if (!id.ok()) return ToGrpcStatus(id.status());
  resp->set_unique_id(*id);
  return grpc::Status::OK;
}

grpc::Status WorkerService::InitDistributed(grpc::ServerContext*,
                                            const v1::InitDistributedRequest* req,
                                            v1::InitDistributedResponse*) {
  // The router re-initialises a group after a rank failed; a step of the old
  // group may still be waiting on the lost rank, so it is aborted rather than
  // waited for.
  std::unique_lock<std::timed_mutex> lock = LockAbortingStuckStep(
      absl::Seconds(1), "the router is re-initialising the group");
  return ToGrpcStatus(DoInitDistributed(*req));
}

std::unique_lock<std::timed_mutex> WorkerService::LockAbortingStuckStep(
    absl::Duration grace, const char* reason) {
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(absl::ToInt64Milliseconds(grace)))) {
    spdlog::warn("step still running after {} ms; aborting the communicator ({})",
                 absl::ToInt64Milliseconds(grace), reason);
    {
      std::lock_guard<std::mutex> hl(health_mu_);
      if (comm_ != nullptr) comm_->Abort(reason);
    }
    lock.lock();
  }
  return lock;
}

absl::Status WorkerService::DoInitDistributed(const v1::InitDistributedRequest& req) {
  if (draining_.load()) return absl::UnavailableError("worker is shutting down");
  if (req.world_size() < 1 || req.rank() < 0 || req.rank() >= req.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InitDistributed: rank ", req.rank(), " is outside [0, world_size ",
        req.world_size(), ")"));
  }
  if (config_.rank >= 0 && req.rank() != config_.rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InitDistributed: this worker was started as rank ", config_.rank,
        " but was asked to join as rank ", req.rank()));
  }
  if (req.timeout_ms() < 0) {
    return absl::InvalidArgumentError("InitDistributed: timeout_ms must be >= 0");
  }
  if (absl::Status s = ValidateGroupToken(req.group_token()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("InitDistributed: ", s.message()));
  }
  // Rejoining (the router re-initialising the group) starts from scratch.
  ResetLocked();
  const absl::Duration timeout =
      req.timeout_ms() > 0 ? absl::Milliseconds(req.timeout_ms()) : kDefaultJoinTimeout;
  TP_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm,
                      comm_factory_->Join(req.rank(), req.world_size(),
                                          req.unique_id(), timeout));
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    comm_ = std::move(comm);
  }
  rank_ = req.rank();
  world_size_ = req.world_size();
  group_token_ = req.group_token();
  phase_ = Phase::kJoined;
  spdlog::info("joined the group as rank {} of {}", rank_, world_size_);
  return absl::OkStatus();
}

grpc::Status WorkerService::LoadModel(grpc::ServerContext* context,
                                      const v1::LoadModelRequest* req,
                                      v1::LoadModelResponse* resp) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  if (absl::Status s = CheckGroupToken(*context, group_token_, "LoadModel"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<v1::LoadModelResponse> loaded = DoLoadModel(*req);
  if (!loaded.ok()) return ToGrpcStatus(loaded.status());
  *resp = *std::move(loaded);
  return grpc::Status::OK;
}

absl::StatusOr<v1::LoadModelResponse> WorkerService::DoLoadModel(
    const v1::LoadModelRequest& req) {
  if (phase_ == Phase::kFresh && !draining_.load()) {
    // A single rank may skip the handshake's InitDistributed.
    rank_ = 0;
    world_size_ = 1;
    phase_ = Phase::kJoined;
  }
  TP_RETURN_IF_ERROR(Require(Phase::kJoined, "LoadModel"));
  if (phase_ >= Phase::kLoaded) {
    return absl::FailedPreconditionError(
        "LoadModel: a model is already loaded; InitDistributed again to start over");
  }
  const absl::Time start = absl::Now();
  LoadOptions options;
  options.model_path = req.model_path();
  options.load_format = req.load_format().empty() ? "auto" : req.load_format();
  options.dtype = req.dtype().empty() ? "auto" : req.dtype();
  options.quantization = req.quantization().empty() ? "auto" : req.quantization();
  options.kv_cache_dtype = req.kv_cache_dtype().empty() ? "auto" : req.kv_cache_dtype();
  options.seed = req.seed();
  options.max_model_len = req.max_model_len();
  options.block_size = req.block_size() > 0 ? req.block_size() : config_.block_size;
  options.max_num_seqs = req.max_num_seqs() > 0 ? req.max_num_seqs() : config_.max_num_seqs;
  // The router always sends its budget; a direct caller gets the same rule
  // from this worker's own flags.
  options.max_num_batched_tokens = req.max_num_batched_tokens() > 0
                                       ? req.max_num_batched_tokens()
                                       : ResolvedMaxNumBatchedTokens(config_);
  options.enforce_eager = req.enforce_eager();

  // Every rank reaches the fingerprint exchange, failed or not, so a rank
  // that cannot load fails its peers at once instead of leaving them waiting.
  std::string fingerprint;
  absl::Status local = [&]() -> absl::Status {
    if (options.model_path.empty()) {
      return absl::InvalidArgumentError("LoadModel: model_path is empty");
    }
    TP_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(options.model_path));
    TP_RETURN_IF_ERROR(CheckTensorParallel(config, world_size_));
    TP_ASSIGN_OR_RETURN(fingerprint, ModelFingerprint(options.model_path,
                                                      options.load_format, options.seed));
    TP_ASSIGN_OR_RETURN(backend_, make_backend_(rank_));
    return backend_->Load(options, comm_.get());
  }();
  absl::Status group = CheckPeersLoaded(local, fingerprint);
  if (!group.ok()) {
    backend_.reset();
    return group;
  }
  const ModelConfig& c = backend_->config();
  model_.Clear();
  model_.set_architecture(c.architecture);
  model_.set_vocab_size(c.vocab_size);
  model_.set_hidden_size(c.hidden_size);
  model_.set_num_layers(c.num_hidden_layers);
  model_.set_num_attention_heads(c.num_attention_heads);
  model_.set_num_kv_heads(c.num_key_value_heads);
  model_.set_head_dim(c.head_dim);
  model_.set_max_model_len(options.max_model_len > 0 ? options.max_model_len
                                                     : c.max_position_embeddings);
  // The backend's own ids, so the router stops on exactly what the sampler
  // treats as the end.
  for (int id : backend_->eos_token_ids()) model_.add_eos_token_ids(id);
  // Structured output: the grammar masks need the tokenizer's byte strings;
  // both samplers (CPU and CUDA) apply them.
  grammars_.reset();
  sequences_.set_grammars(nullptr);
  const std::string dir = std::filesystem::is_directory(options.model_path)
                              ? options.model_path
                              : std::filesystem::path(options.model_path).parent_path().string();
  // A new grammar's node masks are filled by two background threads on the
  // GPU, whose host cores are otherwise idle during the forward pass; the
  // CPU backend's forward needs every core, so there a node's mask is
  // computed when a step first needs it.
  const int precompute_threads = backend_->device() == "cuda" ? 2 : 0;
  auto grammars = structured::GrammarCache::ForModel(
      dir, std::vector<int32_t>(backend_->eos_token_ids().begin(), backend_->eos_token_ids().end()), c.vocab_size,
      precompute_threads);
  if (grammars.ok()) {
    grammars_ = std::move(*grammars);
    sequences_.set_grammars(grammars_.get());
    model_.set_applies_token_masks(true);
  } else {
    spdlog::warn("rank {}: structured output unavailable: {}", rank_,
                 std::string(grammars.status().message()));
  }
  model_.set_fingerprint(fingerprint);
  limits_.block_size = options.block_size;
  limits_.vocab_size = c.vocab_size;
  limits_.max_model_len = model_.max_model_len();
  limits_.max_num_seqs = options.max_num_seqs;
  limits_.max_num_batched_tokens = options.max_num_batched_tokens;
  phase_ = Phase::kLoaded;

  v1::LoadModelResponse resp;
  *resp.mutable_model() = model_;
  resp.set_weight_bytes(backend_->weight_bytes());
  resp.set_load_time_ms(absl::ToInt64Milliseconds(absl::Now() - start));
  spdlog::info("rank {}: loaded {} ({} MiB of weights) in {} ms", rank_,
               options.model_path, resp.weight_bytes() >> 20, resp.load_time_ms());
  return resp;
}

absl::Status WorkerService::CheckPeersLoaded(const absl::Status& local,
                                             const std::string& fingerprint) {
  if (world_size_ == 1 || comm_ == nullptr) return local;
  LoadRecord mine;
  mine.ok = local.ok() ? 1 : 0;
  CopyTruncated(mine.fingerprint, sizeof(mine.fingerprint), fingerprint);
  CopyTruncated(mine.detail, sizeof(mine.detail),
                local.ok() ? "" : std::string(local.message()));
  std::vector<LoadRecord> all(world_size_);
  absl::Status gathered =
      comm_factory_->AllGatherHost(*comm_, &mine, all.data(), sizeof(LoadRecord));
  if (!gathered.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "LoadModel: could not compare models with the other ranks: ", gathered.message()));
  }
  if (!local.ok()) return local;
  for (int r = 0; r < world_size_; ++r) {
    if (!all[r].ok) {
      return absl::FailedPreconditionError(
          absl::StrCat("LoadModel: rank ", r, " failed to load: ", all[r].detail));
    }
  }
  for (int r = 0; r < world_size_; ++r) {
    if (std::strcmp(all[r].fingerprint, all[0].fingerprint) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "LoadModel: rank ", r, " loaded a different model (fingerprint ",
          all[r].fingerprint, ") than rank 0 (", all[0].fingerprint,
          "); every rank of a group must load the same checkpoint"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve::worker
