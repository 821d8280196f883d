// Runs on a machine with CUDA devices (tags = ["gpu"]); skips without one.
#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker {
namespace {

TEST(NcclCommunicatorTest, RejectsAForeignId) {
  auto c = NcclCommunicator::Create(0, 1, "tpcpu1:127.0.0.1:1:00", 0, absl::Seconds(1));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NcclCommunicatorTest, AllReduceAllGatherBroadcastAcrossDevices) {
  const int devices = VisibleCudaDevices();
  if (devices == 0) GTEST_SKIP() << "no CUDA device";
  const int world = devices >= 2 ? 2 : 1;
  auto id = NcclCommunicator::CreateUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<std::vector<float>> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      // Through the factory, as the worker service does (device = rank).
      NcclCommFactory factory(absl::Seconds(30));
      auto joined = factory.Join(r, world, *id, absl::Seconds(60));
      ASSERT_TRUE(joined.ok()) << joined.status();
      EXPECT_EQ(factory.device(), r);
      auto* nccl = dynamic_cast<NcclCommunicator*>(joined->get());
      ASSERT_NE(nccl, nullptr);
      auto* comm = &nccl;
      const size_t n = 1024;
      std::vector<float> host(n);
      for (size_t i = 0; i < n; ++i) host[i] = static_cast<float>(i) * (r + 1);
      float* dev = nullptr;
      ASSERT_EQ(cudaMalloc(&dev, n * sizeof(float) * world), cudaSuccess);
      cudaMemcpy(dev, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
      ASSERT_TRUE((*comm)->AllReduceSum(dev, n, CommDType::kFloat32, nullptr).ok());
      ASSERT_TRUE((*comm)->Synchronize(nullptr, absl::Seconds(30)).ok());
      results[r].resize(n);
      cudaMemcpy(results[r].data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost);
      int32_t mine = 100 + r;
      std::vector<int32_t> all(world);
      EXPECT_TRUE(factory.AllGatherHost(**comm, &mine, all.data(), sizeof(mine)).ok());
      for (int p = 0; p < world; ++p) EXPECT_EQ(all[p], 100 + p);
      EXPECT_TRUE((*comm)->Health().ok());
      cudaFree(dev);
    });
  }
  for (auto& t : threads) t.join();
  const float scale = world * (world + 1) / 2.0f;
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(results[r].size(), 1024);
    for (size_t i = 0; i < 1024; ++i) ASSERT_EQ(results[r][i], i * scale);
  }
}

TEST(NcclCommunicatorTest, InitTimesOutWhenAPeerNeverJoins) {
  if (VisibleCudaDevices() == 0) GTEST_SKIP() << "no CUDA device";
  auto id = NcclCommunicator::CreateUniqueId();
  ASSERT_TRUE(id.ok());
  const absl::Time start = absl::Now();
  auto comm = NcclCommunicator::Create(0, 2, *id, 0, absl::Seconds(3));
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

}  // namespace
}  // namespace tpserve::worker
