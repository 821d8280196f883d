#include "worker/comm/cpu_communicator.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve::worker {
namespace {

using CommPtr = std::unique_ptr<CpuCommunicator>;

// Builds a group of `world` communicators inside this process, one thread
// per rank (they still talk over real loopback sockets).
std::vector<CommPtr> MakeGroup(int world, CpuCommOptions options = {}) {
  auto rv = CpuRendezvous::Create();
  EXPECT_TRUE(rv.ok()) << rv.status();
  std::vector<CommPtr> comms(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto c = CpuCommunicator::Create(r, world, (*rv)->unique_id(),
                                       absl::Seconds(10),
                                       r == 0 ? rv->get() : nullptr, options);
      EXPECT_TRUE(c.ok()) << "rank " << r << ": " << c.status();
      if (c.ok()) comms[r] = std::move(*c);
    });
  }
  for (auto& t : threads) t.join();
  return comms;
}

// Runs fn(rank) on one thread per rank.
void OnAllRanks(int world, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back(fn, r);
  for (auto& t : threads) t.join();
}

class CpuCommunicatorWorldTest : public ::testing::TestWithParam<int> {};

TEST_P(CpuCommunicatorWorldTest, CollectivesMatchSerialReference) {
  const int world = GetParam();
  auto comms = MakeGroup(world);
  ASSERT_EQ(comms.size(), world);
  for (auto& c : comms) ASSERT_NE(c, nullptr);
  // Large enough (4 MiB per rank) that a naive blocking send would fill the
  // socket buffers and deadlock.
  const size_t n = 1 << 20;
  auto value = [](int r, size_t i) { return 0.001f * (r + 1) * (i % 977) - r; };
  std::vector<float> expected(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    float acc = value(0, i);
    for (int r = 1; r < world; ++r) acc += value(r, i);
    expected[i] = acc;
  }
  std::vector<std::vector<float>> sums(world);
  std::vector<std::vector<int32_t>> gathered(world);
  std::vector<std::vector<int32_t>> bcast(world);
  OnAllRanks(world, [&](int r) {
    sums[r].resize(n);
    for (size_t i = 0; i < n; ++i) sums[r][i] = value(r, i);
    EXPECT_TRUE(comms[r]->AllReduceSum(sums[r].data(), n, CommDType::kFloat32,
                                       nullptr).ok());
    int32_t mine[3] = {r, 10 * r, -r};
    gathered[r].resize(3 * world);
    EXPECT_TRUE(comms[r]->AllGather(mine, gathered[r].data(), 3,
                                    CommDType::kInt32, nullptr).ok());
    bcast[r] = {r, r, r, r};
    EXPECT_TRUE(comms[r]->Broadcast(bcast[r].data(), 4, CommDType::kInt32,
                                    world - 1, nullptr).ok());
  });
  for (int r = 0; r < world; ++r) {
    // Reduction in rank order on every rank: bit-identical to the serial sum.
    EXPECT_EQ(0, std::memcmp(sums[r].data(), expected.data(), n * sizeof(float)))
        << "rank " << r;
    for (int p = 0; p < world; ++p) {
      EXPECT_EQ(gathered[r][3 * p], p);
      EXPECT_EQ(gathered[r][3 * p + 1], 10 * p);
      EXPECT_EQ(gathered[r][3 * p + 2], -p);
    }
    EXPECT_EQ(bcast[r], std::vector<int32_t>(4, world - 1));
    EXPECT_TRUE(comms[r]->Health().ok());
  }
}

TEST_P(CpuCommunicatorWorldTest, AllReduceBFloat16RoundsTheFloatSum) {
  const int world = GetParam();
  auto comms = MakeGroup(world);
  std::vector<std::vector<uint16_t>> bufs(world);
  OnAllRanks(world, [&](int r) {
    // bf16 of 1.5 is 0x3FC0.
    bufs[r] = {0x3FC0, 0x3FC0};
    EXPECT_TRUE(comms[r]->AllReduceSum(bufs[r].data(), 2, CommDType::kBFloat16,
                                       nullptr).ok());
  });
  // 1.5 * world is exact in bf16 for world <= 4.
  float want = 1.5f * world;
  uint32_t bits;
  std::memcpy(&bits, &want, 4);
  for (int r = 0; r < world; ++r) EXPECT_EQ(bufs[r][0], bits >> 16);
}

INSTANTIATE_TEST_SUITE_P(Worlds, CpuCommunicatorWorldTest,
                         ::testing::Values(1, 2, 4));

TEST(CpuCommunicatorTest, RejectsBadIdsAndRanks) {
  auto bad = CpuCommunicator::Create(1, 2, "nccl-bytes", absl::Seconds(1), nullptr);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not a CPU communicator id"),
            std::string::npos);
  auto rv = CpuRendezvous::Create();
  ASSERT_TRUE(rv.ok());
  auto out_of_range = CpuCommunicator::Create(2, 2, (*rv)->unique_id(),
                                              absl::Seconds(1), nullptr);
  EXPECT_EQ(out_of_range.status().code(), absl::StatusCode::kInvalidArgument);
  auto rank0_without_rv = CpuCommunicator::Create(0, 2, (*rv)->unique_id(),
                                                  absl::Seconds(1), nullptr);
  EXPECT_EQ(rank0_without_rv.status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CpuCommunicatorTest, InitTimesOutWhenARankNeverJoins) {
  auto rv = CpuRendezvous::Create();
  ASSERT_TRUE(rv.ok());
  const absl::Time start = absl::Now();
  auto c = CpuCommunicator::Create(0, 3, (*rv)->unique_id(),
                                   absl::Milliseconds(300), rv->get());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded) << c.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(CpuCommunicatorTest, WrongWorldSizeIsRejectedOnBothSides) {
  auto rv = CpuRendezvous::Create();
  ASSERT_TRUE(rv.ok());
  absl::Status s0, s1;
  OnAllRanks(2, [&](int r) {
    auto c = CpuCommunicator::Create(r, r == 0 ? 2 : 3, (*rv)->unique_id(),
                                     absl::Seconds(5), r == 0 ? rv->get() : nullptr);
    (r == 0 ? s0 : s1) = c.status();
  });
  EXPECT_EQ(s0.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s0.message().find("world_size 3"), std::string::npos) << s0;
  EXPECT_NE(s1.message().find("rank 0 rejected"), std::string::npos) << s1;
}

TEST(CpuCommunicatorTest, SilentPeerGivesDeadlineExceededNamingIt) {
  CpuCommOptions options;
  options.op_timeout = absl::Milliseconds(200);
  auto comms = MakeGroup(2, options);
  float x = 1.0f;
  absl::Status s = comms[0]->AllReduceSum(&x, 1, CommDType::kFloat32, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s;
  // A timed-out stream is out of step: the communicator stays failed.
  EXPECT_FALSE(comms[0]->Health().ok());
  EXPECT_FALSE(comms[0]->AllReduceSum(&x, 1, CommDType::kFloat32, nullptr).ok());
}

TEST(CpuCommunicatorTest, MismatchedCallsAreReported) {
  auto comms = MakeGroup(2);
  absl::Status s[2];
  OnAllRanks(2, [&](int r) {
    int32_t v[2] = {1, 2};
    int32_t out[4];
    s[r] = r == 0 ? comms[r]->AllReduceSum(v, 2, CommDType::kInt32, nullptr)
                  : comms[r]->AllGather(v, out, 2, CommDType::kInt32, nullptr);
  });
  EXPECT_EQ(s[0].code(), absl::StatusCode::kInternal) << s[0];
  EXPECT_NE(s[0].message().find("out of step"), std::string::npos);
}

TEST(CpuCommunicatorTest, AbortUnblocksAWaitingCallAndThePeers) {
  auto comms = MakeGroup(3);
  absl::Status blocked[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      float x = 1.0f;
      blocked[r] = comms[r]->AllReduceSum(&x, 1, CommDType::kFloat32, nullptr);
    });
  }
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time start = absl::Now();
  comms[2]->Abort("test abort");
  for (auto& t : threads) t.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  for (const auto& s : blocked) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  EXPECT_NE(blocked[0].message().find("rank 2"), std::string::npos) << blocked[0];
  EXPECT_NE(comms[2]->Health().message().find("test abort"), std::string::npos);
}

// Ranks as real processes: the parent is rank 0, children fork, join and run
// collectives; child `dying_rank` exits right after joining.
void RunForkedGroup(int world, int dying_rank) {
  auto rv = CpuRendezvous::Create();
  ASSERT_TRUE(rv.ok());
  const std::string id = (*rv)->unique_id();
  std::vector<pid_t> pids;
  for (int r = 1; r < world; ++r) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto c = CpuCommunicator::Create(r, world, id, absl::Seconds(10), nullptr);
      if (!c.ok()) _exit(10);
      if (r == dying_rank) _exit(0);  // sockets close with the process
      float v[4] = {1.0f * r, 2.0f, 3.0f, 4.0f};
      absl::Status s = (*c)->AllReduceSum(v, 4, CommDType::kFloat32, nullptr);
      if (dying_rank > 0) _exit(s.ok() ? 11 : 0);
      if (!s.ok()) _exit(12);
      // Stay alive until rank 0 has checked Health (its final broadcast).
      int32_t done = 0;
      if (!(*c)->Broadcast(&done, 1, CommDType::kInt32, 0, nullptr).ok()) _exit(14);
      const float want0 = world * (world - 1) / 2.0f;
      _exit(v[0] == want0 && v[1] == 2.0f * world ? 0 : 13);
    }
    pids.push_back(pid);
  }
  auto c = CpuCommunicator::Create(0, world, id, absl::Seconds(10), rv->get());
  ASSERT_TRUE(c.ok()) << c.status();
  float v[4] = {0.0f, 2.0f, 3.0f, 4.0f};
  absl::Status s = (*c)->AllReduceSum(v, 4, CommDType::kFloat32, nullptr);
  if (dying_rank > 0) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_FALSE((*c)->Health().ok());
    // The dead rank (or the peer that lost it first) is named.
    EXPECT_NE(s.message().find("lost rank"), std::string::npos) << s;
    (*c)->Abort("peer lost");  // lets the surviving children return too
  } else {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(v[0], world * (world - 1) / 2.0f);
    EXPECT_TRUE((*c)->Health().ok());
    int32_t done = 1;
    EXPECT_TRUE((*c)->Broadcast(&done, 1, CommDType::kInt32, 0, nullptr).ok());
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
}

TEST(CpuCommunicatorProcessTest, TwoProcesses) { RunForkedGroup(2, -1); }
TEST(CpuCommunicatorProcessTest, FourProcesses) { RunForkedGroup(4, -1); }
TEST(CpuCommunicatorProcessTest, DeadPeerIsDetectedNotAHang) {
  RunForkedGroup(2, 1);
}
TEST(CpuCommunicatorProcessTest, DeadPeerInFourIsDetected) {
  RunForkedGroup(4, 2);
}

TEST(CpuCommunicatorProcessTest, HealthSeesAnIdlePeerDie) {
  auto rv = CpuRendezvous::Create();
  ASSERT_TRUE(rv.ok());
  const std::string id = (*rv)->unique_id();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto c = CpuCommunicator::Create(1, 2, id, absl::Seconds(10), nullptr);
    _exit(c.ok() ? 0 : 1);
  }
  auto c = CpuCommunicator::Create(0, 2, id, absl::Seconds(10), rv->get());
  ASSERT_TRUE(c.ok()) << c.status();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  absl::Status h = (*c)->Health();
  EXPECT_EQ(h.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(h.message().find("lost rank 1"), std::string::npos) << h;
}

}  // namespace
}  // namespace tpserve::worker
