// SIGTERM to a `tpserve gateway` process while 20 streams run longer than
// its --drain-timeout-ms: every client gets an in-band error event and
// `data: [DONE]` (docs/api.md), the router calls are cancelled, and the
// process exits 0. The router is the in-process fake, streaming slowly.
#include <signal.h>

#include <chrono>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli/child_process.h"
#include "gateway/testing/fake_router.h"
#include "gateway/testing/raw_http.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kStreams = 20;

TEST(DrainTest, SigtermEndsStreamsStillRunningWithAnErrorEventAndDone) {
  gateway::testing::FakeRouterScript script;
  script.reply_tokens = std::vector<int>(400, 9707);  // 20 s at 50 ms a token
  script.token_delay = milliseconds(50);
  auto router = gateway::testing::FakeRouter::Start(gateway::testing::TinyChatModelInfo(), script);
  ASSERT_TRUE(router.ok()) << router.status();

  auto child = cli::ChildProcess::Spawn(
      "gateway",
      {"cli/tpserve", "gateway", "--port", "0", "--host", "127.0.0.1", "--router",
       (*router)->address(), "--model", "tests/fixtures/tiny-qwen2-chat", "--drain-timeout-ms",
       "500", "--log-level", "warning"},
      {});
  ASSERT_TRUE(child.ok()) << child.status();
  int port = 0;
  const std::regex listening(".*listening on port ([0-9]+).*");
  for (auto deadline = Clock::now() + seconds(30); port == 0 && Clock::now() < deadline;) {
    auto line = child->ReadLine(milliseconds(200));
    ASSERT_TRUE(line.ok()) << line.status();
    std::smatch m;
    if (line->has_value() && std::regex_match(**line, m, listening)) port = std::stoi(m[1]);
  }
  ASSERT_GT(port, 0);
  for (int i = 0; i < 300 && gateway::testing::Request(port, "GET", "/health").status != 200; ++i) {
    std::this_thread::sleep_for(milliseconds(20));
  }

  std::vector<std::unique_ptr<gateway::testing::RawConnection>> conns;
  for (int i = 0; i < kStreams; ++i) {
    conns.push_back(std::make_unique<gateway::testing::RawConnection>(port));
    ASSERT_TRUE(conns.back()->Send("POST", "/v1/chat/completions",
                                   R"({"stream": true, "max_tokens": 1000,
                                       "messages": [{"role": "user", "content": "hi"}]})"));
  }
  for (auto& conn : conns) {
    std::string got = conn->ReadUntil("\"content\":\"Hello");
    ASSERT_NE(got.find("\"content\":\"Hello"), std::string::npos) << got;
  }

  const auto sigterm = Clock::now();
  child->Signal(SIGTERM);
  for (int i = 0; i < kStreams; ++i) {
    gateway::testing::RawResponse r = conns[i]->ReadResponse(15000);
    std::vector<std::string> events = gateway::testing::SseEvents(r.body);
    ASSERT_GE(events.size(), 2u) << "stream " << i << ": " << r.body;
    EXPECT_EQ(events.back(), "[DONE]") << "stream " << i;
    const std::string& error = events[events.size() - 2];
    EXPECT_EQ(error.rfind("{\"error\"", 0), 0u) << "stream " << i << ": " << error;
    // A 503 in-band (clients see no internal detail behind a 5xx).
    EXPECT_NE(error.find("\"type\":\"service_unavailable_error\""), std::string::npos) << error;
  }
  EXPECT_EQ(child->StopAndWait(seconds(20)), "exited with code 0");
  const auto took = Clock::now() - sigterm;
  EXPECT_LT(took, seconds(10)) << "the drain did not end at its timeout";
  EXPECT_TRUE((*router)->WaitForCancelled(kStreams, seconds(5)));
}

}  // namespace
}  // namespace tpserve
