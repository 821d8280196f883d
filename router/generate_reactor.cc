#include "router/generate_reactor.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include <grpcpp/server_context.h>

#include "common/grpc_status.h"

namespace tpserve::router {
namespace {

// Reactors one pump thread takes at a time, so that a burst after a step is
// spread over every pump thread.
constexpr size_t kPumpBatch = 64;

absl::Time RequestDeadline(const grpc::CallbackServerContext& context,
                           const v1::GenerateRequest& request) {
  absl::Time deadline = absl::InfiniteFuture();
  if (request.deadline_unix_ms() > 0) {
    deadline = absl::FromUnixMillis(request.deadline_unix_ms());
  }
  const auto grpc_deadline = context.deadline();
  if (grpc_deadline != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(grpc_deadline));
  }
  return deadline;
}

}  // namespace

WritePump::WritePump(int num_threads) {
  for (int i = 0; i < std::max(1, num_threads); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

WritePump::~WritePump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WritePump::Schedule(std::shared_ptr<GenerateReactor> reactor) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(reactor));
  }
  cv_.notify_one();
}

void WritePump::Loop() {
  std::vector<std::shared_ptr<GenerateReactor>> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const size_t n = std::min(kPumpBatch, queue_.size());
    batch.assign(std::make_move_iterator(queue_.begin()),
                 std::make_move_iterator(queue_.begin() + n));
    queue_.erase(queue_.begin(), queue_.begin() + n);
    // Leave the rest to another thread.
    if (!queue_.empty()) cv_.notify_one();
    lock.unlock();
    for (const auto& reactor : batch) {
      // Cleared before taking the outputs: a push from here on queues the
      // reactor again, so nothing waits for a later step.
      reactor->scheduled_.store(false);
      std::lock_guard<std::mutex> reactor_lock(reactor->mu_);
      reactor->PumpLocked();
    }
    // The last reference to a finished call may go here.
    batch.clear();
    lock.lock();
  }
}

GenerateReactor::GenerateReactor(Token, Engine* engine, WritePump* pump)
    : engine_(engine), pump_(pump) {}

GenerateReactor* GenerateReactor::Start(Engine* engine, WritePump* pump,
                                        grpc::CallbackServerContext* context,
                                        const v1::GenerateRequest& request) {
  auto reactor = std::make_shared<GenerateReactor>(Token{}, engine, pump);
  reactor->self_ = reactor;
  GenerateReactor* raw = reactor.get();
  auto stream = engine->Submit(request, RequestDeadline(*context, request));
  std::lock_guard<std::mutex> lock(raw->mu_);
  if (!stream.ok()) {
    raw->FinishLocked(ToGrpcStatus(stream.status(), context));
    return raw;
  }
  raw->stream_ = *std::move(stream);
  raw->stream_->SetListener([raw] {
    if (!raw->scheduled_.exchange(true)) {
      raw->pump_->Schedule(raw->shared_from_this());
    }
  });
  return raw;
}

void GenerateReactor::PumpLocked() {
  if (finishing_ || write_in_flight_ || stream_ == nullptr) return;
  outputs_.clear();
  stream_->Take(&outputs_);
  if (outputs_.empty()) return;
  // Everything sampled since the last write goes out in one message.
  response_.Clear();
  bool finished = false;
  for (SequenceOutput& out : outputs_) {
    if (!out.error.ok()) {
      ended_by_engine_ = true;
      FinishLocked(ToGrpcStatus(out.error));
      return;
    }
    response_.mutable_token_ids()->Add(out.token_ids.begin(),
                                       out.token_ids.end());
    for (auto& lp : out.logprobs) *response_.add_logprobs() = std::move(lp);
    v1::Usage* usage = response_.mutable_usage();
    usage->set_prompt_tokens(out.prompt_tokens);
    usage->set_completion_tokens(out.completion_tokens);
    usage->set_cached_tokens(out.cached_tokens);
    if (out.finished) {
      finished = true;
      response_.set_finish_reason(out.finish_reason);
      if (out.stop_token_id.has_value()) {
        response_.set_stop_token_id(*out.stop_token_id);
      }
    }
  }
  if (finished) {
    ended_by_engine_ = true;
    finishing_ = true;
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    return;
  }
  write_in_flight_ = true;
  StartWrite(&response_);
}

void GenerateReactor::FinishLocked(grpc::Status status) {
  if (finishing_) return;
  finishing_ = true;
  // One operation of each kind at a time: the status follows the write.
  if (write_in_flight_) {
    pending_finish_ = std::move(status);
    return;
  }
  Finish(std::move(status));
}

void GenerateReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  write_in_flight_ = false;
  if (pending_finish_.has_value()) {
    Finish(*std::move(pending_finish_));
    pending_finish_.reset();
    return;
  }
  if (!ok) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    return;
  }
  // Outputs that arrived during the write go out now, from this thread.
  PumpLocked();
}

void GenerateReactor::OnCancel() {
  bool cancel_request = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_request = stream_ != nullptr && !ended_by_engine_;
    FinishLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by client"));
  }
  // At once, not at the end of the call: the blocks go at the next step.
  if (cancel_request) engine_->Cancel(stream_->seq_id());
}

void GenerateReactor::OnDone() {
  if (stream_ != nullptr) {
    stream_->ClearListener();
    bool cancel_request = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_request = !ended_by_engine_;
    }
    // A write that failed ends the call without OnCancel.
    if (cancel_request) engine_->Cancel(stream_->seq_id());
  }
  // The pump may still hold a reference; the last one deletes the reactor.
  std::shared_ptr<GenerateReactor> self = std::move(self_);
}

}  // namespace tpserve::router
