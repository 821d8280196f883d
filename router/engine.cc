#include "router/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/finish_reason.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace tpserve::router {

void RequestStream::Take(std::vector<SequenceOutput>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  while (!outputs_.empty()) {
    out->push_back(std::move(outputs_.front()));
    outputs_.pop_front();
  }
}

void RequestStream::SetListener(std::function<void()> on_output) {
  std::lock_guard<std::mutex> lock(mu_);
  on_output_ = std::move(on_output);
  // Outputs pushed before the listener existed must not wait for the next.
  if (on_output_ && !outputs_.empty()) on_output_();
}

void RequestStream::ClearListener() {
  std::lock_guard<std::mutex> lock(mu_);
  on_output_ = nullptr;
}

void RequestStream::Push(SequenceOutput output) {
  std::lock_guard<std::mutex> lock(mu_);
  outputs_.push_back(std::move(output));
  // Under the lock, so that ClearListener can promise it is not running.
  if (on_output_) on_output_();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    const ServerConfig& config, EngineOptions options) {
  TP_ASSIGN_OR_RETURN(auto group, WorkerGroup::Create(config));
  TP_ASSIGN_OR_RETURN(auto metrics, RouterMetrics::Create());
  return std::unique_ptr<Engine>(
      new Engine(config, options, std::move(group), std::move(metrics)));
}

Engine::Engine(const ServerConfig& config, EngineOptions options,
               std::unique_ptr<WorkerGroup> group,
               std::unique_ptr<RouterMetrics> metrics)
    : config_(config),
      options_(options),
      group_(std::move(group)),
      metrics_(std::move(metrics)) {}

Engine::~Engine() { Stop(); }

void Engine::Start() { loop_ = std::thread([this] { Loop(); }); }

absl::StatusOr<std::shared_ptr<RequestStream>> Engine::Submit(
    const v1::GenerateRequest& request, absl::Time deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<uint64_t> id;
  if (stop_ || draining_) {
    id = absl::UnavailableError("the router is shutting down");
  } else if (state_ != v1::SERVING_STATE_READY || scheduler_ == nullptr) {
    id = absl::UnavailableError(
        absl::StrCat("the worker group is not ready: ", state_message_));
  } else {
    id = scheduler_->Add(request, deadline);
  }
  if (!id.ok()) {
    absl::Status status = id.status();
    metrics_->requests_rejected_total
        ->WithLabels({absl::StatusCodeToString(status.code())})
        .value()
        ->Increment();
    if (status.code() == absl::StatusCode::kResourceExhausted) {
      status = WithRetryAfterMs(std::move(status), RetryAfterMs());
    }
    return status;
  }
  if (!request.sampling().structured_output().empty()) {
    metrics_->structured_output_requests_total->Increment();
  }
  auto stream = std::make_shared<RequestStream>();
  stream->seq_id_ = *id;
  stream->arrival_ = absl::Now();
  streams_[*id] = stream;
  RefreshMetrics();
  cv_.notify_all();
  return stream;
}

void Engine::Cancel(uint64_t seq_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (scheduler_ == nullptr || !streams_.contains(seq_id)) return;
  scheduler_->Abort(seq_id, absl::CancelledError("cancelled by the client"));
  cv_.notify_all();
}

void Engine::Drain(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  drained_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                       [&] { return streams_.empty() || stop_; });
}

void Engine::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  // A handshake (LoadModel may take minutes) or a hung step must not hold
  // the shutdown.
  group_->Abort();
  if (loop_.joinable()) loop_.join();
  std::lock_guard<std::mutex> lock(mu_);
  Deliver(&undelivered_);
  if (scheduler_ != nullptr) {
    std::vector<SequenceOutput> outputs;
    scheduler_->AbortAll(absl::UnavailableError("the router is shutting down"),
                         &outputs);
    Deliver(&outputs);
  }
  drained_cv_.notify_all();
}

bool Engine::Connect(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  absl::StatusOr<GroupInfo> info = group_->Handshake();
  lock.lock();
  if (!info.ok()) {
    state_message_ = std::string(info.status().message());
    ++failed_handshakes_;
    spdlog::warn("worker handshake failed: {}", state_message_);
    return false;
  }
  SchedulerConfig sc;
  sc.num_blocks = info->num_blocks;
  sc.block_size = config_.block_size;
  sc.max_model_len = info->model.max_model_len();
  sc.max_num_seqs = config_.max_num_seqs;
  // The same budget the workers sized their buffers for.
  sc.max_num_batched_tokens = ResolvedMaxNumBatchedTokens(config_);
  sc.max_queued_requests = config_.max_queued_requests;
  sc.max_waiting_tokens = config_.max_waiting_tokens;
  sc.enable_prefix_caching = config_.enable_prefix_caching;
  sc.priority_policy = config_.scheduling_policy == "priority";
  sc.vocab_size = info->model.vocab_size();
  sc.eos_token_ids.assign(info->model.eos_token_ids().begin(),
                          info->model.eos_token_ids().end());
  sc.applies_token_masks = info->model.applies_token_masks();
  sc.seed = config_.seed;
  sc.first_seq_id = next_seq_id_;
  scheduler_ = std::make_unique<Scheduler>(std::move(sc));
  seen_preemptions_ = seen_queries_ = seen_hits_ = 0;
  model_ = info->model;
  state_ = v1::SERVING_STATE_READY;
  state_message_.clear();
  failed_handshakes_ = 0;
  RefreshMetrics();
  return true;
}

void Engine::Loop() {
  absl::Duration backoff = options_.initial_backoff;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (state_ != v1::SERVING_STATE_READY) {
      if (Connect(lock)) {
        backoff = options_.initial_backoff;
      } else if (!stop_) {
        cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff),
                     [&] { return stop_; });
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      continue;
    }
    if (static_cast<int>(in_flight_.size()) < kPipelineDepth &&
        !wait_for_answer_ && scheduler_->HasWork()) {
      SendStep(lock);
      continue;
    }
    Deliver(&undelivered_);
    if (!in_flight_.empty()) {
      ReceiveStep(lock);
      continue;
    }
    cv_.wait(lock, [&] { return stop_ || scheduler_->HasWork(); });
  }
  in_flight_.clear();
}

void Engine::SendStep(std::unique_lock<std::mutex>& lock) {
  std::vector<SequenceOutput> outputs;
  InFlightStep step;
  if (!spare_plans_.empty()) {
    step.plan = std::move(spare_plans_.back());
    spare_plans_.pop_back();
  }
  scheduler_->Schedule(absl::Now(), &step.plan, &outputs);
  Deliver(&outputs);
  if (step.plan.needs_sync || step.plan.empty()) {
    spare_plans_.push_back(std::move(step.plan));
    RefreshMetrics();
    if (!in_flight_.empty()) {
      wait_for_answer_ = true;
    } else {
      // Only waiting work that cannot start yet (cannot normally happen:
      // admission guarantees a lone request fits); don't spin.
      cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
    return;
  }
  lock.unlock();
  const absl::Status sent = group_->Send(step.plan.request);
  lock.lock();
  if (!sent.ok()) {
    FailGroup(sent);
    return;
  }
  step.sent = absl::Now();
  in_flight_.push_back(std::move(step));
  next_seq_id_ = scheduler_->next_seq_id();
  Deliver(&undelivered_);
  RefreshMetrics();
}

void Engine::ReceiveStep(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  absl::Status status = group_->Receive(&answer_);
  lock.lock();
  InFlightStep step = std::move(in_flight_.front());
  in_flight_.pop_front();
  wait_for_answer_ = false;
  if (stop_) return;  // Stop() ends every request itself.
  if (status.ok()) status = scheduler_->Update(step.plan, answer_, &undelivered_);
  spare_plans_.push_back(std::move(step.plan));
  if (!status.ok()) {
    FailGroup(status.code() == absl::StatusCode::kUnavailable
                  ? status
                  : absl::UnavailableError(absl::StrCat(
                        "worker rank 0 returned a bad step: ",
                        status.message())));
    return;
  }
  const absl::Time now = absl::Now();
  // A step's share of the wall time: from when the workers could start it
  // (it was sent, or the step before was answered) to its answer.
  const double seconds =
      absl::ToDoubleSeconds(now - std::max(step.sent, last_answer_));
  last_answer_ = now;
  metrics_->step_duration_seconds->Observe(seconds);
  metrics_->tokens_per_step->Observe(step.plan.num_scheduled_tokens);
  if (answer_.mask_time_us() > 0) {
    metrics_->structured_output_mask_seconds->Observe(answer_.mask_time_us() * 1e-6);
  }
  ewma_step_seconds_ = 0.9 * ewma_step_seconds_ + 0.1 * seconds;
  RefreshMetrics();
}

void Engine::FailGroup(const absl::Status& failure) {
  spdlog::error("worker group failed, ending {} request(s): {}",
                streams_.size(), std::string(failure.message()));
  metrics_->worker_failures_total->Increment();
  Deliver(&undelivered_);
  std::vector<SequenceOutput> outputs;
  scheduler_->AbortAll(failure, &outputs);
  Deliver(&outputs);
  in_flight_.clear();
  wait_for_answer_ = false;
  state_ = v1::SERVING_STATE_UNHEALTHY;
  state_message_ = std::string(failure.message());
  next_seq_id_ = scheduler_->next_seq_id();
  RefreshMetrics();
}

void Engine::Deliver(std::vector<SequenceOutput>* outputs) {
  const absl::Time now = absl::Now();
  for (SequenceOutput& out : *outputs) {
    auto it = streams_.find(out.seq_id);
    if (it == streams_.end()) continue;
    RequestStream& stream = *it->second;
    if (!out.token_ids.empty()) {
      metrics_->generation_tokens_total->Increment(
          static_cast<double>(out.token_ids.size()));
      if (!stream.got_first_token_) {
        stream.got_first_token_ = true;
        metrics_->time_to_first_token_seconds->Observe(
            absl::ToDoubleSeconds(now - stream.arrival_));
        metrics_->prompt_tokens_total->Increment(out.prompt_tokens);
      }
    }
    const bool finished = out.finished;
    if (finished) {
      metrics_->request_success_total->WithLabels({FinishReasonName(out.finish_reason)})
          .value()
          ->Increment();
      metrics_->e2e_request_latency_seconds->Observe(
          absl::ToDoubleSeconds(now - stream.arrival_));
    }
    stream.Push(std::move(out));
    if (finished) streams_.erase(it);
  }
  outputs->clear();
  if (streams_.empty()) drained_cv_.notify_all();
}

void Engine::RefreshMetrics() {
  if (scheduler_ == nullptr) return;
  const Scheduler& s = *scheduler_;
  metrics_->num_requests_running->Set(s.num_running());
  metrics_->num_requests_waiting->Set(s.num_waiting());
  metrics_->kv_cache_usage_perc->Set(
      1.0 - static_cast<double>(s.num_free_blocks()) / s.num_blocks());
  metrics_->num_preemptions_total->Increment(
      static_cast<double>(s.num_preemptions() - seen_preemptions_));
  metrics_->prefix_cache_queries_total->Increment(
      static_cast<double>(s.prefix_queried_tokens() - seen_queries_));
  metrics_->prefix_cache_hits_total->Increment(
      static_cast<double>(s.prefix_hit_tokens() - seen_hits_));
  seen_preemptions_ = s.num_preemptions();
  seen_queries_ = s.prefix_queried_tokens();
  seen_hits_ = s.prefix_hit_tokens();
  const double queries = metrics_->prefix_cache_queries_total->Value();
  metrics_->prefix_cache_hit_rate->Set(
      queries > 0 ? metrics_->prefix_cache_hits_total->Value() / queries : 0);
}

int64_t Engine::RetryAfterMs() const {
  // Roughly how long the queue ahead takes to start: one step per budget's
  // worth of waiting prompt tokens, at the recent step time.
  const double steps =
      1.0 + (scheduler_ == nullptr
                 ? 0.0
                 : static_cast<double>(scheduler_->num_waiting_tokens()) /
                       scheduler_->config().max_num_batched_tokens);
  const int64_t ms = static_cast<int64_t>(steps * ewma_step_seconds_ * 1000);
  return std::clamp<int64_t>(ms, 100, 30000);
}

v1::HealthResponse Engine::Health() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::HealthResponse h;
  h.set_state(state_);
  h.set_message(state_message_);
  h.set_failed_handshakes(failed_handshakes_);
  if (state_ == v1::SERVING_STATE_READY) *h.mutable_model() = model_;
  h.set_tensor_parallel_size(group_->world_size());
  return h;
}

v1::StatsResponse Engine::Stats(bool include_metrics_text) {
  v1::StatsResponse s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.set_state(state_);
    if (scheduler_ != nullptr) {
      s.set_num_requests_running(scheduler_->num_running());
      s.set_num_requests_waiting(scheduler_->num_waiting());
      s.set_num_waiting_tokens(scheduler_->num_waiting_tokens());
      s.set_num_kv_blocks_total(scheduler_->num_blocks());
      s.set_num_kv_blocks_free(scheduler_->num_free_blocks());
      s.set_kv_cache_usage(1.0 -
                           static_cast<double>(scheduler_->num_free_blocks()) /
                               scheduler_->num_blocks());
    }
    s.set_prefix_cache_hit_rate(metrics_->prefix_cache_hit_rate->Value());
    s.set_num_preemptions_total(
        static_cast<int64_t>(metrics_->num_preemptions_total->Value()));
  }
  if (include_metrics_text) s.set_prometheus_text(PrometheusText());
  return s;
}

std::string Engine::PrometheusText() { return metrics_->registry.Render(); }

}  // namespace tpserve::router
