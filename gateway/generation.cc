#include "gateway/generation.h"

#include <algorithm>

#include "common/finish_reason.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "gateway/http_error.h"

namespace tpserve::gateway {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Messages a call may hand over before the consumer has taken them; then it
// stops reading (backpressure: the router's write waits on the stream's flow
// control window and the router coalesces the tokens behind it).
constexpr int kMaxQueuedMessages = 2;

}  // namespace

// One attempt of one sequence on one router. Its callbacks run on gRPC's
// threads and only hand messages over; the Generation owns it and frees it
// after OnDone.
class Generation::Call final : public grpc::ClientReadReactor<tpserve::v1::GenerateResponse> {
 public:
  Call(Generation* generation, int seq, int router, tpserve::v1::GenerateRequest request)
      : generation_(generation), seq_(seq), router_(router), request_(std::move(request)) {}

  void Start(tpserve::v1::Router::Stub* stub) {
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    Arrival a;
    a.call = this;
    a.time = Clock::now();
    a.message.Swap(&response_);
    if (GatewayMetrics* m = generation_->metrics_; m != nullptr) {
      (got_message_ ? m->inter_token_latency : m->time_to_first_token)
          ->Observe(Seconds(a.time - last_time_));
    }
    got_message_ = true;
    last_time_ = a.time;
    // Paused otherwise: the consumer resumes the read once it caught up.
    if (generation_->OnArrival(std::move(a))) StartRead(&response_);
  }

  // Ends a pause (Generation::mu_ not held): reads again if `read`, and
  // drops the hold the pause took.
  void ResumeRead(bool read) {
    if (read) StartRead(&response_);
    RemoveHold();
  }

  void OnDone(const grpc::Status& status) override {
    generation_->pool_->OnRequestEnd(router_);
    Arrival a;
    a.call = this;
    a.time = Clock::now();
    a.end = status;
    // The last touch: the Generation may be destroyed once this returns.
    generation_->OnArrival(std::move(a));
  }

  int seq() const { return seq_; }
  int router() const { return router_; }
  grpc::ClientContext& context() { return context_; }

  // Messages handed over but not yet taken by the consumer, and whether
  // reading is paused because of them (Generation::mu_).
  int queued = 0;
  bool paused = false;

 private:
  Generation* const generation_;
  const int seq_;
  const int router_;
  grpc::ClientContext context_;
  const tpserve::v1::GenerateRequest request_;
  tpserve::v1::GenerateResponse response_;
  // Reactor-thread state, for the latency metrics.
  bool got_message_ = false;
  Clock::time_point last_time_ = generation_->arrival_;
};

Generation::Generation(RouterPool* pool, const TextService* text, GatewayMetrics* metrics,
                       std::string request_id, std::vector<SequenceSpec> specs,
                       Clock::time_point arrival, GenerationRegistry* registry)
    : pool_(pool),
      text_(text),
      metrics_(metrics),
      registry_(registry),
      request_id_(std::move(request_id)),
      specs_(std::move(specs)),
      arrival_(arrival),
      seqs_(specs_.size()),
      open_(static_cast<int>(specs_.size())) {
  if (registry_ != nullptr) registry_->Add(this);
}

Generation::~Generation() {
  Cancel();
  std::vector<Call*> paused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& call : calls_) {
      if (call->paused) paused.push_back(call.get());
      call->paused = false;
    }
  }
  // Their holds go, so that the cancelled calls can end.
  for (Call* call : paused) call->ResumeRead(false);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return live_calls_ == 0; });
  }
  if (metrics_ != nullptr) {
    // Sequences nobody waited for (the client went away mid-stream).
    for (const SeqState& s : seqs_) {
      if (!s.done) metrics_->CountFinished("abort");
    }
  }
  if (registry_ != nullptr) registry_->Remove(this);
}

void Generation::Start() {
  for (int seq = 0; seq < size(); ++seq) {
    const SequenceSpec& spec = specs_[seq];
    seqs_[seq].decoder = text_->NewDecoder(spec.skip_special_tokens, spec.stop);
    if (!StartAttempt(seq)) Fail(seq, absl::UnavailableError("no router is available"));
  }
}

bool Generation::StartAttempt(int seq) {
  const SequenceSpec& spec = specs_[seq];
  SeqState& s = seqs_[seq];
  std::optional<int> router = pool_->Pick(spec.prompt_token_ids, s.tried);
  if (!router.has_value()) return false;
  tpserve::v1::GenerateRequest request;
  request.set_request_id(spec.index == 0 ? request_id_
                                         : request_id_ + "-" + std::to_string(spec.index));
  request.mutable_prompt_token_ids()->Add(spec.prompt_token_ids.begin(),
                                          spec.prompt_token_ids.end());
  *request.mutable_sampling() = spec.sampling;
  request.set_priority(spec.priority);
  Call* call = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Aborted meanwhile: Next ends the sequence with the abort's status.
    if (abort_.has_value()) return true;
    calls_.push_back(std::make_unique<Call>(this, seq, *router, std::move(request)));
    call = calls_.back().get();
    ++live_calls_;
  }
  s.call = call;
  pool_->OnRequestStart(*router);
  call->Start(pool_->stub(*router));
  return true;
}

void Generation::Cancel() { Abort(absl::CancelledError("request cancelled")); }

void Generation::Abort(absl::Status status) {
  std::vector<Call*> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!abort_.has_value()) abort_ = std::move(status);
    for (const auto& call : calls_) calls.push_back(call.get());
    cv_.notify_all();
  }
  // Outside the lock, which the calls' callbacks take. Calls that already
  // ended ignore it (the context keeps the call alive); none is freed before
  // the destructor, which cannot run concurrently with an abort (see
  // GenerationRegistry and the disconnect watcher's Unwatch).
  for (Call* call : calls) call->context().TryCancel();
}

bool Generation::OnArrival(Arrival arrival) {
  std::unique_lock<std::mutex> lock(mu_);
  Call* call = arrival.call;
  const bool end = arrival.end.has_value();
  bool keep_reading = true;
  if (end) {
    --live_calls_;
  } else if (++call->queued >= kMaxQueuedMessages && !abort_.has_value()) {
    // The hold keeps OnDone away while no read is outstanding, so that the
    // consumer's ResumeRead is always valid; taken before anyone can see the
    // pause. Never after an abort: the calls must then run to their end
    // (the destructor waits for it) whether or not anyone reads.
    call->AddHold();
    call->paused = true;
    keep_reading = false;
  }
  arrivals_.push_back(std::move(arrival));
  if (end) {
    // Under the lock: once it is released the destructor (which waits for
    // this) may run, as this was the call's last callback.
    cv_.notify_all();
    return keep_reading;
  }
  // A consumer that is not waiting looks at the queue before it waits.
  if (!waiting_) return keep_reading;
  // The Generation outlives this callback (OnDone has not run), so wake the
  // consumer after unlocking rather than into a held mutex.
  lock.unlock();
  cv_.notify_all();
  return keep_reading;
}

bool Generation::Next(SequenceEvent* event) {
  while (ready_.empty()) {
    if (open_ == 0) return false;
    std::deque<Arrival> batch;
    std::optional<absl::Status> abort;
    std::vector<Call*> resume;
    {
      std::unique_lock<std::mutex> lock(mu_);
      waiting_ = true;
      cv_.wait(lock, [this] { return !arrivals_.empty() || abort_.has_value(); });
      waiting_ = false;
      batch.swap(arrivals_);
      abort = abort_;
      for (const Arrival& a : batch) {
        Call* call = a.call;
        call->queued = 0;
        if (call->paused) {
          call->paused = false;
          resume.push_back(call);
        }
      }
    }
    for (Call* call : resume) call->ResumeRead(!abort.has_value());
    // What arrived before the abort is still delivered.
    Process(batch);
    if (abort.has_value()) {
      for (int seq = 0; seq < size(); ++seq) {
        if (!seqs_[seq].done) Fail(seq, *abort);
      }
    }
  }
  *event = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

void Generation::Process(std::deque<Arrival>& batch) {
  for (const Arrival& a : batch) {
    const int seq = a.call->seq();
    SeqState& s = seqs_[seq];
    // Late arrivals of a finished sequence or of an abandoned attempt.
    if (s.done || a.call != s.call) continue;
    if (a.end.has_value()) {
      TakeEnd(seq, a);
    } else {
      TakeMessage(seq, a);
    }
  }
  for (int seq : touched_) Flush(seq);
  touched_.clear();
}

void Generation::TakeMessage(int seq, const Arrival& a) {
  const SequenceSpec& spec = specs_[seq];
  SeqState& s = seqs_[seq];
  const tpserve::v1::GenerateResponse& response = a.message;
  s.got_message = true;
  if (!s.pending.has_value()) {
    s.pending.emplace();
    s.pending->index = spec.index;
    touched_.push_back(seq);
  }
  SequenceEvent& event = *s.pending;
  s.completion_tokens += response.token_ids_size();
  event.usage = {response.usage().prompt_tokens(), s.completion_tokens,
                 response.usage().cached_tokens()};
  if (event.usage.prompt_tokens == 0) {
    event.usage.prompt_tokens = static_cast<int>(spec.prompt_token_ids.size());
  }
  // The stop token (EOS / stop_token_ids) ends the text but is not part of
  // it, as in vLLM.
  std::vector<int> ids(response.token_ids().begin(), response.token_ids().end());
  bool stop_token = response.has_stop_token_id() && !ids.empty() &&
                    ids.back() == response.stop_token_id();
  if (stop_token) ids.pop_back();
  DecodedPiece piece = s.decoder->Push(ids);
  event.text += piece.text;
  if (spec.sampling.logprobs() || spec.sampling.top_logprobs() > 0) {
    for (const auto& lp : response.logprobs()) {
      event.logprobs.push_back(text_->MakeLogprobEntry(lp));
    }
  }
  if (piece.stop_string.has_value()) {
    // Free the router's KV blocks now rather than at max_tokens.
    s.call->context().TryCancel();
    event.finish_reason = "stop";
    event.stop_reason = *piece.stop_string;
  } else if (response.finish_reason() != tpserve::v1::FINISH_REASON_UNSPECIFIED) {
    event.text += s.decoder->Flush();
    event.finish_reason = FinishReasonName(response.finish_reason());
    if (response.has_stop_token_id()) event.stop_reason = response.stop_token_id();
  }
  if (!event.finish_reason.has_value()) return;
  s.done = true;
  --open_;
  if (metrics_ != nullptr) {
    metrics_->CountFinished(*event.finish_reason);
    metrics_->e2e_latency->Observe(Seconds(a.time - arrival_));
    metrics_->prompt_tokens->Increment(event.usage.prompt_tokens);
    metrics_->generation_tokens->Increment(event.usage.completion_tokens);
  }
}

void Generation::TakeEnd(int seq, const Arrival& a) {
  SeqState& s = seqs_[seq];
  {
    // An abort ends the sequence with its own status (see Next).
    std::lock_guard<std::mutex> lock(mu_);
    if (abort_.has_value()) return;
  }
  absl::Status status = FromGrpcStatus(*a.end, s.call->context());
  // Fail over only while nothing reached the client, and only when the
  // replica itself is down (a full queue or a bad request would fail the
  // same way elsewhere, or should surface as 429 to back the client off).
  if (!s.got_message && status.code() == absl::StatusCode::kUnavailable) {
    const int router = s.call->router();
    spdlog::warn("request {}: router {} unavailable ({}), trying another", request_id_,
                 pool_->address(router), std::string(status.message()));
    pool_->MarkUnavailable(router);
    s.tried.push_back(router);
    if (StartAttempt(seq)) return;
  }
  if (status.ok()) status = absl::InternalError("router stream ended without a finish reason");
  Fail(seq, status);
}

void Generation::Fail(int seq, absl::Status status) {
  SeqState& s = seqs_[seq];
  Flush(seq);
  SequenceEvent event;
  event.index = specs_[seq].index;
  event.error = std::move(status);
  if (metrics_ != nullptr) {
    metrics_->CountFinished(event.error.code() == absl::StatusCode::kCancelled ? "abort" : "error");
  }
  ready_.push_back(std::move(event));
  s.done = true;
  --open_;
}

void Generation::Flush(int seq) {
  std::optional<SequenceEvent>& pending = seqs_[seq].pending;
  if (!pending.has_value()) return;
  ready_.push_back(*std::move(pending));
  pending.reset();
}

bool GenerationRegistry::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return live_.empty(); });
}

void GenerationRegistry::AbortAll(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!abort_.has_value()) abort_ = status;
  for (Generation* g : live_) g->Abort(*abort_);
}

int GenerationRegistry::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(live_.size());
}

void GenerationRegistry::Add(Generation* generation) {
  std::lock_guard<std::mutex> lock(mu_);
  live_.insert(generation);
  // Admitted just as the drain ran out: ends like the others.
  if (abort_.has_value()) generation->Abort(*abort_);
}

void GenerationRegistry::Remove(Generation* generation) {
  std::lock_guard<std::mutex> lock(mu_);
  live_.erase(generation);
  if (live_.empty()) cv_.notify_all();
}

}  // namespace tpserve::gateway
