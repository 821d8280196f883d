// A gateway in front of an in-process FAKE router, for driving the gateway
// with real clients (tests/node) without a model: every answer is the fixed
// --reply text (greedy or not), then EOS. Not a server for real use.
//
//   bazel run //gateway/testing:test_gateway -- --port 8000 [--api-key K]
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/logging.h"
#include "common/text/tokenizer.h"
#include "gateway/gateway_server.h"
#include "gateway/testing/fake_router.h"

int main(int argc, char** argv) {
  tpserve::ServerConfig config;
  config.model = "tests/fixtures/tiny-qwen2-chat";
  config.served_model_name = "tiny-qwen2-chat";
  config.port = 8000;
  std::string reply = "Hello! I am a fake router behind a real gateway.";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--port") {
      config.port = std::atoi(value.c_str());
    } else if (flag == "--model") {
      config.model = value;
    } else if (flag == "--api-key") {
      config.api_keys.push_back(value);
    } else if (flag == "--reply") {
      reply = value;
    } else {
      std::fprintf(stderr, "unknown flag %s (use --port, --model, --api-key, --reply)\n",
                   flag.c_str());
      return 2;
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  (void)tpserve::InitLogging("test-gateway", "info");
  auto tokenizer = tpserve::text::Tokenizer::Load(config.model);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  tpserve::gateway::testing::FakeRouterScript script;
  for (int32_t id : (*tokenizer)->Encode(reply, false)) script.reply_tokens.push_back(id);
  auto router = tpserve::gateway::testing::FakeRouter::Start(
      tpserve::gateway::testing::TinyChatModelInfo(4096), script);
  if (!router.ok()) return 1;
  config.routers = {(*router)->address()};
  auto gateway = tpserve::gateway::GatewayServer::Start(config);
  if (!gateway.ok()) {
    std::fprintf(stderr, "%s\n", std::string(gateway.status().message()).c_str());
    return 1;
  }
  std::printf("test gateway (FAKE router) listening on port %d\n", (*gateway)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*gateway)->Shutdown();
  (*gateway)->Wait();
  return 0;
}
