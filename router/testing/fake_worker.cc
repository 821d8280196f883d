#include "router/testing/fake_worker.h"

#include <chrono>
#include <thread>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/security/group_token.h"
#include "worker/service/step_stream_server.h"

namespace tpserve::router::testing {

absl::StatusOr<std::unique_ptr<FakeWorker>> FakeWorker::Start(
    FakeWorkerOptions options) {
  std::unique_ptr<FakeWorker> worker(new FakeWorker(std::move(options)));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", worker->options_.port), grpc::InsecureServerCredentials(),
                           &worker->port_);
  builder.SetMaxReceiveMessageSize(-1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 20);
  builder.RegisterService(worker.get());
  worker->server_ = builder.BuildAndStart();
  if (worker->server_ == nullptr || worker->port_ == 0) {
    return absl::InternalError("fake worker could not start");
  }
  return worker;
}

FakeWorker::FakeWorker(FakeWorkerOptions options)
    : options_(std::move(options)) {}

FakeWorker::~FakeWorker() { Kill(); }

std::string FakeWorker::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeWorker::Kill() {
  killed_ = true;
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
}

size_t FakeWorker::num_sequences() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_ == nullptr ? 0 : state_->num_sequences();
}

absl::Status FakeWorker::violation() {
  std::lock_guard<std::mutex> lock(mu_);
  return violation_;
}

v1::ModelInfo FakeWorker::Model(int max_model_len) const {
  v1::ModelInfo m;
  m.set_architecture("ToyForCausalLM");
  m.set_vocab_size(options_.vocab_size);
  m.set_num_layers(1);
  m.set_max_model_len(max_model_len);
  m.mutable_eos_token_ids()->Add(options_.eos_token_ids.begin(),
                                 options_.eos_token_ids.end());
  m.set_fingerprint(options_.fingerprint);
  return m;
}

grpc::Status FakeWorker::Info(grpc::ServerContext*, const v1::InfoRequest*,
                              v1::InfoResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  response->set_rank(rank_);
  response->set_device("cpu");
  response->set_device_name("toy");
  return grpc::Status::OK;
}

grpc::Status FakeWorker::CreateUniqueId(grpc::ServerContext*,
                                        const v1::CreateUniqueIdRequest*,
                                        v1::CreateUniqueIdResponse* response) {
  response->set_unique_id("toy-id");
  return grpc::Status::OK;
}

grpc::Status FakeWorker::InitDistributed(grpc::ServerContext*,
                                         const v1::InitDistributedRequest* request,
                                         v1::InitDistributedResponse*) {
  if (request->unique_id() != "toy-id") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "wrong unique id");
  }
  if (absl::Status t = ValidateGroupToken(request->group_token()); !t.ok()) {
    return ToGrpcStatus(t);
  }
  std::lock_guard<std::mutex> lock(mu_);
  rank_ = request->rank();
  token_ = request->group_token();
  return grpc::Status::OK;
}

grpc::Status FakeWorker::LoadModel(grpc::ServerContext* context,
                                   const v1::LoadModelRequest* request,
                                   v1::LoadModelResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  // The router must carry its group's token, as the real worker requires.
  if (absl::Status t = CheckGroupToken(*context, token_, "LoadModel"); !t.ok()) {
    return ToGrpcStatus(t);
  }
  block_size_ = request->block_size();
  max_model_len_ = request->max_model_len() > 0 ? request->max_model_len()
                                                : options_.max_model_len;
  *response->mutable_model() = Model(max_model_len_);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::ProfileMemory(grpc::ServerContext* context,
                                       const v1::ProfileMemoryRequest*,
                                       v1::ProfileMemoryResponse* response) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status t = CheckGroupToken(*context, token_, "ProfileMemory"); !t.ok()) {
      return ToGrpcStatus(t);
    }
  }
  response->set_num_blocks(options_.num_blocks);
  return grpc::Status::OK;
}

grpc::Status FakeWorker::InitCache(grpc::ServerContext* context,
                                   const v1::InitCacheRequest* request,
                                   v1::InitCacheResponse*) {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status t = CheckGroupToken(*context, token_, "InitCache"); !t.ok()) {
    return ToGrpcStatus(t);
  }
  if (request->num_blocks() > options_.num_blocks || block_size_ < 1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad InitCache");
  }
  state_ = std::make_unique<ToyWorkerState>(
      options_.vocab_size, block_size_, request->num_blocks(), options_.strict);
  relay_.peers.assign(request->relay_to().begin(), request->relay_to().end());
  relay_.peer_timeout = absl::Milliseconds(
      request->step_timeout_ms() > 0 ? request->step_timeout_ms() : 30000);
  relay_.group_token = token_;
  violation_ = absl::OkStatus();
  ++num_handshakes_;
  return grpc::Status::OK;
}

grpc::Status FakeWorker::StepStream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream) {
  worker::RelayOptions relay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status t = CheckGroupToken(*context, token_, "StepStream"); !t.ok()) {
      return ToGrpcStatus(t);
    }
    if (state_ == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "Step before InitCache");
    }
    relay = relay_;
  }
  // The same stream serving (and, on rank 0, relaying) as a real worker.
  return worker::ServeStepStream(
      context, stream, relay,
      [&](const v1::StepRequest& request,
          v1::StepResponse* response) -> absl::Status {
        if (hang_steps_) {
          while (!context->IsCancelled() && !killed_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
          return absl::CancelledError("hung step abandoned");
        }
        if (step_delay_ms_ > 0) {
          std::this_thread::sleep_for(
              std::chrono::milliseconds(step_delay_ms_));
        }
        if (fail_steps_) return absl::InternalError("injected step failure");
        std::lock_guard<std::mutex> lock(mu_);
        auto result = state_->Step(request);
        if (!result.ok()) {
          if (violation_.ok()) violation_ = result.status();
          return result.status();
        }
        *response = std::move(*result);
        // Only rank 0 returns the tokens, as the contract says.
        if (rank_ != 0) response->clear_sampled();
        if (diverge_) {
          response->set_sampled_digest(response->sampled_digest() + 1);
        }
        ++num_steps_;
        return absl::OkStatus();
      });
}

grpc::Status FakeWorker::Health(grpc::ServerContext*,
                                const v1::WorkerHealthRequest*,
                                v1::WorkerHealthResponse* response) {
  response->set_healthy(!fail_steps_ && !hang_steps_);
  response->set_state(response->healthy() ? "ready" : "failed");
  return grpc::Status::OK;
}

}  // namespace tpserve::router::testing
