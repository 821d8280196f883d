#include "worker/model/testing/thread_communicator.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker::testing {
namespace {

// Runs fn(rank, comm) on one thread per rank.
template <typename Fn>
void RunRanks(ThreadCommGroup& group, Fn fn) {
  auto comms = group.MakeCommunicators();
  std::vector<std::thread> threads;
  for (int r = 0; r < group.world_size(); ++r) {
    threads.emplace_back([&, r] { fn(r, comms[r].get()); });
  }
  for (auto& t : threads) t.join();
}

TEST(ThreadCommunicatorTest, CollectivesAgree) {
  ThreadCommGroup group(3);
  std::vector<std::vector<float>> sums(3), gathered(3);
  std::vector<std::vector<int32_t>> bcast(3);
  RunRanks(group, [&](int r, Communicator* c) {
    EXPECT_EQ(c->rank(), r);
    EXPECT_EQ(c->world_size(), 3);
    for (int round = 0; round < 50; ++round) {  // many rounds: no cross-talk
      std::vector<float> v = {1.0f * r, 10.0f + round, -2.0f};
      ASSERT_TRUE(c->AllReduceSum(v.data(), v.size(), CommDType::kFloat32, nullptr).ok());
      sums[r] = v;
    }
    std::vector<float> mine = {1.0f * r, 100.0f * r};
    gathered[r].resize(6);
    ASSERT_TRUE(c->AllGather(mine.data(), gathered[r].data(), 2, CommDType::kFloat32, nullptr).ok());
    bcast[r] = {r * 7, r * 7 + 1};
    ASSERT_TRUE(c->Broadcast(bcast[r].data(), 2, CommDType::kInt32, 2, nullptr).ok());
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[r], (std::vector<float>{3.0f, 3.0f * (10 + 49), -6.0f}));
    EXPECT_EQ(gathered[r], (std::vector<float>{0, 0, 1, 100, 2, 200}));
    EXPECT_EQ(bcast[r], (std::vector<int32_t>{14, 15}));
  }
}

TEST(ThreadCommunicatorTest, MissingPeerTimesOutAndAbortUnblocks) {
  ThreadCommGroup group(2, std::chrono::milliseconds(100));
  auto comms = group.MakeCommunicators();
  float x = 1.0f;
  const absl::Status s = comms[0]->AllReduceSum(&x, 1, CommDType::kFloat32, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(comms[1]->Health().ok());

  ThreadCommGroup group2(2);
  auto comms2 = group2.MakeCommunicators();
  std::thread waiter([&] {
    float y = 1.0f;
    EXPECT_EQ(comms2[0]->AllReduceSum(&y, 1, CommDType::kFloat32, nullptr).code(),
              absl::StatusCode::kUnavailable);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  comms2[1]->Abort("peer lost");
  waiter.join();
}

}  // namespace
}  // namespace tpserve::worker::testing
