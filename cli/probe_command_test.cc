// `tpserve probe` against an in-process router that answers Health with a
// chosen state.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/config/options.h"
#include "proto/router.grpc.pb.h"

namespace tpserve::cli {
namespace {

class FakeRouter final : public tpserve::v1::Router::Service {
 public:
  explicit FakeRouter(tpserve::v1::ServingState state) : state_(state) {}
  grpc::Status Health(grpc::ServerContext*, const tpserve::v1::HealthRequest*,
                      tpserve::v1::HealthResponse* resp) override {
    resp->set_state(state_);
    resp->set_message("loading weights");
    return grpc::Status::OK;
  }

 private:
  tpserve::v1::ServingState state_;
};

// Runs `tpserve probe ARGS` as main() would after parsing.
int Probe(const std::vector<std::string>& args) {
  auto cl = ParseCommandLine("probe", kGateway, args);
  EXPECT_TRUE(cl.ok()) << cl.status();
  return cl.ok() ? RunProbe(*cl) : -1;
}

struct Server {
  explicit Server(tpserve::v1::ServingState state) : router(state) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&router);
    server = b.BuildAndStart();
  }
  ~Server() { server->Shutdown(); }
  std::string Flag() const { return absl::StrCat("--router=127.0.0.1:", port); }
  FakeRouter router;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

TEST(ProbeCommandTest, ZeroOnlyWhenTheRouterIsReady) {
  Server ready(tpserve::v1::SERVING_STATE_READY);
  ASSERT_NE(ready.port, 0);
  EXPECT_EQ(Probe({ready.Flag()}), 0);
  Server starting(tpserve::v1::SERVING_STATE_STARTING);
  EXPECT_EQ(Probe({starting.Flag()}), 1);
  Server unhealthy(tpserve::v1::SERVING_STATE_UNHEALTHY);
  EXPECT_EQ(Probe({unhealthy.Flag()}), 1);
}

TEST(ProbeCommandTest, NoRouterListeningIsNotReady) {
  int port = 0;
  {
    Server gone(tpserve::v1::SERVING_STATE_READY);
    port = gone.port;
  }
  EXPECT_EQ(Probe({absl::StrCat("--router=127.0.0.1:", port)}), 1);
}

TEST(ProbeCommandTest, BadUsageIsExitTwo) {
  EXPECT_EQ(Probe({}), 2);
  EXPECT_EQ(Probe({"--router=127.0.0.1:1", "--router=127.0.0.1:2"}), 2);
  // Only some of the internal TLS files: refused, as the components refuse it.
  EXPECT_EQ(Probe({"--router=127.0.0.1:1", "--internal-ssl-certfile=/nonexistent.pem"}), 2);
}

}  // namespace
}  // namespace tpserve::cli
