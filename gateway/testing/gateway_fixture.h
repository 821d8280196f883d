// The gateway test fixture: the fake router (replying kReply, tokenized
// with the tiny chat fixture's tokenizer) and a GatewayServer in front of it
// on a free port, plus helpers for OpenAI error bodies.
#ifndef TPSERVE_GATEWAY_TESTING_GATEWAY_FIXTURE_H_
#define TPSERVE_GATEWAY_TESTING_GATEWAY_FIXTURE_H_

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/text/tokenizer.h"
#include "gateway/gateway_server.h"
#include "gateway/testing/fake_router.h"
#include "gateway/testing/raw_http.h"

namespace tpserve::gateway::testing {

inline constexpr char kModelDir[] = "tests/fixtures/tiny-qwen2-chat";
inline constexpr char kReply[] = "Hello there, STOP here.";

class GatewayFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    tokenizer_ = text::Tokenizer::Load(kModelDir).value();
    auto ids = tokenizer_->Encode(kReply, false);
    reply_ids_.assign(ids.begin(), ids.end());
    router_ = FakeRouter::Start(TinyChatModelInfo(4096), Script()).value();
  }

  FakeRouterScript Script() const {
    FakeRouterScript s;
    s.reply_tokens = reply_ids_;
    s.cached_tokens = 16;
    return s;
  }

  // The gateway's configuration; a test may change it before StartGateway.
  static ServerConfig TestConfig() {
    ServerConfig config;
    config.model = kModelDir;
    config.served_model_name = "tiny";
    config.host = "127.0.0.1";
    config.port = 0;
    config.max_request_body_bytes = 64 * 1024;
    config.max_n = 4;
    config.max_stop_strings = 4;
    return config;
  }

  void StartGateway(std::vector<std::string> keys = {}, std::vector<std::string> routers = {}) {
    ServerConfig config = config_;
    config.routers = routers.empty() ? std::vector<std::string>{router_->address()} : routers;
    config.api_keys = std::move(keys);
    auto server = GatewayServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    gateway_ = std::move(server).value();
    // Wait until the router pool has seen a ready router.
    for (int i = 0; i < 200; ++i) {
      if (Request(port(), "GET", "/health").status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "gateway never became healthy";
  }

  int port() const { return gateway_->port(); }

  static nlohmann::json Body(const RawResponse& r) {
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }

  // Asserts an OpenAI error object with `status` and `param`.
  static void ExpectError(const RawResponse& r, int status, const std::string& param) {
    EXPECT_EQ(r.status, status) << r.body;
    nlohmann::json j = Body(r);
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("code"));
    if (param.empty()) {
      EXPECT_TRUE(j["error"]["param"].is_null()) << r.body;
    } else {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
  }

  ServerConfig config_ = TestConfig();
  std::unique_ptr<text::Tokenizer> tokenizer_;
  std::vector<int> reply_ids_;
  std::unique_ptr<FakeRouter> router_;
  std::unique_ptr<GatewayServer> gateway_;
};

}  // namespace tpserve::gateway::testing

#endif  // TPSERVE_GATEWAY_TESTING_GATEWAY_FIXTURE_H_
