#include "gateway/testing/fake_router.h"

#include <thread>

#include "common/grpc_status.h"

namespace tpserve::gateway::testing {

absl::StatusOr<std::unique_ptr<FakeRouter>> FakeRouter::Start(tpserve::v1::ModelInfo model,
                                                              FakeRouterScript script) {
  std::unique_ptr<FakeRouter> router(new FakeRouter(std::move(model), std::move(script)));
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &router->port_);
  builder.RegisterService(router.get());
  router->server_ = builder.BuildAndStart();
  if (router->server_ == nullptr || router->port_ == 0) {
    return absl::InternalError("fake router: could not start a gRPC server");
  }
  return router;
}

FakeRouter::~FakeRouter() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

std::string FakeRouter::address() const { return "127.0.0.1:" + std::to_string(port_); }

void FakeRouter::SetScript(FakeRouterScript script) {
  std::lock_guard<std::mutex> lock(mu_);
  script_ = std::move(script);
}

void FakeRouter::FailNext(grpc::Status status, int count, int64_t retry_after_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < count; ++i) failures_.push_back({status, retry_after_ms});
}

void FakeRouter::SetLoad(int running, int waiting) {
  std::lock_guard<std::mutex> lock(mu_);
  running_ = running;
  waiting_ = waiting;
}

void FakeRouter::SetState(tpserve::v1::ServingState state) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = state;
}

std::vector<tpserve::v1::GenerateRequest> FakeRouter::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

int FakeRouter::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

int FakeRouter::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

bool FakeRouter::WaitForCancelled(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return cancelled_ >= n; });
}

bool FakeRouter::SleepUnlessCancelled(grpc::ServerContext* context, std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (context->IsCancelled()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(5), std::chrono::duration_cast<std::chrono::milliseconds>(
                                          end - std::chrono::steady_clock::now()) +
                                          std::chrono::milliseconds(1)));
  }
  return !context->IsCancelled();
}

grpc::Status FakeRouter::Generate(grpc::ServerContext* context,
                                  const tpserve::v1::GenerateRequest* request,
                                  grpc::ServerWriter<tpserve::v1::GenerateResponse>* writer) {
  FakeRouterScript script;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(*request);
    if (!failures_.empty()) {
      Failure f = failures_.front();
      failures_.pop_front();
      if (f.retry_after_ms > 0) {
        context->AddTrailingMetadata(kRetryAfterMsMetadata, std::to_string(f.retry_after_ms));
      }
      return f.status;
    }
    if (request->prompt_token_ids().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty prompt");
    }
    script = script_;
    ++active_;
  }
  auto finish = [&](bool was_cancelled) {
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    if (was_cancelled) ++cancelled_;
    cv_.notify_all();
  };
  const tpserve::v1::SamplingParams& s = request->sampling();
  int prompt_tokens = request->prompt_token_ids_size();
  int max_tokens = s.max_tokens() > 0 ? s.max_tokens() : 1 << 30;
  bool want_logprobs = s.logprobs() || s.top_logprobs() > 0;
  // The reply, then the EOS token that ends it (unless max_tokens comes
  // first), each in its own message as a real router streams them.
  std::vector<int> tokens = script.reply_tokens;
  tokens.push_back(script.eos_token_id);
  for (int i = 0; i < static_cast<int>(tokens.size()); ++i) {
    if (!SleepUnlessCancelled(context, i == 0 ? script.first_token_delay : script.token_delay)) {
      finish(true);
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    tpserve::v1::GenerateResponse response;
    int token = tokens[i];
    response.add_token_ids(token);
    if (want_logprobs) {
      auto* lp = response.add_logprobs();
      lp->set_token_id(token);
      lp->set_logprob(-0.25f * static_cast<float>(i + 1));
      for (int k = 0; k < s.top_logprobs(); ++k) {
        auto* top = lp->add_top();
        top->set_token_id(k == 0 ? token : token + k);
        top->set_logprob(-0.25f * static_cast<float>(i + 1) - static_cast<float>(k));
      }
    }
    response.mutable_usage()->set_prompt_tokens(prompt_tokens);
    response.mutable_usage()->set_completion_tokens(i + 1);
    response.mutable_usage()->set_cached_tokens(script.cached_tokens);
    if (token == script.eos_token_id && !s.ignore_eos()) {
      response.set_finish_reason(tpserve::v1::FINISH_REASON_STOP);
      response.set_stop_token_id(token);
    } else if (i + 1 >= max_tokens || i + 1 == static_cast<int>(tokens.size())) {
      response.set_finish_reason(tpserve::v1::FINISH_REASON_LENGTH);
    }
    if (!writer->Write(response)) {
      finish(true);
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
    }
    if (response.finish_reason() != tpserve::v1::FINISH_REASON_UNSPECIFIED) break;
  }
  finish(false);
  return grpc::Status::OK;
}

grpc::Status FakeRouter::Health(grpc::ServerContext*, const tpserve::v1::HealthRequest*,
                                tpserve::v1::HealthResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  response->set_state(state_);
  *response->mutable_model() = model_;
  response->set_tensor_parallel_size(1);
  return grpc::Status::OK;
}

grpc::Status FakeRouter::Stats(grpc::ServerContext*, const tpserve::v1::StatsRequest* request,
                               tpserve::v1::StatsResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  response->set_state(state_);
  response->set_num_requests_running(running_ + active_);
  response->set_num_requests_waiting(waiting_);
  response->set_kv_cache_usage(0.25);
  if (request->include_metrics_text()) {
    response->set_prometheus_text(
        "# HELP tpserve:fake_router_up Fake router marker.\n"
        "# TYPE tpserve:fake_router_up gauge\ntpserve:fake_router_up 1\n");
  }
  return grpc::Status::OK;
}

tpserve::v1::ModelInfo TinyChatModelInfo(int max_model_len) {
  tpserve::v1::ModelInfo info;
  info.set_architecture("Qwen2ForCausalLM");
  info.set_vocab_size(151936);
  info.set_hidden_size(64);
  info.set_num_layers(2);
  info.set_num_attention_heads(2);
  info.set_num_kv_heads(1);
  info.set_head_dim(32);
  info.set_max_model_len(max_model_len);
  info.add_eos_token_ids(151645);
  info.add_eos_token_ids(151643);
  info.set_fingerprint("fake");
  return info;
}

}  // namespace tpserve::gateway::testing
