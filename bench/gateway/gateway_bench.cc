// Gateway benchmark on a SYNTHETIC backend: the real RouterServer drives an
// instant in-process fake Worker (router/testing:fake_worker, toy next-token
// rule, no model), and N concurrent clients stream chat completions.
//
// Phase 1 streams the same prompts straight from the router over gRPC;
// phase 2 streams them through the gateway over HTTP/SSE. The difference of
// the per-chunk latency distributions is what the gateway adds (template +
// tokenize once, then per token: detokenize, stop-check, JSON, SSE write).
//
//   bazel run -c opt //bench/gateway:gateway_bench -- --clients 256 --max-tokens 128
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/logging.h"
#include "common/text/tokenizer.h"
#include "gateway/gateway_server.h"
#include "proto/router.grpc.pb.h"
#include "router/router_server.h"
#include "router/testing/fake_worker.h"

namespace {

using Clock = std::chrono::steady_clock;

struct StreamTimes {
  Clock::time_point start;
  std::vector<Clock::time_point> chunks;  // arrival of each token-bearing chunk
  int tokens = 0;
  bool ok = false;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
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

void DirectStream(tpserve::v1::Router::Stub* stub, const std::vector<int>& prompt, int max_tokens,
                  StreamTimes* out) {
  tpserve::v1::GenerateRequest req;
  req.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  out->start = Clock::now();
  auto reader = stub->Generate(&ctx, req);
  tpserve::v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    out->chunks.push_back(Clock::now());
    out->tokens += resp.token_ids_size();
  }
  out->ok = reader->Finish().ok();
}

void GatewayStream(int port, int max_tokens, StreamTimes* out) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  out->start = Clock::now();
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return;
  }
  std::string body = "{\"model\": \"bench\", \"stream\": true, \"max_tokens\": " +
                     std::to_string(max_tokens) +
                     ", \"ignore_eos\": true, \"temperature\": 0, \"stream_options\": "
                     "{\"include_usage\": true}, \"messages\": [{\"role\": \"user\", \"content\": "
                     "\"Tell me a long story about a gateway.\"}]}";
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string buf;
  char chunk[16384];
  size_t scanned = 0;
  while (true) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    auto now = Clock::now();
    buf.append(chunk, static_cast<size_t>(n));
    // One timestamp per SSE event carrying generated text.
    size_t pos;
    while ((pos = buf.find("\n\n", scanned)) != std::string::npos) {
      std::string event = buf.substr(scanned, pos - scanned);
      scanned = pos + 2;
      if (event.find("\"delta\":{\"content\"") != std::string::npos) out->chunks.push_back(now);
      size_t u = event.find("\"completion_tokens\":");
      if (u != std::string::npos && event.find("\"choices\":[]") != std::string::npos) {
        out->tokens = std::atoi(event.c_str() + u + 20);
      }
      if (event.find("[DONE]") != std::string::npos) out->ok = true;
    }
  }
  close(fd);
}

void Print(const char* name, const Summary& s, int clients) {
  std::printf("| %-22s | %7d/%-4d | %9ld | %7.2f | %10.0f | %7.2f | %7.2f | %7.2f | %7.2f |\n",
              name, s.ok, clients, s.tokens, s.wall_s, s.tokens_per_s, s.ttft_p50, s.ttft_p99,
              s.itl_p50, s.itl_p99);
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 256, max_tokens = 128;
  std::string model = "tests/fixtures/tiny-qwen2-chat";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--clients") clients = std::atoi(argv[i + 1]);
    else if (f == "--max-tokens") max_tokens = std::atoi(argv[i + 1]);
    else if (f == "--model") model = argv[i + 1];
  }
  (void)tpserve::InitLogging("bench", "warning");
  tpserve::router::testing::FakeWorkerOptions wopt;
  wopt.vocab_size = 151936;
  wopt.max_model_len = 4096;
  wopt.num_blocks = 1 << 16;
  wopt.strict = false;
  auto worker = tpserve::router::testing::FakeWorker::Start(wopt).value();

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

  std::printf("SYNTHETIC backend: RouterServer + instant fake Worker (no model). %d concurrent "
              "streaming clients, %d tokens each, prompt %zu tokens, %u hardware threads.\n\n",
              clients, max_tokens, prompt.size(), std::thread::hardware_concurrency());
  std::printf("| path                   | ok/clients   | tokens    | wall s  | tokens/s   | TTFT "
              "p50 | TTFT p99 | chunk p50 ms | chunk p99 ms |\n|---|---|---|---|---|---|---|---|---|\n");
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<StreamTimes> streams(clients);
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        if (phase == 0) DirectStream(stub.get(), prompt, max_tokens, &streams[c]);
        else GatewayStream(gateway->port(), max_tokens, &streams[c]);
      });
    }
    for (auto& t : threads) t.join();
    Summary s = Summarize(streams, Clock::now() - t0);
    Print(phase == 0 ? "router direct (gRPC)" : "through gateway (SSE)", s, clients);
  }
  gateway->Shutdown();
  router->Shutdown();
  return 0;
}
