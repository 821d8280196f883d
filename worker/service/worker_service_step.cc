// WorkerService: memory, cache, the step stream, health and shutdown.
#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/security/group_token.h"
#include "worker/service/step_stream_server.h"
#include "worker/service/worker_service.h"

namespace tpserve::worker {

grpc::Status WorkerService::ProfileMemory(grpc::ServerContext* context,
                                          const v1::ProfileMemoryRequest* req,
                                          v1::ProfileMemoryResponse* resp) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  absl::Status s = CheckGroupToken(*context, group_token_, "ProfileMemory");
  if (s.ok()) s = Require(Phase::kLoaded, "ProfileMemory");
  if (!s.ok()) return ToGrpcStatus(s);
  if (phase_ >= Phase::kReady) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "ProfileMemory after InitCache: the cache is already allocated"));
  }
  const double fraction = req->gpu_memory_utilization() > 0
                              ? req->gpu_memory_utilization()
                              : config_.gpu_memory_utilization;
  if (fraction > 1.0) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "gpu_memory_utilization must be in (0, 1], got ", fraction)));
  }
  if (req->cpu_kv_cache_bytes() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("cpu_kv_cache_bytes must be >= 0"));
  }
  const int64_t kv_bytes =
      req->cpu_kv_cache_bytes() > 0
          ? req->cpu_kv_cache_bytes()
          : static_cast<int64_t>(config_.cpu_kv_cache_space * (int64_t{1} << 30));
  absl::StatusOr<MemoryProfile> p = backend_->ProfileMemory(fraction, kv_bytes);
  if (!p.ok()) return ToGrpcStatus(p.status());
  resp->set_num_blocks(p->num_blocks);
  resp->set_bytes_per_block(p->bytes_per_block);
  resp->set_total_memory_bytes(p->total_memory_bytes);
  resp->set_weight_bytes(p->weight_bytes);
  resp->set_peak_activation_bytes(p->peak_activation_bytes);
  bytes_per_block_ = p->bytes_per_block;
  phase_ = Phase::kProfiled;
  return grpc::Status::OK;
}

grpc::Status WorkerService::InitCache(grpc::ServerContext* context,
                                      const v1::InitCacheRequest* req,
                                      v1::InitCacheResponse* resp) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  absl::Status s = CheckGroupToken(*context, group_token_, "InitCache");
  if (s.ok()) s = Require(Phase::kProfiled, "InitCache");
  if (s.ok() && phase_ >= Phase::kReady) {
    s = absl::FailedPreconditionError("InitCache: the cache is already allocated");
  }
  if (s.ok() && req->num_blocks() < 1) {
    s = absl::InvalidArgumentError(absl::StrCat(
        "InitCache: num_blocks must be >= 1, got ", req->num_blocks()));
  }
  if (s.ok() && req->relay_to_size() > 0 && rank_ != 0) {
    s = absl::InvalidArgumentError(absl::StrCat(
        "InitCache: only rank 0 relays steps, this is rank ", rank_));
  }
  if (s.ok()) s = backend_->InitCache(req->num_blocks());
  if (!s.ok()) return ToGrpcStatus(s);
  limits_.num_blocks = req->num_blocks();
  relay_.peers.assign(req->relay_to().begin(), req->relay_to().end());
  relay_.peer_timeout = absl::Milliseconds(req->step_timeout_ms() > 0 ? req->step_timeout_ms() : 30000);
  relay_.credentials = peer_credentials_;
  relay_.channel_args = peer_channel_args_;
  relay_.group_token = group_token_;
  resp->set_cache_bytes(bytes_per_block_ * req->num_blocks());
  phase_ = Phase::kReady;
  ready_.store(true);
  spdlog::info("rank {}: KV cache of {} blocks ready", rank_, req->num_blocks());
  return grpc::Status::OK;
}

namespace {

// FNV-1a over the (seq_id, token) pairs, in batch order.
uint64_t SampledDigest(const std::vector<SampleResult>& results) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ULL;
    }
  };
  for (const SampleResult& r : results) {
    mix(r.seq_id);
    mix(static_cast<uint32_t>(r.token_id));
  }
  return h;
}

}  // namespace

grpc::Status WorkerService::StepStream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  uint64_t epoch = 0;
  RelayOptions relay;
  {
    std::lock_guard<std::timed_mutex> lock(mu_);
    // Checked before the epoch moves: a stream without the token must not
    // replace the router's.
    absl::Status s = CheckGroupToken(*context, group_token_, "StepStream");
    if (s.ok()) s = Require(Phase::kReady, "Step");
    if (!s.ok()) return ToGrpcStatus(s);
    epoch = ++stream_epoch_;
    relay = relay_;
  }
  {
    std::lock_guard<std::mutex> lock(health_mu_);
    streams_.push_back(context);
  }
  grpc::Status status = ServeStepStream(
      context, stream, relay, [&](const v1::StepRequest& step, v1::StepResponse* answer) {
        std::lock_guard<std::timed_mutex> lock(mu_);
        return DoStep(step, epoch, answer);
      });
  std::lock_guard<std::mutex> lock(health_mu_);
  streams_.erase(std::find(streams_.begin(), streams_.end(), context));
  return status;
}

absl::Status WorkerService::DoStep(const v1::StepRequest& req, uint64_t epoch,
                                   v1::StepResponse* resp) {
  TP_RETURN_IF_ERROR(Require(Phase::kReady, "Step"));
  if (epoch != stream_epoch_) {
    return absl::AbortedError(
        "this step stream was replaced by a newer one (the router re-ran the handshake)");
  }
  const absl::Time start = absl::Now();
  resp->set_step_id(req.step_id());
  TP_ASSIGN_OR_RETURN(StepBatch batch, sequences_.Apply(req, limits_));
  // A step that only finishes sequences runs no forward pass (every rank
  // gets the same step, so none of them enters a collective).
  absl::StatusOr<std::vector<SampleResult>> results =
      batch.seqs.empty() ? std::vector<SampleResult>() : backend_->Step(batch);
  if (!results.ok()) {
    sequences_.Rollback();
    // A failed collective leaves the ranks out of step: stop taking steps
    // until the router re-initialises the group.
    absl::Status peers = comm_ != nullptr ? comm_->Health() : absl::OkStatus();
    std::lock_guard<std::mutex> lock(health_mu_);
    if (!peers.ok()) {
      failure_ = std::string(peers.message());
    } else if (results.status().code() == absl::StatusCode::kUnavailable ||
               results.status().code() == absl::StatusCode::kDeadlineExceeded ||
               results.status().code() == absl::StatusCode::kInternal) {
      failure_ = std::string(results.status().message());
    }
    return results.status();
  }
  sequences_.Commit(*results);
  resp->set_sampled_digest(SampledDigest(*results));
  if (rank_ == 0) {
    for (const SampleResult& r : *results) {
      v1::SampledToken* t = resp->add_sampled();
      t->set_seq_id(r.seq_id);
      t->set_token_id(r.token_id);
      if (r.has_logprobs) {
        v1::TokenLogprob* lp = t->mutable_logprob();
        lp->set_token_id(r.token_id);
        lp->set_logprob(r.logprob);
        for (const auto& [id, logprob] : r.top_logprobs) {
          v1::TopLogprob* top = lp->add_top();
          top->set_token_id(id);
          top->set_logprob(logprob);
        }
      }
    }
  }
  resp->set_step_time_us(absl::ToInt64Microseconds(absl::Now() - start));
  resp->set_mask_time_us(sequences_.last_mask_us());
  return absl::OkStatus();
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const v1::WorkerHealthRequest*,
                                   v1::WorkerHealthResponse* resp) {
  std::lock_guard<std::mutex> lock(health_mu_);
  absl::Status peers = comm_ != nullptr ? comm_->Health() : absl::OkStatus();
  if (!peers.ok()) {
    resp->set_healthy(false);
    resp->set_state("peer_lost");
    resp->set_message(std::string(peers.message()));
  } else if (!failure_.empty()) {
    resp->set_healthy(false);
    resp->set_state("failed");
    resp->set_message(failure_);
  } else if (draining_.load()) {
    resp->set_healthy(false);
    resp->set_state("failed");
    resp->set_message("shutting down");
  } else if (!ready_.load()) {
    resp->set_healthy(false);
    resp->set_state("starting");
    resp->set_message("waiting for the handshake (InitDistributed, LoadModel, "
                      "ProfileMemory, InitCache)");
  } else {
    resp->set_healthy(true);
    resp->set_state("ready");
  }
  return grpc::Status::OK;
}

void WorkerService::SetPeerChannel(std::shared_ptr<grpc::ChannelCredentials> credentials,
                                   grpc::ChannelArguments args) {
  std::lock_guard<std::timed_mutex> lock(mu_);
  peer_credentials_ = std::move(credentials);
  peer_channel_args_ = std::move(args);
}

void WorkerService::Drain(absl::Duration grace) {
  draining_.store(true);
  std::unique_lock<std::timed_mutex> lock =
      LockAbortingStuckStep(grace, "worker shutting down");
  std::lock_guard<std::mutex> hl(health_mu_);
  for (grpc::ServerContext* stream : streams_) stream->TryCancel();
}

void WorkerService::Release() {
  std::lock_guard<std::timed_mutex> lock(mu_);
  ready_.store(false);
  sequences_.Clear();
  backend_.reset();
  std::lock_guard<std::mutex> hl(health_mu_);
  comm_.reset();
}

}  // namespace tpserve::worker
