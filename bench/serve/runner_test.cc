#include "bench/serve/runner.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "bench/serve/testing/fake_sse_server.h"

namespace tpserve::bench {
namespace {

using testing::FakeServerOptions;
using testing::FakeSseServer;

RunInput Requests(int port, int n, int max_tokens, const std::string& path = "/v1/completions",
                  std::vector<std::string> headers = {}) {
  RunInput in;
  in.kind = path == "/v1/chat/completions" ? ApiKind::kChat : ApiKind::kCompletions;
  for (int i = 0; i < n; ++i) {
    in.requests.push_back({absl::StrCat("http://127.0.0.1:", port, path),
                           absl::StrCat(R"({"max_tokens": )", max_tokens, "}"), headers});
    in.prompt_lens.push_back(10 + i);
    in.arrivals.push_back(0.0);
  }
  return in;
}

std::unique_ptr<HttpClient> Client() {
  absl::StatusOr<std::unique_ptr<HttpClient>> c = HttpClient::Create(64);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

TEST(RunnerTest, StreamsAreTimedAndCounted) {
  FakeServerOptions o;
  o.interval_ms = 5;  // tokens 5 ms apart, so the gaps are visible
  FakeSseServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto client = Client();
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    RunResult r = RunRequests(*client, Requests(server.port(), 4, 6, path), nullptr);
    ASSERT_EQ(r.outputs.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const RequestOutput& out = r.outputs[i];
      ASSERT_TRUE(out.success) << path << ": " << out.error;
      EXPECT_EQ(out.output_tokens, 6);
      EXPECT_EQ(out.generated_text, " tok tok tok tok tok tok");
      EXPECT_EQ(out.prompt_len, 10 + static_cast<int>(i));
      EXPECT_EQ(out.itl.size(), 5u);
      EXPECT_GT(out.ttft, 0);
      EXPECT_GE(out.latency, out.ttft + 0.015);  // 5 gaps of >= ~5 ms, loosely
      EXPECT_LE(out.latency, r.duration_s);
    }
  }
}

TEST(RunnerTest, MaxConcurrencyIsRespected) {
  FakeServerOptions o;
  o.interval_ms = 2;
  FakeSseServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto client = Client();
  RunInput in = Requests(server.port(), 24, 4);
  in.max_concurrency = 3;
  RunResult r = RunRequests(*client, in, nullptr);
  for (const RequestOutput& out : r.outputs) ASSERT_TRUE(out.success) << out.error;
  EXPECT_LE(server.peak_open(), 3);
  EXPECT_GE(server.peak_open(), 2);
  EXPECT_EQ(server.answered(), 24);
}

TEST(RunnerTest, ArrivalTimesAreKept) {
  FakeSseServer server(FakeServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  auto client = Client();
  RunInput in = Requests(server.port(), 3, 2);
  in.arrivals = {0.0, 0.15, 0.3};
  RunResult r = RunRequests(*client, in, nullptr);
  EXPECT_NEAR(r.outputs[1].start_time, 0.15, 0.05);
  EXPECT_NEAR(r.outputs[2].start_time, 0.3, 0.05);
  EXPECT_GE(r.duration_s, 0.3);
}

TEST(RunnerTest, ErrorsAreReportedPerRequest) {
  FakeServerOptions o;
  o.api_key = "right";
  FakeSseServer server(o);
  ASSERT_TRUE(server.Start().ok());
  auto client = Client();
  RunResult bad = RunRequests(
      *client, Requests(server.port(), 2, 3, "/v1/completions", {"Authorization: Bearer wrong"}),
      nullptr);
  for (const RequestOutput& out : bad.outputs) {
    EXPECT_FALSE(out.success);
    EXPECT_EQ(out.error, "HTTP 401: Invalid API key");
  }
  RunResult good = RunRequests(
      *client, Requests(server.port(), 2, 3, "/v1/completions", {"Authorization: Bearer right"}),
      nullptr);
  for (const RequestOutput& out : good.outputs) EXPECT_TRUE(out.success) << out.error;

  FakeServerOptions mid;
  mid.error_after_tokens = 2;
  FakeSseServer failing(mid);
  ASSERT_TRUE(failing.Start().ok());
  RunResult r = RunRequests(*client, Requests(failing.port(), 1, 5), nullptr);
  EXPECT_EQ(r.outputs[0].error, "error in stream: fake failure mid-stream");
}

TEST(RunnerTest, UnreachableServer) {
  int port = 0;
  {
    FakeSseServer gone(FakeServerOptions{});
    ASSERT_TRUE(gone.Start().ok());
    port = gone.port();
  }  // closed: nothing listens there now
  auto client = Client();
  RunResult r = RunRequests(*client, Requests(port, 1, 2), nullptr);
  EXPECT_FALSE(r.outputs[0].success);
  EXPECT_EQ(r.outputs[0].http_status, 0);
  EXPECT_FALSE(r.outputs[0].error.empty());
}

TEST(HttpClientTest, FetchGet) {
  FakeSseServer server(FakeServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  auto client = Client();
  absl::StatusOr<HttpResponse> r =
      client->Fetch({absl::StrCat("http://127.0.0.1:", server.port(), "/v1/models"), "", {}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("fake-model"), std::string::npos);
}

}  // namespace
}  // namespace tpserve::bench
