// The Router service end to end over gRPC, against in-process fake workers
// running a deterministic toy model (router/testing/fake_worker.h).
#include "router/router_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/router.grpc.pb.h"
#include "router/testing/fake_worker.h"
#include "router/testing/toy_worker_state.h"

namespace tpserve::router {
namespace {

using ::testing::HasSubstr;
using ::tpserve::router::testing::FakeWorker;
using ::tpserve::router::testing::FakeWorkerOptions;
using ::tpserve::router::testing::ToyWorkerState;

constexpr int kVocab = 1000;

std::vector<int32_t> ToyTokens(int32_t last, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(last = ToyWorkerState::NextToken(last, kVocab));
  return out;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// What one Generate call returned.
struct Result {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::vector<v1::GenerateResponse> messages;
  std::multimap<grpc::string_ref, grpc::string_ref> trailers;
  std::string retry_after;
};

class RouterServerTest : public ::testing::Test {
 protected:
  void StartWorkers(int n, FakeWorkerOptions options = {}) {
    for (int i = 0; i < n; ++i) {
      auto w = FakeWorker::Start(options);
      ASSERT_TRUE(w.ok()) << w.status();
      workers_.push_back(std::move(w).value());
    }
  }

  ServerConfig Config() {
    ServerConfig c;
    c.router_port = 0;
    c.tensor_parallel_size = static_cast<int>(workers_.size());
    for (auto& w : workers_) c.workers.push_back(w->address());
    c.block_size = 4;
    c.worker_step_timeout_ms = 1000;
    c.worker_init_timeout_ms = 2000;
    return c;
  }

  void StartRouter(ServerConfig c) {
    EngineOptions options;
    options.initial_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(100);
    auto r = RouterServer::Start(c, options);
    ASSERT_TRUE(r.ok()) << r.status();
    router_ = std::move(r).value();
    stub_ = v1::Router::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(router_->port()),
        grpc::InsecureChannelCredentials()));
  }

  v1::ServingState WaitForState(v1::ServingState want) {
    v1::HealthResponse h;
    for (int i = 0; i < 300; ++i) {
      grpc::ClientContext ctx;
      stub_->Health(&ctx, v1::HealthRequest(), &h);
      if (h.state() == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return h.state();
  }

  v1::StatsResponse Stats(bool with_text = false) {
    grpc::ClientContext ctx;
    v1::StatsRequest request;
    request.set_include_metrics_text(with_text);
    v1::StatsResponse s;
    EXPECT_TRUE(stub_->Stats(&ctx, request, &s).ok());
    return s;
  }

  static v1::GenerateRequest Request(std::vector<int32_t> prompt,
                                     int max_tokens) {
    v1::GenerateRequest r;
    r.set_request_id("test");
    r.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    r.mutable_sampling()->set_max_tokens(max_tokens);
    return r;
  }

  Result Generate(const v1::GenerateRequest& r,
                  grpc::ClientContext* context = nullptr) {
    grpc::ClientContext local;
    if (context == nullptr) context = &local;
    auto reader = stub_->Generate(context, r);
    Result result;
    v1::GenerateResponse m;
    while (reader->Read(&m)) {
      result.tokens.insert(result.tokens.end(), m.token_ids().begin(),
                           m.token_ids().end());
      result.messages.push_back(m);
    }
    result.status = reader->Finish();
    auto trailers = context->GetServerTrailingMetadata();
    auto it = trailers.find("retry-after-ms");
    if (it != trailers.end()) {
      result.retry_after = std::string(it->second.data(), it->second.size());
    }
    return result;
  }

  // Waits until every KV block is free again.
  bool AllBlocksFree() {
    for (int i = 0; i < 300; ++i) {
      v1::StatsResponse s = Stats();
      if (s.num_kv_blocks_total() > 0 &&
          s.num_kv_blocks_free() == s.num_kv_blocks_total() &&
          s.num_requests_running() == 0 && s.num_requests_waiting() == 0) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void TearDown() override {
    router_.reset();
    for (auto& w : workers_) {
      EXPECT_TRUE(w->violation().ok()) << w->violation();
    }
  }

  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::unique_ptr<RouterServer> router_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

TEST_F(RouterServerTest, GeneratesTheToyModelsTokensAndReusesPrefixes) {
  StartWorkers(2);
  StartRouter(Config());
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  grpc::ClientContext hctx;
  v1::HealthResponse health;
  ASSERT_TRUE(stub_->Health(&hctx, v1::HealthRequest(), &health).ok());
  EXPECT_EQ(health.tensor_parallel_size(), 2);
  EXPECT_EQ(health.model().vocab_size(), kVocab);

  const std::vector<int32_t> prompt = {5, 6, 7, 8, 9, 10, 11, 12, 13};
  Result a = Generate(Request(prompt, 12));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.tokens, ToyTokens(13, 12));
  const v1::GenerateResponse& last = a.messages.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().prompt_tokens(), 9);
  EXPECT_EQ(last.usage().completion_tokens(), 12);
  EXPECT_EQ(last.usage().cached_tokens(), 0);

  Result b = Generate(Request(prompt, 12));
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(b.messages.front().usage().cached_tokens(), 8);
  EXPECT_TRUE(AllBlocksFree());

  // The balancing poll's answer leaves the metrics text out.
  EXPECT_EQ(Stats().prometheus_text(), "");
  v1::StatsResponse stats = Stats(/*with_text=*/true);
  EXPECT_EQ(stats.state(), v1::SERVING_STATE_READY);
  EXPECT_DOUBLE_EQ(stats.prefix_cache_hit_rate(), 8.0 / 18.0);
  for (const char* name :
       {"tpserve:num_requests_running", "tpserve:num_requests_waiting",
        "tpserve:kv_cache_usage_perc", "tpserve:prefix_cache_hit_rate",
        "tpserve:num_preemptions_total", "tpserve:step_duration_seconds_bucket",
        "tpserve:tokens_per_step_bucket",
        "tpserve:time_to_first_token_seconds_count 2",
        "tpserve:request_success_total{finished_reason=\"length\"} 2"}) {
    EXPECT_THAT(stats.prometheus_text(), HasSubstr(name));
  }
}

TEST_F(RouterServerTest, StopsOnEosAndStopTokenIds) {
  FakeWorkerOptions o;
  const std::vector<int32_t> toy = ToyTokens(3, 10);
  o.eos_token_ids = {toy[4]};
  StartWorkers(1, o);
  StartRouter(Config());
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  Result eos = Generate(Request({1, 2, 3}, 10));
  ASSERT_TRUE(eos.status.ok());
  EXPECT_EQ(eos.tokens.size(), 5u);
  EXPECT_EQ(eos.messages.back().finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(eos.messages.back().stop_token_id(), toy[4]);

  v1::GenerateRequest r = Request({1, 2, 3}, 10);
  r.mutable_sampling()->add_stop_token_ids(toy[1]);
  Result stop = Generate(r);
  EXPECT_EQ(stop.tokens.size(), 2u);
  EXPECT_EQ(stop.messages.back().stop_token_id(), toy[1]);
}

TEST_F(RouterServerTest, RefusesBadAndExcessRequestsWithClearErrors) {
  StartWorkers(1);
  ServerConfig c = Config();
  c.max_queued_requests = 1;
  c.max_num_seqs = 1;
  StartRouter(c);
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);

  Result too_long = Generate(Request(std::vector<int32_t>(200, 1), 100));
  EXPECT_EQ(too_long.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_long.status.error_message(),
              HasSubstr("prompt (200 tokens) + max_tokens (100) = 300 exceeds "
                        "max_model_len 256"));

  // One running (slowly), one queued, the third is refused with a hint.
  workers_[0]->set_step_delay_ms(20);
  grpc::ClientContext c1, c2;
  auto r1 = stub_->Generate(&c1, Request({1, 2}, 30));
  v1::GenerateResponse m;
  ASSERT_TRUE(r1->Read(&m));
  auto r2 = stub_->Generate(&c2, Request({1, 2}, 30));
  for (int i = 0; i < 100 && Stats().num_requests_waiting() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Result refused = Generate(Request({3, 4}, 5));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("--max-queued-requests 1"));
  ASSERT_FALSE(refused.retry_after.empty());
  EXPECT_GE(std::stoi(refused.retry_after), 100);
  c1.TryCancel();
  c2.TryCancel();
  r1->Finish();
  r2->Finish();
  EXPECT_TRUE(AllBlocksFree());
}

TEST_F(RouterServerTest, CancellationAndDeadlinesFreeBlocks) {
  StartWorkers(1);
  StartRouter(Config());
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  workers_[0]->set_step_delay_ms(5);

  grpc::ClientContext cancelled;
  auto reader = stub_->Generate(&cancelled, Request({1, 2, 3, 4, 5}, 200));
  v1::GenerateResponse m;
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_LT(Stats().num_kv_blocks_free(), Stats().num_kv_blocks_total());
  cancelled.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(AllBlocksFree());

  v1::GenerateRequest r = Request({1, 2, 3}, 200);
  r.set_deadline_unix_ms(absl::ToUnixMillis(absl::Now() + absl::Milliseconds(100)));
  Result expired = Generate(r);
  EXPECT_EQ(expired.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_FALSE(expired.tokens.empty());
  EXPECT_TRUE(AllBlocksFree());

  grpc::ClientContext grpc_deadline;
  grpc_deadline.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(100));
  Result by_grpc = Generate(Request({1, 2, 3}, 200), &grpc_deadline);
  EXPECT_EQ(by_grpc.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(AllBlocksFree());
}

TEST_F(RouterServerTest, WorkerDyingMidStepEndsRequestsAndTheGroupRecovers) {
  StartWorkers(2);
  const int port1 = std::stoi(workers_[1]->address().substr(10));
  StartRouter(Config());
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  workers_[0]->set_step_delay_ms(5);

  std::vector<std::thread> clients;
  std::vector<Result> results(3);
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&, i] { results[i] = Generate(Request({1, 2, 3}, 200)); });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  workers_[1]->Kill();
  for (auto& t : clients) t.join();
  for (const Result& r : results) {
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(r.status.error_message(), HasSubstr("rank 1 (127.0.0.1:"));
  }
  // Unhealthy: new requests are refused at once, naming the rank.
  Result refused = Generate(Request({1}, 1));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("not ready"));
  grpc::ClientContext hctx;
  v1::HealthResponse health;
  stub_->Health(&hctx, v1::HealthRequest(), &health);
  EXPECT_EQ(health.state(), v1::SERVING_STATE_UNHEALTHY);
  EXPECT_THAT(health.message(), HasSubstr("rank 1"));

  // The rank comes back at the same address; the router re-runs the
  // handshake and serves again.
  FakeWorkerOptions o;
  o.port = port1;
  auto revived = FakeWorker::Start(o);
  ASSERT_TRUE(revived.ok()) << revived.status();
  workers_[1] = std::move(revived).value();
  workers_[0]->set_step_delay_ms(0);
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  EXPECT_GE(workers_[0]->num_handshakes(), 2);
  Result ok = Generate(Request({1, 2, 3}, 5));
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.tokens, ToyTokens(3, 5));
}

TEST_F(RouterServerTest, HungWorkerTimesOutInsteadOfHanging) {
  StartWorkers(2);
  ServerConfig c = Config();
  c.worker_step_timeout_ms = 300;
  StartRouter(c);
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  workers_[1]->set_hang_steps(true);
  const auto start = std::chrono::steady_clock::now();
  Result r = Generate(Request({1, 2, 3}, 5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("rank 1"));
  EXPECT_THAT(r.status.error_message(), HasSubstr("timed out in Step after 300 ms"));
  workers_[1]->set_hang_steps(false);
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  EXPECT_TRUE(Generate(Request({1, 2, 3}, 5)).status.ok());
}

TEST_F(RouterServerTest, UnreachableWorkersMeanStartingAndUnavailable) {
  ServerConfig c;
  c.router_port = 0;
  c.workers = {"127.0.0.1:1"};
  c.worker_init_timeout_ms = 500;
  StartRouter(c);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  grpc::ClientContext hctx;
  v1::HealthResponse health;
  ASSERT_TRUE(stub_->Health(&hctx, v1::HealthRequest(), &health).ok());
  EXPECT_EQ(health.state(), v1::SERVING_STATE_STARTING);
  EXPECT_THAT(health.message(), HasSubstr("rank 0 (127.0.0.1:1)"));
  Result r = Generate(Request({1}, 1));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(RouterServerTest, BadSettingsAndBusyPortsAreClearErrors) {
  StartWorkers(1);
  StartRouter(Config());
  ServerConfig same_port = Config();
  same_port.router_port = router_->port();
  auto clash = RouterServer::Start(same_port);
  ASSERT_FALSE(clash.ok());
  EXPECT_THAT(std::string(clash.status().message()),
              HasSubstr(std::to_string(router_->port())));

  ServerConfig metrics_clash = Config();
  metrics_clash.metrics_port = router_->port();
  EXPECT_FALSE(RouterServer::Start(metrics_clash).ok());

  ServerConfig no_workers = Config();
  no_workers.workers.clear();
  no_workers.tensor_parallel_size = 1;
  EXPECT_EQ(RouterServer::Start(no_workers).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RouterServerTest, ServesMetricsOverHttpAndDrainsOnShutdown) {
  StartWorkers(1);
  ServerConfig c = Config();
  c.metrics_port = FreePort();
  StartRouter(c);
  ASSERT_EQ(WaitForState(v1::SERVING_STATE_READY), v1::SERVING_STATE_READY);
  httplib::Client http("127.0.0.1", router_->metrics_port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("# TYPE tpserve:num_requests_running gauge"));

  // A request in flight when shutdown starts still completes.
  workers_[0]->set_step_delay_ms(5);
  Result inflight;
  std::thread client([&] { inflight = Generate(Request({1, 2, 3}, 30)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  router_->Shutdown();
  client.join();
  EXPECT_TRUE(inflight.status.ok()) << inflight.status.error_message();
  EXPECT_EQ(inflight.tokens.size(), 30u);
  router_->Wait();
}

}  // namespace
}  // namespace tpserve::router
