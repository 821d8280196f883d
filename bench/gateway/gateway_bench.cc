// Gateway benchmark on a SYNTHETIC backend: the real RouterServer drives an
// in-process fake Worker (router/testing:fake_worker, toy next-token rule, no
// model; instant, or --step-ms per step like a GPU), and N concurrent clients
// stream chat completions.
//
// Phase 1 streams the same prompts straight from the router over gRPC (one
// callback reactor per stream); phase 2 streams them through the gateway over
// HTTP/SSE, read by one epoll thread (gateway/testing:sse_load_client). The
// clients hold no thread per stream, so they take little of the CPU the
// servers need. The difference of the per-chunk latency distributions is what
// the gateway adds (template + tokenize once, then per message: detokenize,
// stop-check, JSON, SSE write).
//
//   bazel run -c opt //bench/gateway:gateway_bench -- --clients 256 --max-tokens 128 [--step-ms 10]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/logging.h"
#include "common/text/tokenizer.h"
#include "gateway/gateway_server.h"
#include "gateway/testing/sse_load_client.h"
#include "proto/router.grpc.pb.h"
#include "router/router_server.h"
#include "router/testing/fake_worker.h"

namespace {

using Clock = std::chrono::steady_clock;

struct StreamTimes {
  Clock::time_point start;
  std::vector<Clock::time_point> chunks;  // arrival of each token-bearing chunk
  long tokens = 0;
  bool ok = false;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

int ProcessThreads() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  }
  return -1;
}

struct Summary {
  double wall_s = 0, tokens_per_s = 0, ttft_p50 = 0, ttft_p99 = 0, itl_p50 = 0, itl_p99 = 0;
  int ok = 0;
  long tokens = 0;
};

Summary Summarize(const std::vector<StreamTimes>& streams, Clock::duration wall) {
  Summary s;
  std::vector<double> ttft, itl;
  for (const auto& st : streams) {
    if (!st.ok || st.chunks.empty()) continue;
    ++s.ok;
    s.tokens += st.tokens;
    ttft.push_back(Ms(st.chunks[0] - st.start));
    for (size_t i = 1; i < st.chunks.size(); ++i) itl.push_back(Ms(st.chunks[i] - st.chunks[i - 1]));
  }
  s.wall_s = std::chrono::duration<double>(wall).count();
  s.tokens_per_s = s.tokens / s.wall_s;
  s.ttft_p50 = Percentile(ttft, 0.5);
  s.ttft_p99 = Percentile(ttft, 0.99);
  s.itl_p50 = Percentile(itl, 0.5);
  s.itl_p99 = Percentile(itl, 0.99);
  return s;
}

// Counts the streams still running, so the main thread can wait for all.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int left = 0;
  void Done() {
    std::lock_guard<std::mutex> lock(mu);
    if (--left == 0) cv.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return left == 0; });
  }
};

// One direct Router.Generate stream, read by gRPC's callback threads.
class DirectStream : public grpc::ClientReadReactor<tpserve::v1::GenerateResponse> {
 public:
  DirectStream(tpserve::v1::Router::Stub* stub, const std::vector<int>& prompt, int max_tokens,
               StreamTimes* out, Latch* latch)
      : out_(out), latch_(latch) {
    request_.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    request_.mutable_sampling()->set_max_tokens(max_tokens);
    request_.mutable_sampling()->set_ignore_eos(true);
    out_->start = Clock::now();
    stub->async()->Generate(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    out_->chunks.push_back(Clock::now());
    out_->tokens += response_.token_ids_size();
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    out_->ok = status.ok();
    latch_->Done();
  }

 private:
  StreamTimes* const out_;
  Latch* const latch_;
  grpc::ClientContext context_;
  tpserve::v1::GenerateRequest request_;
  tpserve::v1::GenerateResponse response_;
};

void Print(const char* name, const Summary& s, int clients, int threads) {
  std::printf(
      "| %-22s | %7d/%-4d | %9ld | %7.2f | %10.0f | %7.1f | %7.1f | %7.2f | %7.2f | %5d |\n", name,
      s.ok, clients, s.tokens, s.wall_s, s.tokens_per_s, s.ttft_p50, s.ttft_p99, s.itl_p50,
      s.itl_p99, threads);
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 256, max_tokens = 128, step_ms = 0;
  std::string model = "tests/fixtures/tiny-qwen2-chat";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--clients") clients = std::atoi(argv[i + 1]);
    else if (f == "--max-tokens") max_tokens = std::atoi(argv[i + 1]);
    else if (f == "--step-ms") step_ms = std::atoi(argv[i + 1]);
    else if (f == "--model") model = argv[i + 1];
  }
  (void)tpserve::InitLogging("bench", "warning");
  tpserve::router::testing::FakeWorkerOptions wopt;
  wopt.vocab_size = 151936;
  wopt.max_model_len = 4096;
  wopt.num_blocks = 1 << 17;
  wopt.strict = false;
  auto worker = tpserve::router::testing::FakeWorker::Start(wopt).value();
  worker->set_step_delay_ms(step_ms);

  tpserve::ServerConfig rc;
  rc.router_port = 0;
  rc.workers = {worker->address()};
  rc.tensor_parallel_size = 1;
  rc.model = model;
  rc.max_num_seqs = std::max(256, clients);
  rc.max_queued_requests = 4 * clients;
  auto router = tpserve::router::RouterServer::Start(rc).value();
  std::string router_addr = "127.0.0.1:" + std::to_string(router->port());
  auto stub = tpserve::v1::Router::NewStub(
      grpc::CreateChannel(router_addr, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 1000; ++i) {
    grpc::ClientContext ctx;
    tpserve::v1::HealthResponse h;
    stub->Health(&ctx, tpserve::v1::HealthRequest(), &h);
    if (h.state() == tpserve::v1::SERVING_STATE_READY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  tpserve::ServerConfig gc;
  gc.model = model;
  gc.served_model_name = "bench";
  gc.host = "127.0.0.1";
  gc.port = 0;
  gc.routers = {router_addr};
  auto gateway = tpserve::gateway::GatewayServer::Start(gc).value();

  // The prompt the gateway will send, so both phases do the same work.
  auto tok = tpserve::text::Tokenizer::Load(model).value();
  std::string rendered =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\n<|im_start|>user\nTell me a long story about a "
      "gateway.<|im_end|>\n<|im_start|>assistant\n";
  std::vector<int> prompt;
  for (int32_t id : tok->Encode(rendered, true)) prompt.push_back(id);
  const std::string body =
      "{\"model\": \"bench\", \"stream\": true, \"max_tokens\": " + std::to_string(max_tokens) +
      ", \"ignore_eos\": true, \"temperature\": 0, \"stream_options\": {\"include_usage\": true, "
      "\"continuous_usage_stats\": true}, \"messages\": [{\"role\": \"user\", \"content\": "
      "\"Tell me a long story about a gateway.\"}]}";

  std::printf("SYNTHETIC backend: RouterServer + fake Worker (no model, %s). %d concurrent "
              "streaming clients, %d tokens each, prompt %zu tokens, %u hardware threads.\n\n",
              step_ms > 0 ? (std::to_string(step_ms) + " ms per step").c_str() : "instant steps",
              clients, max_tokens, prompt.size(), std::thread::hardware_concurrency());
  std::printf("| path                   | ok/clients   | tokens    | wall s  | tokens/s   | TTFT "
              "p50 ms | TTFT p99 ms | chunk p50 ms | chunk p99 ms | threads |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n");
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<StreamTimes> streams(clients);
    int peak_threads = 0;
    auto t0 = Clock::now();
    if (phase == 0) {
      Latch latch;
      latch.left = clients;
      std::vector<std::unique_ptr<DirectStream>> calls;
      for (int c = 0; c < clients; ++c) {
        calls.push_back(
            std::make_unique<DirectStream>(stub.get(), prompt, max_tokens, &streams[c], &latch));
      }
      peak_threads = ProcessThreads();
      latch.Wait();
    } else {
      auto client =
          tpserve::gateway::testing::SseLoadClient::Start(gateway->port(), "/v1/chat/completions",
                                                          body, clients)
              .value();
      while (client->PollUntil(Clock::now() + std::chrono::milliseconds(200)) > 0) {
        peak_threads = std::max(peak_threads, ProcessThreads());
      }
      for (int c = 0; c < clients; ++c) {
        const auto& s = client->streams()[c];
        streams[c].start = s.start;
        streams[c].chunks = s.token_chunks;
        streams[c].tokens = s.tokens;
        streams[c].ok = s.done && !s.error_event;
      }
    }
    Summary s = Summarize(streams, Clock::now() - t0);
    Print(phase == 0 ? "router direct (gRPC)" : "through gateway (SSE)", s, clients, peak_threads);
  }
  gateway->Shutdown();
  router->Shutdown();
  return 0;
}
