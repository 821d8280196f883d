#include "router/router_service.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/grpc_status.h"

namespace tpserve::router {
namespace {

// How often a waiting handler checks for cancellation; bounds how late a
// gone client's blocks are freed (plus one step).
constexpr absl::Duration kPollInterval = absl::Milliseconds(25);

absl::Time RequestDeadline(const grpc::ServerContext& context,
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

grpc::Status RouterService::Generate(
    grpc::ServerContext* context, const v1::GenerateRequest* request,
    grpc::ServerWriter<v1::GenerateResponse>* writer) {
  auto stream = engine_->Submit(*request, RequestDeadline(*context, *request));
  if (!stream.ok()) {
    if (auto hint = stream.status().GetPayload(kRetryAfterPayload)) {
      context->AddTrailingMetadata(kRetryAfterPayload, std::string(*hint));
    }
    return ToGrpcStatus(stream.status());
  }
  const uint64_t seq_id = (*stream)->seq_id();
  std::vector<SequenceOutput> outputs;
  while (true) {
    if (context->IsCancelled()) {
      engine_->Cancel(seq_id);
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by client");
    }
    outputs.clear();
    (*stream)->Wait(kPollInterval, &outputs);
    if (outputs.empty()) continue;
    // Everything sampled since the last write goes out in one message.
    v1::GenerateResponse response;
    bool finished = false;
    for (SequenceOutput& out : outputs) {
      if (!out.error.ok()) return ToGrpcStatus(out.error);
      response.mutable_token_ids()->Add(out.token_ids.begin(),
                                        out.token_ids.end());
      for (auto& lp : out.logprobs) *response.add_logprobs() = std::move(lp);
      v1::Usage* usage = response.mutable_usage();
      usage->set_prompt_tokens(out.prompt_tokens);
      usage->set_completion_tokens(out.completion_tokens);
      usage->set_cached_tokens(out.cached_tokens);
      if (out.finished) {
        finished = true;
        response.set_finish_reason(out.finish_reason);
        if (out.stop_token_id.has_value()) {
          response.set_stop_token_id(*out.stop_token_id);
        }
      }
    }
    if (!writer->Write(response)) {
      if (!finished) engine_->Cancel(seq_id);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
    if (finished) return grpc::Status::OK;
  }
}

grpc::Status RouterService::Health(grpc::ServerContext*,
                                   const v1::HealthRequest*,
                                   v1::HealthResponse* response) {
  *response = engine_->Health();
  return grpc::Status::OK;
}

grpc::Status RouterService::Stats(grpc::ServerContext*, const v1::StatsRequest*,
                                  v1::StatsResponse* response) {
  *response = engine_->Stats();
  return grpc::Status::OK;
}

}  // namespace tpserve::router
