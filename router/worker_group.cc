#include "router/worker_group.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/security/grpc_credentials.h"
#include "common/security/group_token.h"
#include "common/logging.h"

namespace tpserve::router {
namespace {

std::chrono::system_clock::time_point DeadlineAfterMs(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerGroup>> WorkerGroup::Create(
    const ServerConfig& config) {
  if (config.workers.empty()) {
    return absl::InvalidArgumentError(
        "the router needs at least one --worker host:port");
  }
  if (config.tensor_parallel_size > 0 &&
      static_cast<int>(config.workers.size()) != config.tensor_parallel_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tensor-parallel-size is ", config.tensor_parallel_size, " but ",
        config.workers.size(), " --worker addresses were given"));
  }
  TP_ASSIGN_OR_RETURN(std::unique_ptr<InternalTls> tls, LoadInternalTls(config));
  return std::unique_ptr<WorkerGroup>(new WorkerGroup(config, tls.get()));
}

WorkerGroup::WorkerGroup(const ServerConfig& config, const InternalTls* tls)
    : config_(config) {
  grpc::ChannelArguments args = InternalChannelArguments(tls);
  // Steps with many new sequences can pass the 4 MiB default.
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Fewer per-call filters (the handshake's deadlines are still enforced;
  // worker_group_test pins it).
  args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  // gRPC's own reconnect backoff grows to 2 minutes; a restarted rank must
  // be seen by the next handshake attempt, not minutes later.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Steps are small and frequent on a long-lived stream: bandwidth probes
  // (PINGs to ack) and window updates would cost extra writes per step.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20);
  for (const std::string& address : config_.workers) {
    auto channel = grpc::CreateCustomChannel(
        address, InternalChannelCredentials(tls), args);
    stubs_.push_back(v1::Worker::NewStub(channel));
    generic_stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
  }
}

WorkerGroup::~WorkerGroup() {
  CloseStream();
  step_queue_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (step_queue_.Next(&tag, &ok)) {
  }
}

void WorkerGroup::Abort() {
  std::lock_guard<std::mutex> lock(active_mu_);
  aborted_ = true;
  for (grpc::ClientContext* context : active_) context->TryCancel();
}

bool WorkerGroup::Register(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(active_mu_);
  if (aborted_) return false;
  active_.push_back(context);
  return true;
}

void WorkerGroup::Unregister(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(active_mu_);
  active_.erase(std::find(active_.begin(), active_.end(), context));
}

std::string WorkerGroup::RankName(int rank) const {
  return absl::StrCat("rank ", rank, " (", config_.workers[rank], ")");
}

absl::Status WorkerGroup::CallAll(
    const char* what, int timeout_ms,
    const std::function<grpc::Status(int, grpc::ClientContext*)>& call) {
  const int n = world_size();
  std::vector<grpc::Status> statuses(n);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < n; ++rank) {
    threads.emplace_back([&, rank] {
      grpc::ClientContext context;
      context.set_deadline(DeadlineAfterMs(timeout_ms));
      AttachGroupToken(&context, group_token_);
      if (!Register(&context)) {
        statuses[rank] = grpc::Status(grpc::StatusCode::CANCELLED,
                                      "the router is stopping");
        return;
      }
      statuses[rank] = call(rank, &context);
      Unregister(&context);
    });
  }
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < n; ++rank) {
    if (!statuses[rank].ok()) {
      return absl::UnavailableError(absl::StrCat(
          "worker ", RankName(rank), " failed in ", what, ": ",
          statuses[rank].error_message(), " (grpc code ",
          static_cast<int>(statuses[rank].error_code()), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GroupInfo> WorkerGroup::Handshake() {
  // The old group's stream goes first: its steps mean nothing to a new one.
  CloseStream();
  const int n = world_size();
  const int init_ms = config_.worker_init_timeout_ms;
  // Info answers at once on a live worker; don't wait the load timeout.
  const int info_ms = std::min(init_ms, 10000);

  std::vector<v1::InfoResponse> infos(n);
  absl::Status s = CallAll("Info", info_ms, [&](int r, grpc::ClientContext* c) {
    return stubs_[r]->Info(c, v1::InfoRequest(), &infos[r]);
  });
  if (!s.ok()) return s;
  for (int r = 0; r < n; ++r) {
    const v1::InfoResponse& info = infos[r];
    if ((info.rank() >= 0 && info.rank() != r) ||
        (info.world_size() > 0 && info.world_size() != n)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker ", RankName(r), " was started as rank ", info.rank(), " of ",
          info.world_size(), " but is listed as rank ", r, " of ", n,
          " (order of --worker)"));
    }
  }

  v1::CreateUniqueIdResponse unique_id;
  {
    grpc::ClientContext context;
    context.set_deadline(DeadlineAfterMs(info_ms));
    if (!Register(&context)) {
      return absl::UnavailableError("the router is stopping");
    }
    grpc::Status g =
        stubs_[0]->CreateUniqueId(&context, v1::CreateUniqueIdRequest(), &unique_id);
    Unregister(&context);
    if (!g.ok()) {
      return absl::UnavailableError(absl::StrCat("worker ", RankName(0),
                                                 " failed in CreateUniqueId: ",
                                                 g.error_message()));
    }
  }

  // A new group, a new token: calls of an earlier group (or anyone else's)
  // are refused by the workers from here on.
  group_token_ = NewGroupToken();
  s = CallAll("InitDistributed", init_ms, [&](int r, grpc::ClientContext* c) {
    v1::InitDistributedRequest req;
    req.set_group_token(group_token_);
    req.set_rank(r);
    req.set_world_size(n);
    req.set_unique_id(unique_id.unique_id());
    req.set_timeout_ms(init_ms);
    v1::InitDistributedResponse resp;
    return stubs_[r]->InitDistributed(c, req, &resp);
  });
  if (!s.ok()) return s;

  std::vector<v1::LoadModelResponse> loads(n);
  s = CallAll("LoadModel", init_ms, [&](int r, grpc::ClientContext* c) {
    v1::LoadModelRequest req;
    req.set_model_path(config_.model);
    req.set_load_format(config_.load_format);
    req.set_dtype(config_.dtype);
    req.set_quantization(config_.quantization);
    req.set_kv_cache_dtype(config_.kv_cache_dtype);
    req.set_seed(config_.seed);
    req.set_max_model_len(config_.max_model_len);
    req.set_block_size(config_.block_size);
    req.set_max_num_seqs(config_.max_num_seqs);
    req.set_max_num_batched_tokens(ResolvedMaxNumBatchedTokens(config_));
    req.set_enforce_eager(config_.enforce_eager);
    return stubs_[r]->LoadModel(c, req, &loads[r]);
  });
  if (!s.ok()) return s;
  for (int r = 1; r < n; ++r) {
    if (loads[r].model().fingerprint() != loads[0].model().fingerprint()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ranks loaded different models: ", RankName(0), " has fingerprint ",
          loads[0].model().fingerprint(), ", ", RankName(r), " has ",
          loads[r].model().fingerprint()));
    }
  }
  GroupInfo info;
  info.model = loads[0].model();
  info.device = infos[0].device();
  if (info.model.max_model_len() <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", RankName(0), " reported max_model_len ",
        info.model.max_model_len(), "; set --max-model-len"));
  }
  if (info.model.vocab_size() <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", RankName(0), " reported vocab_size ",
        info.model.vocab_size()));
  }

  std::vector<v1::ProfileMemoryResponse> profiles(n);
  s = CallAll("ProfileMemory", init_ms, [&](int r, grpc::ClientContext* c) {
    v1::ProfileMemoryRequest req;
    req.set_gpu_memory_utilization(config_.gpu_memory_utilization);
    req.set_cpu_kv_cache_bytes(
        static_cast<int64_t>(config_.cpu_kv_cache_space * (int64_t{1} << 30)));
    return stubs_[r]->ProfileMemory(c, req, &profiles[r]);
  });
  if (!s.ok()) return s;
  int min_rank = 0;
  for (int r = 1; r < n; ++r) {
    if (profiles[r].num_blocks() < profiles[min_rank].num_blocks()) min_rank = r;
  }
  info.num_blocks = profiles[min_rank].num_blocks();
  const int max_len = info.model.max_model_len();
  const int needed = (max_len + config_.block_size - 1) / config_.block_size;
  if (info.num_blocks < needed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the KV cache holds ", info.num_blocks, " blocks of ",
        config_.block_size, " tokens (", int64_t{info.num_blocks} * config_.block_size,
        " tokens, limited by worker ", RankName(min_rank),
        ") but one sequence of max_model_len ", max_len, " needs ", needed,
        " blocks; lower --max-model-len or raise --gpu-memory-utilization "
        "(GPU) / --cpu-kv-cache-space (CPU)"));
  }

  s = CallAll("InitCache", init_ms, [&](int r, grpc::ClientContext* c) {
    v1::InitCacheRequest req;
    req.set_num_blocks(info.num_blocks);
    if (r == 0) {
      // Rank 0 relays every step to the others: one message per step here,
      // whatever the TP size.
      for (int peer = 1; peer < n; ++peer) req.add_relay_to(config_.workers[peer]);
      req.set_step_timeout_ms(config_.worker_step_timeout_ms);
    }
    v1::InitCacheResponse resp;
    return stubs_[r]->InitCache(c, req, &resp);
  });
  if (!s.ok()) return s;
  if (s = OpenStream(); !s.ok()) return s;
  spdlog::info("worker group ready: {} rank(s) on {}, model {} ({} layers), "
               "{} KV blocks of {} tokens, max_model_len {}",
               n, info.device, info.model.architecture(),
               info.model.num_layers(), info.num_blocks, config_.block_size,
               max_len);
  return info;
}

}  // namespace tpserve::router
