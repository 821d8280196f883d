// WorkerServer in-process with the real CPU backend and the tiny checkpoint:
// the handshake state machine, Info/Health contents and re-initialisation.
// (Real multi-process runs are in tests/worker/.)
#include "worker/service/worker_service.h"

#include <grpcpp/grpcpp.h>

#include <thread>
#include <vector>

#include "absl/time/clock.h"

#include "absl/strings/str_cat.h"
#include "common/model/model_config.h"
#include "common/security/group_token.h"
#include "gtest/gtest.h"
#include "worker/model/cpu_backend.h"
#include "worker/service/step_stream_client.h"
#include "worker/service/worker_server.h"

namespace tpserve::worker {
namespace {

constexpr char kModel[] = "tests/fixtures/tiny-qwen2";

class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.worker_port = 0;
    auto server = WorkerServer::StartWith(config, "cpu", [](int) { return CreateCpuBackend(); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Worker::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }

  // Forms a one-rank group with a fresh token (kept in token_).
  grpc::Status Join() {
    grpc::ClientContext id_ctx;
    v1::CreateUniqueIdResponse id;
    grpc::Status s = stub_->CreateUniqueId(&id_ctx, {}, &id);
    if (!s.ok()) return s;
    grpc::ClientContext ctx;
    v1::InitDistributedRequest req;
    req.set_rank(0);
    req.set_world_size(1);
    req.set_unique_id(id.unique_id());
    token_ = NewGroupToken();
    req.set_group_token(token_);
    v1::InitDistributedResponse resp;
    return stub_->InitDistributed(&ctx, req, &resp);
  }
  grpc::Status Load(const std::string& path = kModel, const std::string& kv_cache_dtype = "") {
    grpc::ClientContext ctx;
    AttachGroupToken(&ctx, token_);
    v1::LoadModelRequest req;
    req.set_model_path(path);
    req.set_kv_cache_dtype(kv_cache_dtype);
    req.set_max_model_len(256);
    v1::LoadModelResponse resp;
    return stub_->LoadModel(&ctx, req, &resp);
  }
  grpc::Status Profile(v1::ProfileMemoryResponse* resp) {
    grpc::ClientContext ctx;
    AttachGroupToken(&ctx, token_);
    v1::ProfileMemoryRequest req;
    req.set_cpu_kv_cache_bytes(8 << 20);
    return stub_->ProfileMemory(&ctx, req, resp);
  }
  grpc::Status InitCache(int blocks) {
    grpc::ClientContext ctx;
    AttachGroupToken(&ctx, token_);
    v1::InitCacheRequest req;
    req.set_num_blocks(blocks);
    v1::InitCacheResponse resp;
    return stub_->InitCache(&ctx, req, &resp);
  }
  v1::WorkerHealthResponse Health() {
    grpc::ClientContext ctx;
    v1::WorkerHealthResponse resp;
    EXPECT_TRUE(stub_->Health(&ctx, {}, &resp).ok());
    return resp;
  }

  std::unique_ptr<WorkerServer> server_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  std::string token_;  // the group's, once Join ran
};

// LoadModelRequest.kv_cache_dtype reaches the backend: an unknown value is
// refused there, fp8 loads (the CPU backend rounds its cache through E4M3).
TEST_F(WorkerServiceTest, KvCacheDtypeReachesTheBackend) {
  grpc::Status s = Load(kModel, "fp16");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("--kv-cache-dtype \"fp16\""), std::string::npos) << s.error_message();
  EXPECT_TRUE(Load(kModel, "fp8").ok());
}

TEST_F(WorkerServiceTest, CallsOutOfOrderAreRefusedWithTheMissingStep) {
  v1::ProfileMemoryResponse profile;
  grpc::Status s = Profile(&profile);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("ProfileMemory before LoadModel"), std::string::npos)
      << s.error_message();
  ASSERT_TRUE(Load().ok());
  s = InitCache(4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("InitCache before ProfileMemory"), std::string::npos);
  s = Load();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("already loaded"), std::string::npos);
  ASSERT_TRUE(Profile(&profile).ok());
  EXPECT_GT(profile.num_blocks(), 0);
  EXPECT_EQ(Health().state(), "starting");
  EXPECT_EQ(InitCache(0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(InitCache(profile.num_blocks()).ok());
  EXPECT_EQ(InitCache(profile.num_blocks()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  const v1::WorkerHealthResponse h = Health();
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.state(), "ready");
}

v1::StepRequest NewSequenceStep(uint64_t step_id, uint64_t seq_id, std::vector<int32_t> tokens) {
  v1::StepRequest step;
  step.set_step_id(step_id);
  v1::NewSequence* ns = step.add_new_sequences();
  ns->set_seq_id(seq_id);
  ns->mutable_token_ids()->Add(tokens.begin(), tokens.end());
  ns->set_num_prompt_tokens(static_cast<int>(tokens.size()));
  ns->set_num_scheduled_tokens(static_cast<int>(tokens.size()));
  ns->add_block_table(static_cast<int32_t>(2 * seq_id));
  ns->add_block_table(static_cast<int32_t>(2 * seq_id + 1));
  return step;
}

v1::StepRequest ContinueStep(uint64_t step_id, uint64_t seq_id) {
  v1::StepRequest step;
  step.set_step_id(step_id);
  v1::RunningSequence* rs = step.add_running_sequences();
  rs->set_seq_id(seq_id);
  rs->set_num_scheduled_tokens(1);
  return step;
}

// Steps written ahead of their answers on one stream: each decode continues
// from the token the worker itself sampled; a bad step is answered in-band
// and the stream goes on; a newer stream replaces this one.
TEST_F(WorkerServiceTest, StepStreamRunsStepsInOrderAndContinuesFromItsSamples) {
  ASSERT_TRUE(Load().ok());
  v1::ProfileMemoryResponse profile;
  ASSERT_TRUE(Profile(&profile).ok());
  ASSERT_TRUE(InitCache(16).ok());
  grpc::ClientContext ctx;
  auto stream = stub_->StepStream(&ctx);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  ASSERT_TRUE(stream->Write(NewSequenceStep(1, 1, prompt)));
  ASSERT_TRUE(stream->Write(ContinueStep(2, 1)));
  ASSERT_TRUE(stream->Write(ContinueStep(3, 1)));
  std::vector<int32_t> tokens;
  for (uint64_t id = 1; id <= 3; ++id) {
    v1::StepResponse r;
    ASSERT_TRUE(stream->Read(&r));
    EXPECT_EQ(r.step_id(), id);
    EXPECT_EQ(r.error_code(), 0) << r.error_message();
    ASSERT_EQ(r.sampled_size(), 1);
    EXPECT_NE(r.sampled_digest(), 0u);
    tokens.push_back(r.sampled(0).token_id());
  }
  // Unknown sequence: an in-band error, the stream stays.
  ASSERT_TRUE(stream->Write(ContinueStep(4, 77)));
  v1::StepResponse bad;
  ASSERT_TRUE(stream->Read(&bad));
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("running sequence 77: is unknown"), std::string::npos)
      << bad.error_message();
  // The same history sent whole gives the same next token (greedy): the
  // continue rows used exactly the tokens the worker reported.
  std::vector<int32_t> history = prompt;
  history.insert(history.end(), tokens.begin(), tokens.end() - 1);
  ASSERT_TRUE(stream->Write(NewSequenceStep(5, 2, history)));
  v1::StepResponse whole;
  ASSERT_TRUE(stream->Read(&whole));
  ASSERT_EQ(whole.sampled_size(), 1) << whole.error_message();
  EXPECT_EQ(whole.sampled(0).token_id(), tokens.back());

  // A newer stream (the router re-ran its handshake) takes over.
  grpc::ClientContext ctx2;
  auto newer = stub_->StepStream(&ctx2);
  v1::StepRequest finish;
  finish.set_step_id(6);
  finish.add_finished_seq_ids(1);
  ASSERT_TRUE(newer->Write(finish));
  v1::StepResponse done;
  ASSERT_TRUE(newer->Read(&done));
  EXPECT_EQ(done.error_code(), 0) << done.error_message();
  ASSERT_TRUE(stream->Write(ContinueStep(7, 2)));
  v1::StepResponse replaced;
  ASSERT_TRUE(stream->Read(&replaced));
  EXPECT_EQ(replaced.error_code(), grpc::StatusCode::ABORTED);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  // Shutdown ends an open stream at once instead of waiting out the server's
  // grace period.
  const absl::Time start = absl::Now();
  server_->Shutdown();
  v1::StepResponse none;
  EXPECT_FALSE(newer->Read(&none));
  newer->Finish();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(WorkerServiceTest, InfoDescribesTheLoadedModel) {
  ASSERT_TRUE(Load().ok());
  grpc::ClientContext ctx;
  v1::InfoResponse info;
  ASSERT_TRUE(stub_->Info(&ctx, {}, &info).ok());
  EXPECT_EQ(info.device(), "cpu");
  EXPECT_EQ(info.rank(), 0);
  EXPECT_EQ(info.world_size(), 1);
  EXPECT_EQ(info.model().architecture(), "Qwen2ForCausalLM");
  EXPECT_EQ(info.model().vocab_size(), 4096);
  EXPECT_EQ(info.model().num_kv_heads(), 2);
  EXPECT_EQ(info.model().max_model_len(), 256);
  // The router stops on what the backend's sampler treats as the end.
  const std::vector<int> eos = EosTokenIds(*LoadModelConfig(kModel), *LoadGenerationConfig(kModel));
  EXPECT_EQ(std::vector<int>(info.model().eos_token_ids().begin(), info.model().eos_token_ids().end()),
            eos);
  EXPECT_EQ(eos, std::vector<int>{1});
  EXPECT_EQ(info.model().fingerprint().size(), 16);
}

TEST_F(WorkerServiceTest, BadModelPathIsANamedError) {
  grpc::Status s = Load("/nonexistent/model");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.error_message().find("/nonexistent/model"), std::string::npos)
      << s.error_message();
}

TEST_F(WorkerServiceTest, InitDistributedValidatesAndResets) {
  grpc::ClientContext ctx;
  v1::InitDistributedRequest req;
  req.set_rank(2);
  req.set_world_size(2);
  v1::InitDistributedResponse resp;
  grpc::Status s = stub_->InitDistributed(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Load().ok());
  // A one-rank group re-join drops the loaded model.
  grpc::ClientContext id_ctx;
  v1::CreateUniqueIdResponse id;
  ASSERT_TRUE(stub_->CreateUniqueId(&id_ctx, {}, &id).ok());
  grpc::ClientContext ctx2;
  req.set_rank(0);
  req.set_world_size(1);
  req.set_unique_id(id.unique_id());
  // A group needs a token.
  s = stub_->InitDistributed(&ctx2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("group_token"), std::string::npos) << s.error_message();
  ASSERT_TRUE(Join().ok());
  v1::ProfileMemoryResponse profile;
  EXPECT_EQ(Profile(&profile).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(Load().ok());
}

// Once a group is formed, calls without its token are refused before they
// touch anything: a forged step stream does not replace the router's, and
// the group keeps stepping.
TEST_F(WorkerServiceTest, CallsWithoutTheGroupTokenAreRefusedAndChangeNothing) {
  ASSERT_TRUE(Join().ok());
  const std::string token = token_;
  token_ = std::string(32, '0');  // a wrong token
  EXPECT_EQ(Load().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  token_.clear();  // none
  EXPECT_EQ(Load().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  token_ = token;
  ASSERT_TRUE(Load().ok());
  v1::ProfileMemoryResponse profile;
  token_.clear();
  EXPECT_EQ(Profile(&profile).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  token_ = token;
  ASSERT_TRUE(Profile(&profile).ok());
  token_.clear();
  EXPECT_EQ(InitCache(16).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  token_ = token;
  ASSERT_TRUE(InitCache(16).ok());

  grpc::ClientContext ctx;
  AttachGroupToken(&ctx, token);
  auto stream = stub_->StepStream(&ctx);
  ASSERT_TRUE(stream->Write(NewSequenceStep(1, 1, {1, 2, 3})));
  v1::StepResponse first;
  ASSERT_TRUE(stream->Read(&first));
  ASSERT_EQ(first.sampled_size(), 1) << first.error_message();
  for (const std::string& forged : {std::string(), std::string(32, 'f')}) {
    grpc::ClientContext fctx;
    AttachGroupToken(&fctx, forged);
    auto f = stub_->StepStream(&fctx);
    v1::StepRequest finish;
    finish.set_step_id(9);
    finish.add_finished_seq_ids(1);
    f->Write(finish);
    f->WritesDone();
    v1::StepResponse none;
    EXPECT_FALSE(f->Read(&none));
    const grpc::Status fs = f->Finish();
    EXPECT_EQ(fs.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(fs.error_message().find("group's token"), std::string::npos) << fs.error_message();
  }
  // The router's stream is still the current one and sequence 1 still runs.
  ASSERT_TRUE(stream->Write(ContinueStep(2, 1)));
  v1::StepResponse second;
  ASSERT_TRUE(stream->Read(&second));
  EXPECT_EQ(second.error_code(), 0) << second.error_message();
  EXPECT_EQ(second.sampled_size(), 1);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(WorkerServiceTest, ShutdownTwiceThenWaitReturns) {
  server_->Shutdown();
  server_->Shutdown();
  server_->Wait();
}

// Two ranks in this process (still separate gRPC servers and real loopback
// sockets): a step that reaches only rank 0 leaves it waiting on rank 1 in
// a collective; re-initialising rank 0 must abort that step, not wait.
TEST(WorkerServiceTpTest, ReinitAbortsAStepStuckOnAPeer) {
  std::vector<std::unique_ptr<WorkerServer>> servers;
  std::vector<std::unique_ptr<v1::Worker::Stub>> stubs;
  for (int r = 0; r < 2; ++r) {
    ServerConfig config;
    config.worker_port = 0;
    auto server = WorkerServer::StartWith(config, "cpu", [](int) { return CreateCpuBackend(); });
    ASSERT_TRUE(server.ok()) << server.status();
    stubs.push_back(v1::Worker::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials())));
    servers.push_back(std::move(*server));
  }
  grpc::ClientContext id_ctx;
  v1::CreateUniqueIdResponse id;
  ASSERT_TRUE(stubs[0]->CreateUniqueId(&id_ctx, {}, &id).ok());
  const std::string token = NewGroupToken();
  // Handshake on both ranks at once.
  auto on_both = [&](auto call) {
    std::vector<grpc::Status> st(2);
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r) threads.emplace_back([&, r] { st[r] = call(r); });
    for (auto& t : threads) t.join();
    return st;
  };
  for (const auto& st : on_both([&](int r) {
         grpc::ClientContext c;
         v1::InitDistributedRequest req;
         req.set_rank(r);
         req.set_world_size(2);
         req.set_unique_id(id.unique_id());
         req.set_group_token(token);
         v1::InitDistributedResponse resp;
         return stubs[r]->InitDistributed(&c, req, &resp);
       })) {
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  for (const auto& st : on_both([&](int r) {
         grpc::ClientContext c;
         AttachGroupToken(&c, token);
         v1::LoadModelRequest req;
         req.set_model_path(kModel);
         req.set_max_model_len(64);
         v1::LoadModelResponse resp;
         return stubs[r]->LoadModel(&c, req, &resp);
       })) {
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  for (const auto& st : on_both([&](int r) {
         grpc::ClientContext c;
         AttachGroupToken(&c, token);
         v1::ProfileMemoryRequest req;
         req.set_cpu_kv_cache_bytes(4 << 20);
         v1::ProfileMemoryResponse resp;
         grpc::Status s = stubs[r]->ProfileMemory(&c, req, &resp);
         if (!s.ok()) return s;
         grpc::ClientContext c2;
         AttachGroupToken(&c2, token);
         v1::InitCacheRequest ic;
         ic.set_num_blocks(8);
         v1::InitCacheResponse icr;
         return stubs[r]->InitCache(&c2, ic, &icr);
       })) {
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  absl::Status stuck;
  absl::Time returned;
  std::thread step_thread([&] {
    v1::StepRequest step;
    step.set_step_id(1);
    auto* ns = step.add_new_sequences();
    ns->set_seq_id(1);
    ns->add_token_ids(3);
    ns->set_num_prompt_tokens(1);
    ns->set_num_scheduled_tokens(1);
    ns->add_block_table(0);
    stuck = StepOnce(*stubs[0], step, absl::Seconds(30), token).status();
    returned = absl::Now();
  });
  absl::SleepFor(absl::Milliseconds(300));  // let the step reach its collective
  const absl::Time start = absl::Now();
  grpc::ClientContext id_ctx2;
  v1::CreateUniqueIdResponse id2;
  ASSERT_TRUE(stubs[0]->CreateUniqueId(&id_ctx2, {}, &id2).ok());
  grpc::ClientContext c;
  v1::InitDistributedRequest req;
  req.set_rank(0);
  req.set_world_size(1);
  req.set_unique_id(id2.unique_id());
  req.set_group_token(NewGroupToken());
  v1::InitDistributedResponse resp;
  EXPECT_TRUE(stubs[0]->InitDistributed(&c, req, &resp).ok());
  step_thread.join();
  EXPECT_EQ(stuck.code(), absl::StatusCode::kUnavailable) << stuck;
  EXPECT_LT(returned - start, absl::Seconds(5));
  // Rank 1 sees rank 0 leave the old group.
  v1::WorkerHealthResponse h;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stubs[1]->Health(&ctx, {}, &h).ok());
    if (!h.healthy()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(h.state(), "peer_lost");
  EXPECT_NE(h.message().find("rank 0"), std::string::npos) << h.message();
}

}  // namespace
}  // namespace tpserve::worker
