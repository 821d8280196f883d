// Router.Generate on the callback API, against an in-process fake worker:
// hundreds of streams take no thread each, a client that stops reading gets
// the tokens sampled meanwhile coalesced into fewer messages, and a client
// that cancels frees the request.
#include <dirent.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/router.grpc.pb.h"
#include "router/router_server.h"
#include "router/testing/fake_worker.h"

namespace tpserve::router {
namespace {

using ::tpserve::router::testing::FakeWorker;
using ::tpserve::router::testing::FakeWorkerOptions;

int ProcessThreads() {
  DIR* dir = opendir("/proc/self/task");
  int n = 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

// A Generate call read by gRPC's callback threads; reading can be held.
class Stream : public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  Stream(v1::Router::Stub* stub, int max_tokens, bool hold_reads) : hold_(hold_reads) {
    request_.add_prompt_token_ids(7);
    request_.add_prompt_token_ids(8);
    request_.mutable_sampling()->set_max_tokens(max_tokens);
    request_.mutable_sampling()->set_ignore_eos(true);
    stub->async()->Generate(&context_, &request_, this);
    if (!hold_) StartRead(&response_);
    StartCall();
  }
  // Starts reading a stream created with hold_reads.
  void Release() { StartRead(&response_); }
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++messages_;
      tokens_ += response_.token_ids_size();
    }
    cv_.notify_all();
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

  // Waits for the end (bounded); returns the status.
  grpc::Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(30), [this] { return done_; }));
    return status_;
  }
  bool WaitForTokens(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return tokens_ >= n || done_; });
  }
  int tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  int messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  const bool hold_;
  grpc::ClientContext context_;
  v1::GenerateRequest request_;
  v1::GenerateResponse response_;
  std::mutex mu_;
  std::condition_variable cv_;
  int messages_ = 0;
  int tokens_ = 0;
  bool done_ = false;
  grpc::Status status_;
};

class GenerateReactorTest : public ::testing::Test {
 protected:
  void Start(int step_delay_ms, grpc::ChannelArguments args = {}) {
    FakeWorkerOptions options;
    options.num_blocks = 4096;
    options.max_model_len = 4096;
    options.strict = false;
    worker_ = FakeWorker::Start(options).value();
    worker_->set_step_delay_ms(step_delay_ms);
    ServerConfig c;
    c.router_port = 0;
    c.workers = {worker_->address()};
    c.block_size = 16;
    c.max_num_seqs = 512;
    router_ = RouterServer::Start(c).value();
    stub_ = v1::Router::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(router_->port()), grpc::InsecureChannelCredentials(), args));
    for (int i = 0; i < 300; ++i) {
      grpc::ClientContext ctx;
      v1::HealthResponse h;
      stub_->Health(&ctx, v1::HealthRequest(), &h);
      if (h.state() == v1::SERVING_STATE_READY) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "the router never became ready";
  }

  int Running() {
    grpc::ClientContext ctx;
    v1::StatsResponse s;
    EXPECT_TRUE(stub_->Stats(&ctx, v1::StatsRequest(), &s).ok());
    return s.num_requests_running() + s.num_requests_waiting();
  }

  std::unique_ptr<FakeWorker> worker_;
  std::unique_ptr<RouterServer> router_;
  std::unique_ptr<v1::Router::Stub> stub_;
};

TEST_F(GenerateReactorTest, HundredsOfStreamsTakeNoThreadEach) {
  Start(/*step_delay_ms=*/5);
  constexpr int kStreams = 300;
  constexpr int kTokens = 40;
  // Warm up gRPC's pools so that they are in the baseline.
  Stream(stub_.get(), 2, false).Wait();
  const int before = ProcessThreads();
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<Stream>(stub_.get(), kTokens, false));
  }
  ASSERT_TRUE(streams.back()->WaitForTokens(5));
  const int during = ProcessThreads();
  for (auto& s : streams) {
    EXPECT_TRUE(s->Wait().ok());
    EXPECT_EQ(s->tokens(), kTokens);
  }
  // Same process: the router, the fake worker and these clients. A thread
  // per stream anywhere would add hundreds.
  EXPECT_LT(during - before, 16) << before << " threads before, " << during << " during";
}

TEST_F(GenerateReactorTest, TokensSampledWhileTheClientIsNotReadingGoOutTogether) {
  // A small fixed window, as the gateway uses: the router's writes wait
  // while the client does not read.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 256);
  Start(/*step_delay_ms=*/1, args);
  constexpr int kTokens = 300;
  Stream stream(stub_.get(), kTokens, /*hold_reads=*/true);
  // Long enough for the worker to sample every token.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stream.Release();
  EXPECT_TRUE(stream.Wait().ok());
  EXPECT_EQ(stream.tokens(), kTokens);
  // One message per step had the client kept up; it did not.
  EXPECT_LT(stream.messages(), kTokens / 3) << stream.messages() << " messages";
}

TEST_F(GenerateReactorTest, ACancelledCallFreesItsRequest) {
  Start(/*step_delay_ms=*/5);
  Stream stream(stub_.get(), 4000, false);
  ASSERT_TRUE(stream.WaitForTokens(3));
  EXPECT_EQ(Running(), 1);
  stream.Cancel();
  EXPECT_EQ(stream.Wait().error_code(), grpc::StatusCode::CANCELLED);
  int running = -1;
  for (int i = 0; i < 200 && (running = Running()) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(running, 0);
}

}  // namespace
}  // namespace tpserve::router
