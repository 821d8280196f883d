#include "worker/model/cpu_parallel.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker::cpu {
namespace {

TEST(CpuParallelTest, CoversEveryIndexOnce) {
  for (int64_t n : {0, 1, 7, 64, 1000}) {
    for (int64_t grain : {1, 3, 64, 5000}) {
      std::vector<std::atomic<int>> hits(n);
      ParallelFor(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_LE(e - b, grain);
        for (int64_t i = b; i < e; ++i) hits[i]++;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << grain;
    }
  }
}

TEST(CpuParallelTest, ConcurrentCallersFromSeveralThreads) {
  std::vector<std::thread> callers;
  std::vector<int64_t> sums(4, 0);
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < 50; ++round) {
        std::vector<int64_t> out(257, 0);
        ParallelFor(257, 10, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) out[i] = i * (c + 1);
        });
        int64_t s = 0;
        for (int64_t v : out) s += v;
        sums[c] = s;
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < 4; ++c) EXPECT_EQ(sums[c], 256 * 257 / 2 * (c + 1));
  EXPECT_GE(NumThreads(), 1);
}

}  // namespace
}  // namespace tpserve::worker::cpu
