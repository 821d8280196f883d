// Streaming at scale through the real processes: `tpserve router` and
// `tpserve gateway` (as deployments run them) in front of an in-process fake
// worker that takes 10 ms per step, 1,024 concurrent SSE streams read by one
// epoll thread. Checks issue 17's CPU acceptance: the clients receive >= 95%
// of the tokens the workers produce while all streams are open, and the
// router's and gateway's thread counts stay within the documented bound
// (docs/architecture.md, "Threads"), i.e. no thread per stream anywhere.
// Every wait is bounded; everything is on loopback.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "cli/child_process.h"
#include "gateway/testing/raw_http.h"
#include "gateway/testing/sse_load_client.h"
#include "gtest/gtest.h"
#include "proto/router.grpc.pb.h"
#include "router/testing/fake_worker.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kBinary[] = "cli/tpserve";
constexpr char kModel[] = "tests/fixtures/tiny-qwen2-chat";
constexpr int kStreams = 1024;
constexpr int kStepMs = 10;
// Long enough that the backlog's ups and downs (a few steps' worth) are
// small against what flows through.
constexpr int kMeasureSeconds = 8;

// The documented bounds (docs/architecture.md): fixed threads of each
// process plus gRPC's pools, which grow with the cores, never with streams;
// the gateway also has cpp-httplib's thread per open connection.
int RouterThreadBound() { return 32 + 4 * static_cast<int>(std::thread::hardware_concurrency()); }
int GatewayThreadBound() { return kStreams + RouterThreadBound(); }

int Threads(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Starts `tpserve <args>` and returns it once it printed its port.
cli::ChildProcess StartProcess(const std::string& name, std::vector<std::string> args, int* port) {
  args.insert(args.begin(), kBinary);
  auto child = cli::ChildProcess::Spawn(name, args, {});
  EXPECT_TRUE(child.ok()) << child.status();
  const std::regex listening(".*listening on port ([0-9]+).*");
  const auto deadline = Clock::now() + seconds(60);
  while (Clock::now() < deadline && child.ok()) {
    auto line = child->ReadLine(milliseconds(200));
    if (!line.ok()) break;
    std::smatch m;
    if (line->has_value() && std::regex_match(**line, m, listening)) {
      *port = std::stoi(m[1]);
      return std::move(*child);
    }
  }
  ADD_FAILURE() << name << " did not start";
  return std::move(*child);
}

// The router's tpserve:generation_tokens_total: tokens the worker sampled
// and the router handed to streams.
double RouterTokens(v1::Router::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
  v1::StatsRequest request;
  request.set_include_metrics_text(true);
  v1::StatsResponse stats;
  if (!stub->Stats(&ctx, request, &stats).ok()) return -1;
  std::smatch m;
  const std::string& text = stats.prometheus_text();
  static const std::regex kLine("\ntpserve:generation_tokens_total ([0-9.e+]+)\n");
  return std::regex_search(text, m, kLine) ? std::stod(m[1]) : -1;
}

TEST(StreamingLoadTest, ThousandStreamsKeepUpWithBoundedThreads) {
  rlimit files;
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);  // the children inherit it
  ASSERT_GE(files.rlim_cur, 4 * kStreams) << "raise ulimit -n";

  router::testing::FakeWorkerOptions wopt;
  wopt.vocab_size = 151936;
  wopt.max_model_len = 4096;
  wopt.num_blocks = 1 << 17;
  wopt.strict = false;
  auto worker = router::testing::FakeWorker::Start(wopt);
  ASSERT_TRUE(worker.ok()) << worker.status();
  (*worker)->set_step_delay_ms(kStepMs);

  int router_port = 0;
  cli::ChildProcess router = StartProcess(
      "router",
      {"router", "--router-port", "0", "--worker", (*worker)->address(), "--model", kModel,
       "--max-num-seqs", std::to_string(kStreams), "--max-queued-requests",
       std::to_string(2 * kStreams), "--log-level", "warning"},
      &router_port);
  ASSERT_GT(router_port, 0);
  const std::string router_address = "127.0.0.1:" + std::to_string(router_port);
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(router_address, grpc::InsecureChannelCredentials()));
  int gateway_port = 0;
  cli::ChildProcess gateway = StartProcess(
      "gateway",
      {"gateway", "--port", "0", "--host", "127.0.0.1", "--router", router_address, "--model",
       kModel, "--log-level", "warning"},
      &gateway_port);
  ASSERT_GT(gateway_port, 0);
  bool healthy = false;
  for (int i = 0; i < 300 && !healthy; ++i) {
    healthy = gateway::testing::Request(gateway_port, "GET", "/health").status == 200;
    if (!healthy) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(healthy) << "the gateway never saw a ready router";
  const int router_idle_threads = Threads(router.pid());
  const int gateway_idle_threads = Threads(gateway.pid());

  // Long enough that no stream ends during the measurement.
  const std::string body =
      R"({"prompt": [9707, 11, 1879, 0, 358, 1079, 264, 1273], "max_tokens": 3000,
          "ignore_eos": true, "temperature": 0, "stream": true,
          "stream_options": {"include_usage": true, "continuous_usage_stats": true}})";
  auto client = gateway::testing::SseLoadClient::Start(gateway_port, "/v1/completions", body,
                                                       kStreams);
  ASSERT_TRUE(client.ok()) << client.status();
  gateway::testing::SseLoadClient& c = **client;

  // Every stream under way.
  const auto ramp_deadline = Clock::now() + seconds(60);
  auto all_started = [&] {
    for (const auto& s : c.streams()) {
      if (s.tokens == 0) return false;
    }
    return true;
  };
  while (!all_started() && Clock::now() < ramp_deadline && c.open() == kStreams) {
    c.PollUntil(Clock::now() + milliseconds(100));
  }
  ASSERT_TRUE(all_started()) << "streams with tokens: " << [&] {
    int n = 0;
    for (const auto& s : c.streams()) n += s.tokens > 0;
    return n;
  }() << " of " << kStreams;
  // Past the ramp the backlog settles (the per-stream flow-control windows
  // fill and the router starts coalescing); then measure.
  c.PollUntil(Clock::now() + seconds(3));

  const double emitted0 = RouterTokens(stub.get());
  const long received0 = c.total_tokens();
  c.PollUntil(Clock::now() + seconds(kMeasureSeconds / 2));
  const int router_threads = Threads(router.pid());
  const int gateway_threads = Threads(gateway.pid());
  c.PollUntil(Clock::now() + seconds(kMeasureSeconds - kMeasureSeconds / 2));
  const double emitted1 = RouterTokens(stub.get());
  const long received1 = c.total_tokens();
  ASSERT_EQ(c.open(), kStreams) << "streams ended early";

  const double emitted = emitted1 - emitted0;
  const double received = static_cast<double>(received1 - received0);
  std::printf(
      "%d streams, %d ms steps: workers emitted %.0f tokens in %d s (%.0f/s), clients received "
      "%.0f (%.1f%%)\nthreads: router %d (idle %d, bound %d), gateway %d (idle %d, bound %d)\n",
      kStreams, kStepMs, emitted, kMeasureSeconds, emitted / kMeasureSeconds, received,
      100 * received / emitted,
      router_threads, router_idle_threads, RouterThreadBound(), gateway_threads,
      gateway_idle_threads, GatewayThreadBound());
  ASSERT_GT(emitted, 0);
  EXPECT_GE(received, 0.95 * emitted);
  EXPECT_LE(router_threads, RouterThreadBound());
  EXPECT_LE(gateway_threads, GatewayThreadBound());

  // Every client hangs up: the router's requests go within a few steps.
  c.CloseAll();
  const auto gone_deadline = Clock::now() + seconds(10);
  int running = -1;
  while (Clock::now() < gone_deadline) {
    grpc::ClientContext ctx;
    v1::StatsResponse stats;
    if (stub->Stats(&ctx, v1::StatsRequest(), &stats).ok()) {
      running = stats.num_requests_running() + stats.num_requests_waiting();
      if (running == 0) break;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(running, 0);

  gateway.Signal(SIGTERM);
  EXPECT_EQ(gateway.StopAndWait(seconds(20)), "exited with code 0");
  router.Signal(SIGTERM);
  EXPECT_EQ(router.StopAndWait(seconds(20)), "exited with code 0");
}

}  // namespace
}  // namespace tpserve
