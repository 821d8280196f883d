#include "gateway/generation.h"

#include <algorithm>

#include "common/grpc_status.h"
#include "common/logging.h"
#include "gateway/http_error.h"

namespace tpserve::gateway {
namespace {

const char* FinishReasonName(tpserve::v1::FinishReason reason) {
  switch (reason) {
    case tpserve::v1::FINISH_REASON_STOP: return "stop";
    case tpserve::v1::FINISH_REASON_LENGTH: return "length";
    default: return "abort";
  }
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

absl::Status RouterCallStatus(const grpc::Status& status, const grpc::ClientContext& context) {
  absl::Status out = FromGrpcStatus(status);
  if (out.code() == absl::StatusCode::kResourceExhausted) {
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find("retry-after-ms");
    if (it != trailers.end()) {
      try {
        out = WithRetryAfterMs(out, std::stoll(std::string(it->second.data(), it->second.size())));
      } catch (...) {
        // A malformed hint is ignored; the default back-off applies.
      }
    }
  }
  return out;
}

Generation::Generation(RouterPool* pool, const TextService* text, GatewayMetrics* metrics,
                       std::string request_id, std::vector<SequenceSpec> specs,
                       std::chrono::steady_clock::time_point arrival)
    : pool_(pool),
      text_(text),
      metrics_(metrics),
      request_id_(std::move(request_id)),
      specs_(std::move(specs)),
      arrival_(arrival),
      contexts_(specs_.size(), nullptr) {}

Generation::~Generation() {
  Cancel();
  for (std::thread& t : threads_) t.join();
}

void Generation::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = size();
  }
  for (int i = 0; i < size(); ++i) threads_.emplace_back([this, i] { Run(i); });
}

void Generation::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : contexts_) {
    if (ctx != nullptr) ctx->TryCancel();
  }
}

void Generation::Push(SequenceEvent event) {
  std::lock_guard<std::mutex> lock(mu_);
  if (event.finish_reason.has_value() || !event.error.ok()) --running_;
  events_.push_back(std::move(event));
  cv_.notify_all();
}

bool Generation::Next(SequenceEvent* event) {
  bool timed_out = false;
  return NextFor(event, std::chrono::hours(24 * 365), &timed_out);
}

bool Generation::NextFor(SequenceEvent* event, std::chrono::milliseconds timeout,
                         bool* timed_out) {
  std::unique_lock<std::mutex> lock(mu_);
  *timed_out = !cv_.wait_for(lock, timeout, [this] { return !events_.empty() || running_ == 0; });
  if (events_.empty()) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  return true;
}

void Generation::Run(int seq) {
  std::vector<int> tried;
  absl::Status last = absl::UnavailableError("no router is available");
  while (true) {
    std::optional<int> router = pool_->Pick(specs_[seq].prompt_token_ids, tried);
    if (!router.has_value()) break;
    bool got_message = false;
    bool finished = false;
    pool_->OnRequestStart(*router);
    last = Attempt(seq, *router, &got_message, &finished);
    pool_->OnRequestEnd(*router);
    if (finished) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancelled_) last = absl::CancelledError("request cancelled");
    }
    // Fail over only while nothing reached the client, and only when the
    // replica itself is down (a full queue or a bad request would fail the
    // same way elsewhere, or should surface as 429 to back the client off).
    if (got_message || last.code() != absl::StatusCode::kUnavailable) break;
    spdlog::warn("request {}: router {} unavailable ({}), trying another", request_id_,
                 pool_->address(*router), std::string(last.message()));
    pool_->MarkUnavailable(*router);
    tried.push_back(*router);
  }
  if (last.ok()) last = absl::InternalError("router stream ended without a finish reason");
  SequenceEvent event;
  event.index = specs_[seq].index;
  event.error = last;
  if (metrics_ != nullptr) {
    metrics_->CountFinished(last.code() == absl::StatusCode::kCancelled ? "abort" : "error");
  }
  Push(std::move(event));
}

absl::Status Generation::Attempt(int seq, int router, bool* got_message, bool* finished) {
  const SequenceSpec& spec = specs_[seq];
  tpserve::v1::GenerateRequest request;
  request.set_request_id(spec.index == 0 ? request_id_
                                         : request_id_ + "-" + std::to_string(spec.index));
  request.mutable_prompt_token_ids()->Add(spec.prompt_token_ids.begin(),
                                          spec.prompt_token_ids.end());
  *request.mutable_sampling() = spec.sampling;
  request.set_priority(spec.priority);

  grpc::ClientContext ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return absl::CancelledError("request cancelled");
    contexts_[seq] = &ctx;
  }
  std::unique_ptr<SequenceDecoder> decoder = text_->NewDecoder(spec.skip_special_tokens, spec.stop);
  auto reader = pool_->stub(router)->Generate(&ctx, request);
  tpserve::v1::GenerateResponse response;
  bool want_logprobs = spec.sampling.logprobs() || spec.sampling.top_logprobs() > 0;
  int completion_tokens = 0;
  auto last_time = arrival_;
  while (reader->Read(&response)) {
    auto now = std::chrono::steady_clock::now();
    if (metrics_ != nullptr) {
      (*got_message ? metrics_->inter_token_latency : metrics_->time_to_first_token)
          ->Observe(Seconds(now - last_time));
    }
    last_time = now;
    *got_message = true;
    SequenceEvent event;
    event.index = spec.index;
    completion_tokens += response.token_ids_size();
    event.usage = {response.usage().prompt_tokens(), completion_tokens,
                   response.usage().cached_tokens()};
    if (event.usage.prompt_tokens == 0) {
      event.usage.prompt_tokens = static_cast<int>(spec.prompt_token_ids.size());
    }
    // The stop token (EOS / stop_token_ids) ends the text but is not part
    // of it, as in vLLM.
    std::vector<int> ids(response.token_ids().begin(), response.token_ids().end());
    bool stop_token = response.has_stop_token_id() && !ids.empty() &&
                      ids.back() == response.stop_token_id();
    if (stop_token) ids.pop_back();
    DecodedPiece piece = decoder->Push(ids);
    event.text = std::move(piece.text);
    if (want_logprobs) {
      for (const auto& lp : response.logprobs()) event.logprobs.push_back(text_->MakeLogprobEntry(lp));
    }
    if (piece.stop_string.has_value()) {
      // Free the router's KV blocks now rather than at max_tokens.
      ctx.TryCancel();
      event.finish_reason = "stop";
      event.stop_reason = *piece.stop_string;
    } else if (response.finish_reason() != tpserve::v1::FINISH_REASON_UNSPECIFIED) {
      event.text += decoder->Flush();
      event.finish_reason = FinishReasonName(response.finish_reason());
      if (response.has_stop_token_id()) event.stop_reason = response.stop_token_id();
    }
    if (event.finish_reason.has_value()) {
      *finished = true;
      if (metrics_ != nullptr) {
        metrics_->CountFinished(*event.finish_reason);
        metrics_->e2e_latency->Observe(Seconds(now - arrival_));
        metrics_->prompt_tokens->Increment(event.usage.prompt_tokens);
        metrics_->generation_tokens->Increment(event.usage.completion_tokens);
      }
      Push(std::move(event));
      break;
    }
    Push(std::move(event));
  }
  if (*finished) {
    // The call may still be open (stop string): cancel and drain.
    ctx.TryCancel();
    while (reader->Read(&response)) {
    }
  }
  grpc::Status status = reader->Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    contexts_[seq] = nullptr;
  }
  if (*finished) return absl::OkStatus();
  return RouterCallStatus(status, ctx);
}

}  // namespace tpserve::gateway
