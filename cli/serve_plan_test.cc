// What `tpserve serve` refuses before starting anything, and the command
// lines it gives its children.
#include "cli/serve_plan.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace tpserve::cli {
namespace {

const char kChat[] = "tests/fixtures/tiny-qwen2-chat";

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

ServerConfig CpuConfig() {
  ServerConfig c;
  c.model = kChat;
  c.device = "cpu";
  c.port = 0;
  return c;
}

TEST(ServePlanTest, BuildsChildCommandLines) {
  ServerConfig c = CpuConfig();
  c.tensor_parallel_size = 1;  // the chat fixture has 2 heads, 1 KV head
  c.max_num_seqs = 64;
  c.api_keys = {"k1"};
  auto plan = PlanServe(c, "/bin/tpserve");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->device, "cpu");
  ASSERT_EQ(plan->worker_argv.size(), 1u);
  EXPECT_EQ(plan->worker_argv[0][1], "worker");
  EXPECT_TRUE(Has(plan->worker_argv[0], "--rank=0"));
  EXPECT_TRUE(Has(plan->worker_argv[0], "--device=cpu"));
  // NVLink SHARP is left to the environment the workers inherit.
  EXPECT_EQ(plan->worker_env[0].count("NCCL_NVLS_ENABLE"), 0u);
  EXPECT_EQ(plan->router_argv[1], "router");
  EXPECT_TRUE(Has(plan->router_argv, "--max-num-seqs=64"));
  EXPECT_FALSE(Has(plan->worker_argv[0], "--max-num-seqs=64"));  // router-only setting
  EXPECT_TRUE(Has(plan->gateway_argv, "--api-key=k1"));
  EXPECT_TRUE(Has(plan->gateway_argv, "--router=" + plan->router_address));
}

TEST(ServePlanTest, TwoRanksGetTheirOwnPorts) {
  ServerConfig c = CpuConfig();
  c.tensor_parallel_size = 2;
  c.model = "tests/fixtures/tiny-qwen2";  // 4 heads, 2 KV heads
  c.load_format = "dummy";                // no tokenizer needed for this check
  auto plan = PlanServe(c, "/bin/tpserve");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->worker_argv.size(), 2u);
  EXPECT_NE(plan->worker_argv[0][2], plan->worker_argv[1][2]);
  EXPECT_TRUE(Has(plan->router_argv, "--tensor-parallel-size=2"));
  int workers = std::count_if(plan->router_argv.begin(), plan->router_argv.end(),
                              [](const std::string& a) { return a.rfind("--worker=", 0) == 0; });
  EXPECT_EQ(workers, 2);
}

TEST(ServePlanTest, TensorParallelMustDivideHeads) {
  ServerConfig c = CpuConfig();
  c.model = "tests/fixtures/tiny-qwen2";
  c.load_format = "dummy";
  c.tensor_parallel_size = 3;
  auto plan = PlanServe(c, "/bin/tpserve");
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("tensor-parallel size 3"), std::string::npos);
  EXPECT_NE(std::string(plan.status().message()).find("num_attention_heads (4)"), std::string::npos);
}

TEST(ServePlanTest, MissingModelPointsToVerify) {
  ServerConfig c = CpuConfig();
  c.model = "/nonexistent/Qwen2-72B-Instruct";
  auto plan = PlanServe(c, "/bin/tpserve");
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("tpserve verify /nonexistent/Qwen2-72B-Instruct"),
            std::string::npos);
}

TEST(ServePlanTest, TakenPortIsAClearError) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ServerConfig c = CpuConfig();
  c.port = ntohs(addr.sin_port);
  auto plan = PlanServe(c, "/bin/tpserve");
  close(fd);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("is taken"), std::string::npos);
  EXPECT_NE(std::string(plan.status().message()).find("--port"), std::string::npos);
}

TEST(ServePlanTest, RefusesComponentAddresses) {
  ServerConfig c = CpuConfig();
  c.workers = {"a:1"};
  EXPECT_FALSE(PlanServe(c, "/bin/tpserve").ok());
}

TEST(ServePlanTest, CudaNeedsEnoughGpus) {
  if (CountGpus() >= 64) GTEST_SKIP() << "machine has 64 GPUs";
  ServerConfig c = CpuConfig();
  c.device = "cuda";
  c.model = "tests/fixtures/tiny-qwen2";
  c.load_format = "dummy";
  c.tensor_parallel_size = 2;
  if (CountGpus() >= 2) GTEST_SKIP() << "this machine has 2 GPUs";
  auto plan = PlanServe(c, "/bin/tpserve");
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(std::string(plan.status().message()).find("GPUs"), std::string::npos);
}

}  // namespace
}  // namespace tpserve::cli
