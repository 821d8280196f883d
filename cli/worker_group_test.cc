// The command lines `tpserve workers` gives its ranks, and what it refuses.
#include "cli/worker_group.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace tpserve::cli {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

ServerConfig Group(int n) {
  ServerConfig c;
  c.tensor_parallel_size = n;
  c.worker_port = 50061;
  c.device = "cuda";
  return c;
}

class WorkerGroupTest : public ::testing::Test {
 protected:
  void SetUp() override { unsetenv("CUDA_VISIBLE_DEVICES"); }
  void TearDown() override { unsetenv("CUDA_VISIBLE_DEVICES"); }
};

TEST_F(WorkerGroupTest, OneProcessPerRankOnConsecutivePorts) {
  ServerConfig c = Group(4);
  c.metrics_port = 9100;
  c.internal_ssl_certfile = "/etc/tpserve/internal-tls/tls.crt";
  c.max_num_seqs = 8;  // a router setting: not handed to workers
  auto plan = PlanWorkerGroup(c, "/usr/local/bin/tpserve");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->worker_argv.size(), 4u);
  EXPECT_EQ(plan->worker_ports, (std::vector<int>{50061, 50062, 50063, 50064}));
  EXPECT_EQ(plan->metrics_ports, (std::vector<int>{9100, 9101, 9102, 9103}));
  for (int r = 0; r < 4; ++r) {
    const auto& argv = plan->worker_argv[r];
    EXPECT_EQ(argv[0], "/usr/local/bin/tpserve");
    EXPECT_EQ(argv[1], "worker");
    EXPECT_TRUE(Has(argv, "--rank=" + std::to_string(r)));
    EXPECT_TRUE(Has(argv, "--worker-port=" + std::to_string(50061 + r)));
    EXPECT_TRUE(Has(argv, "--metrics-port=" + std::to_string(9100 + r)));
    EXPECT_TRUE(Has(argv, "--tensor-parallel-size=4"));
    EXPECT_TRUE(Has(argv, "--device=cuda"));
    EXPECT_TRUE(Has(argv, "--internal-ssl-certfile=/etc/tpserve/internal-tls/tls.crt"));
    EXPECT_FALSE(Has(argv, "--max-num-seqs=8"));
    // Each flag once: the group's own settings are not forwarded again.
    EXPECT_EQ(std::count_if(argv.begin(), argv.end(),
                            [](const std::string& a) { return a.rfind("--worker-port", 0) == 0; }),
              1);
  }
}

TEST_F(WorkerGroupTest, MetricsOffMeansNoMetricsPorts) {
  auto plan = PlanWorkerGroup(Group(2), "/bin/tpserve");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->metrics_ports.empty());
  for (const auto& argv : plan->worker_argv) {
    EXPECT_FALSE(std::any_of(argv.begin(), argv.end(), [](const std::string& a) {
      return a.rfind("--metrics-port", 0) == 0;
    }));
  }
}

TEST_F(WorkerGroupTest, RefusesWhatCannotWork) {
  struct Case {
    const char* name;
    void (*change)(ServerConfig&);
    const char* message;
  };
  const Case cases[] = {
      {"a rank", [](ServerConfig& c) { c.rank = 1; }, "--rank belongs to 'tpserve worker'"},
      {"a random port", [](ServerConfig& c) { c.worker_port = 0; }, "fixed --worker-port"},
      {"port overflow", [](ServerConfig& c) { c.worker_port = 65534; }, "no room for 4 ranks"},
      {"metrics overflow", [](ServerConfig& c) { c.metrics_port = 65535; }, "--metrics-port 65535"},
      {"overlapping ranges", [](ServerConfig& c) { c.metrics_port = 50063; },
       "overlaps --worker-port range 50061-50064"},
  };
  for (const Case& k : cases) {
    ServerConfig c = Group(4);
    k.change(c);
    auto plan = PlanWorkerGroup(c, "/bin/tpserve");
    ASSERT_FALSE(plan.ok()) << k.name;
    EXPECT_NE(plan.status().message().find(k.message), std::string::npos)
        << k.name << ": " << plan.status();
  }
}

TEST_F(WorkerGroupTest, EveryRankNeedsItsOwnVisibleGpu) {
  setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
  auto two = PlanWorkerGroup(Group(2), "/bin/tpserve");
  EXPECT_TRUE(two.ok()) << two.status();
  auto four = PlanWorkerGroup(Group(4), "/bin/tpserve");
  ASSERT_FALSE(four.ok());
  EXPECT_NE(four.status().message().find("CUDA_VISIBLE_DEVICES lists 2"), std::string::npos);
  ServerConfig cpu = Group(4);
  cpu.device = "cpu";  // CPU ranks ignore the GPU list
  EXPECT_TRUE(PlanWorkerGroup(cpu, "/bin/tpserve").ok());
}

}  // namespace
}  // namespace tpserve::cli
