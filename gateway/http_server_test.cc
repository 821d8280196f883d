// The connection layer under the gateway (gateway/http_server.h), through a
// real GatewayServer on loopback: request limits whatever the framing,
// headers as sent, half-closing clients, slow and trickling connections.
#include "gateway/http_server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/serve_plan.h"
#include "gateway/testing/gateway_fixture.h"
#include "gateway/testing/raw_http.h"

namespace tpserve::gateway {
namespace {

using nlohmann::json;
using testing::RawConnection;
using testing::RawResponse;
using testing::Request;
using Clock = std::chrono::steady_clock;

constexpr char kCompletion[] = R"({"model": "tiny", "prompt": "x", "max_tokens": 3})";

class HttpServerTest : public testing::GatewayFixture {
 protected:
  static std::string Code(const RawResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) return "";
    return j["error"]["code"].get<std::string>();
  }
};

// A chunked upload over --max-request-body-bytes, sent whatever the server
// says, from another thread: the sender must not block the reader.
RawResponse SendChunked(int port, const std::string& body, size_t chunk) {
  RawConnection conn(port);
  std::thread sender([&] {
    if (!conn.SendRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")) {
      return;
    }
    for (size_t pos = 0; pos < body.size(); pos += chunk) {
      std::string part = body.substr(pos, chunk);
      char size[32];
      snprintf(size, sizeof(size), "%zx\r\n", part.size());
      if (!conn.SendRaw(size + part + "\r\n")) return;
    }
    conn.SendRaw("0\r\n\r\n");
  });
  RawResponse r = conn.ReadResponse(10000);
  sender.join();
  return r;
}

// issue 22: a 200 MB chunked body grew the gateway by 1.6 GB; the limit only
// applied to Content-Length.
TEST_F(HttpServerTest, ChunkedBodiesObeyTheBodyLimit) {
  StartGateway();  // 64 KiB limit
  std::string big = R"({"model": "tiny", "max_tokens": 3, "prompt": ")" +
                    std::string(1 << 20, 'a') + R"("})";
  RawResponse r = SendChunked(port(), big, 16 * 1024);
  ExpectError(r, 413, "");
  EXPECT_EQ(Code(r), "request_too_large");
  EXPECT_NE(r.body.find("65536 bytes"), std::string::npos) << r.body;
  EXPECT_TRUE(router_->requests().empty());
  // Chunked bodies under the limit are served as before.
  r = SendChunked(port(), kCompletion, 7);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(router_->requests().size(), 1u);
}

TEST_F(HttpServerTest, CompressedBodiesAndOddFramingAreRefused) {
  StartGateway();
  ExpectError(Request(port(), "POST", "/v1/completions", kCompletion,
                      {"Content-Encoding: gzip"}),
              415, "");
  RawConnection conn(port());
  conn.SendRaw(std::string("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n") +
               "Content-Type: application/json\r\nContent-Length: 5\r\n" +
               "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  ExpectError(conn.ReadResponse(), 400, "");
  EXPECT_TRUE(router_->requests().empty());
}

// issue 22: the Authorization header was percent-decoded and cut at a NUL
// byte before the comparison ("Bearer %73ecret" passed for "secret").
TEST_F(HttpServerTest, ApiKeysAreComparedAsSent) {
  StartGateway({"sk-test", "sk%41"});
  const std::string headers[] = {"Authorization: Bearer %73k-test",
                                 "Authorization: Bearer sk-test%00tail",
                                 std::string("Authorization: Bearer sk-test\0tail", 34),
                                 "Authorization: Bearer skA"};
  for (const std::string& header : headers) {
    RawResponse r = Request(port(), "GET", "/v1/models", "", {header});
    ExpectError(r, 401, "");
  }
  EXPECT_EQ(Request(port(), "GET", "/v1/models", "", {"Authorization: Bearer sk-test"}).status,
            200);
  // A key with a '%' in it works as written.
  EXPECT_EQ(Request(port(), "GET", "/v1/models", "", {"Authorization: Bearer sk%41"}).status, 200);
  ExpectError(Request(port(), "GET", "/v1/models", "",
                      {"Authorization: Bearer sk-test", "Authorization: Bearer sk-test"}),
              401, "");
}

TEST_F(HttpServerTest, UnauthenticatedUploadsAreRefusedBeforeTheBody) {
  StartGateway({"sk-test"});
  // The client waits for "100 Continue" before sending its body; it gets
  // the 401 instead.
  RawConnection conn(port());
  conn.SendRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 60000\r\nExpect: 100-continue\r\n\r\n");
  std::string got = conn.ReadUntil("\r\n\r\n", 2000);
  EXPECT_EQ(got.rfind("HTTP/1.1 401", 0), 0u) << got;
}

// issue 22: text/plain and form posts were accepted, so any web page could
// drive a keyless gateway on localhost without a CORS preflight.
TEST_F(HttpServerTest, JsonEndpointsNeedAJsonContentType) {
  StartGateway();
  for (const char* type : {"Content-Type: text/plain", "Content-Type: application/x-www-form-urlencoded",
                           "Content-Type: multipart/form-data; boundary=x"}) {
    RawResponse r = Request(port(), "POST", "/v1/completions", kCompletion, {type});
    ExpectError(r, 415, "");
    EXPECT_EQ(Code(r), "unsupported_media_type");
  }
  RawConnection none(port());
  none.SendRaw(std::string("POST /tokenize HTTP/1.1\r\nHost: x\r\nConnection: close\r\n") +
               "Content-Length: 17\r\n\r\n{\"prompt\": \"hi\"}");
  ExpectError(none.ReadResponse(), 415, "");
  EXPECT_TRUE(router_->requests().empty());
  EXPECT_EQ(Request(port(), "POST", "/v1/completions", kCompletion,
                    {"Content-Type: Application/JSON; charset=utf-8"})
                .status,
            200);
}

TEST_F(HttpServerTest, UnknownPathsAreNotFoundNotModelNotFound) {
  StartGateway();
  RawResponse r = Request(port(), "GET", "/v1/nothing");
  ExpectError(r, 404, "");
  EXPECT_EQ(Code(r), "not_found");
  r = Request(port(), "POST", "/v1/completions", R"({"model": "gpt-4", "prompt": "x"})");
  ExpectError(r, 404, "");
  EXPECT_EQ(Code(r), "model_not_found");
}

// issue 22: errors shown to clients named internal worker addresses.
TEST_F(HttpServerTest, ServerErrorsDoNotNameInternalAddresses) {
  StartGateway();
  router_->FailNext(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "worker rank 1 (10.9.8.7:50062) failed in Step: Socket closed"),
                    1);
  RawResponse r = Request(port(), "POST", "/v1/completions", kCompletion);
  ExpectError(r, 503, "");
  EXPECT_EQ(r.body.find("10.9.8.7"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("rank"), std::string::npos) << r.body;
  router_->FailNext(grpc::Status(grpc::StatusCode::INTERNAL, "bug at 10.9.8.7:50051"), 1);
  r = Request(port(), "POST", "/v1/completions", kCompletion);
  ExpectError(r, 500, "");
  EXPECT_EQ(r.body.find("10.9.8.7"), std::string::npos) << r.body;
  // Client errors keep their detail.
  router_->FailNext(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt needs 9 blocks"), 1);
  r = Request(port(), "POST", "/v1/completions", kCompletion);
  EXPECT_NE(r.body.find("prompt needs 9 blocks"), std::string::npos) << r.body;
}

// issue 22: a client that half-closed after its request got no answer (the
// gateway took the FIN for a hang-up and aborted the request).
TEST_F(HttpServerTest, HalfClosedClientsStillGetTheirAnswer) {
  testing::FakeRouterScript slow = Script();
  slow.first_token_delay = std::chrono::milliseconds(300);
  router_->SetScript(slow);
  StartGateway();
  for (bool stream : {false, true}) {
    RawConnection conn(port());
    json body = {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 3}, {"stream", stream}};
    ASSERT_TRUE(conn.Send("POST", "/v1/completions", body.dump()));
    conn.ShutdownWrite();
    RawResponse r = conn.ReadResponse();
    ASSERT_EQ(r.status, 200) << "stream=" << stream << " " << r.body;
    if (stream) {
      auto events = testing::SseEvents(r.body);
      ASSERT_FALSE(events.empty());
      EXPECT_EQ(events.back(), "[DONE]");
      EXPECT_EQ(r.body.find("error"), std::string::npos) << r.body;
    } else {
      EXPECT_EQ(Body(r)["choices"][0]["finish_reason"], "length") << r.body;
    }
  }
  EXPECT_EQ(router_->cancelled(), 0);
}

TEST_F(HttpServerTest, ClosedClientsAreStillCancelledAtOnce) {
  testing::FakeRouterScript slow = Script();
  slow.first_token_delay = std::chrono::seconds(5);
  router_->SetScript(slow);
  StartGateway();
  RawConnection conn(port());
  ASSERT_TRUE(conn.Send("POST", "/v1/completions", kCompletion));
  for (int i = 0; i < 200 && router_->active() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(router_->active(), 1);
  // Shut both ways, as close() does: the gateway's probe meets a reset.
  conn.ShutdownWrite();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(router_->cancelled(), 0);  // a half-close alone is not a hang-up
  auto t0 = Clock::now();
  conn.Close();
  EXPECT_TRUE(router_->WaitForCancelled(1, std::chrono::seconds(1)));
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500));
}

// Connections that send a partial request head and then one more byte at a
// time (slowloris), driven from one thread without blocking.
class Trickler {
 public:
  Trickler(int port, int n) {
    for (int i = 0; i < n; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      // Blocking: on loopback it returns once the SYN is queued, so the head
      // is never sent on a half-open socket.
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
      fds_.push_back(fd);
    }
  }
  ~Trickler() {
    Stop();
    for (int fd : fds_) close(fd);
  }
  // Sends one header byte on every connection every `every` until Stop().
  void Start(std::chrono::milliseconds every) {
    thread_ = std::thread([this, every] {
      static constexpr char kHead[] = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ";
      for (int round = 0; !stop_.load(); ++round) {
        for (int fd : fds_) {
          if (round == 0) {
            send(fd, kHead, sizeof(kHead) - 1, MSG_NOSIGNAL);
          } else {
            send(fd, "a", 1, MSG_NOSIGNAL);
          }
        }
        std::this_thread::sleep_for(every);
      }
    });
  }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  // Connections the server has closed (EOF or reset).
  int Closed() const {
    int closed = 0;
    for (int fd : fds_) {
      char buf[512];
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      closed += n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ? 1 : 0;
    }
    return closed;
  }

 private:
  std::vector<int> fds_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Client descriptors this process can open beside the server's.
int AffordableConnections(int wanted) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  return std::min<int>(wanted, static_cast<int>((lim.rlim_cur - 600) / 2));
}

// Normal requests while the trickling connections are open: each must be
// answered within a second. The first one, untimed, waits until the accept
// queue holding the trickling connections has drained.
void ExpectPromptAnswers(int port, int requests) {
  EXPECT_EQ(Request(port, "POST", "/v1/completions", kCompletion).status, 200);
  for (int i = 0; i < requests; ++i) {
    auto t0 = Clock::now();
    RawResponse r = Request(port, "POST", "/v1/completions", kCompletion);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_LT(took.count(), 1000) << "request " << i;
  }
}

// issue 22: 600 connections trickling header bytes made every request time
// out (httplib's fixed pool of threads was all blocked reading them).
TEST_F(HttpServerTest, TwoThousandSlowlorisConnectionsDoNotStopRequests) {
  const int n = AffordableConnections(2000);
  ASSERT_GE(n, 1000) << "raise the open-file limit";
  StartGateway();
  Trickler slow(port(), n);
  slow.Start(std::chrono::milliseconds(200));
  ExpectPromptAnswers(port(), 10);
  slow.Stop();
}

TEST_F(HttpServerTest, AtTheConnectionCapIdleConnectionsGiveWay) {
  config_.max_connections = 32;
  StartGateway();
  Trickler slow(port(), 200);
  slow.Start(std::chrono::milliseconds(100));
  ExpectPromptAnswers(port(), 10);
  slow.Stop();
  // Only the cap's worth of trickling connections can still be open.
  EXPECT_GE(slow.Closed(), 200 - 32);
}

TEST_F(HttpServerTest, SlowRequestHeadsAndBodiesTimeOut) {
  config_.http_header_timeout_ms = 400;
  config_.http_body_timeout_ms = 400;
  StartGateway();
  Trickler head(port(), 1);
  auto t0 = Clock::now();
  head.Start(std::chrono::milliseconds(50));
  while (head.Closed() == 0 && Clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  head.Stop();
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(350));
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  // A body that stops halfway gets a 408.
  RawConnection body(port());
  body.SendRaw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 100\r\n\r\n{\"prompt\": ");
  t0 = Clock::now();
  RawResponse r = body.ReadResponse(3000);
  ExpectError(r, 408, "");
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  EXPECT_TRUE(router_->requests().empty());
}

// issue 22: `serve` refused to restart for up to a minute ("port 8000 is
// taken") because the gateway's SO_REUSEPORT TIME-WAIT sockets block the
// SO_REUSEADDR bind of serve's port check.
TEST_F(HttpServerTest, PortIsFreeAgainRightAfterShutdown) {
  StartGateway();
  const int p = port();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Request(p, "GET", "/health").status, 200);
  // While it runs, the port is taken (a second server would fail to bind
  // instead of sharing it).
  EXPECT_FALSE(cli::PortIsFree("127.0.0.1", p));
  gateway_->Shutdown();
  gateway_->Wait();
  // The gateway closed those connections first: they sit in TIME-WAIT.
  EXPECT_TRUE(cli::PortIsFree("127.0.0.1", p));
  EXPECT_TRUE(cli::PortIsFree("0.0.0.0", p));
}

}  // namespace
}  // namespace tpserve::gateway
