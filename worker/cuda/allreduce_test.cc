// The custom all-reduce (allreduce.cu through worker/comm/custom_allreduce)
// against NCCL. Ranks run as separate processes, as workers do, so buffers
// really go through CUDA IPC: a parent test re-runs this binary once per rank
// (CustomAllReduceChild.Rank, told what to do by the environment). One test
// runs the ranks as threads of one process (peer access, as the bench does).
// GPU tests: skipped without 2 GPUs.
#include "worker/cuda/allreduce.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "worker/comm/custom_allreduce.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/cuda/norm.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;

constexpr int kHidden = 8192;
constexpr int kMaxRows = 256;
// One-shot carries up to this many rows in TestOptions (both algorithms
// are checked up to it, two-shot everywhere).
constexpr int kOneShotRows = 64;
const int kRows[] = {1, 2, 3, 5, 8, 16, 31, 64, 100, 128, 200, 256};

std::vector<float> RankInput(int rank, int rows, int salt) {
  std::mt19937 rng(rank * 7919 + rows * 31 + salt);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(rows) * kHidden);
  for (float& x : v) x = d(rng);
  return v;
}

template <typename T>
std::vector<T> Download(const T* dev, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    // Inputs in [-1, 1]: sums of up to 8 differ from NCCL's by the order of
    // the float32 additions only.
    if (!(std::fabs(got[i] - want[i]) <= 1e-5f)) {
      ADD_FAILURE() << what << " [" << i << "]: " << got[i] << " vs NCCL " << want[i];
      ++bad;
    }
  }
}

// Split rows (allreduce.cu) add the parts' sums of squares in another order
// than AddRmsNorm: a normalised value may then round to the next bf16.
void ExpectWithinOneBf16Step(const std::vector<__nv_bfloat16>& got, const std::vector<__nv_bfloat16>& want,
                             const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const float a = __bfloat162float(got[i]), b = __bfloat162float(want[i]);
    if (!(std::fabs(a - b) <= std::ldexp(std::fabs(b), -7))) {
      ADD_FAILURE() << what << " [" << i << "]: " << a << " vs " << b;
      ++bad;
    }
  }
}

void ExpectSameBits(const std::vector<__nv_bfloat16>& a, const std::vector<__nv_bfloat16>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])), 0) << what;
}

// The all-reduce in both algorithms (and auto) against ncclAllReduce, then
// the fused form against all-reduce + AddRmsNorm; inside a CUDA graph when
// `graph` (each kind of call captured once, replayed with fresh inputs).
void CheckRank(NcclCommunicator& comm, CustomAllReduce& ar, const std::vector<int>& rows_list, bool graph) {
  const int rank = comm.rank();
  ASSERT_EQ(cudaSetDevice(comm.device()), cudaSuccess);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  const size_t cap = size_t{kMaxRows} * kHidden;
  DevArray<float> in(cap), ref(cap), one(cap), two(cap), sum(cap);
  DevArray<__nv_bfloat16> res_fused(cap), res_plain(cap), out_fused(cap), out_plain(cap);
  std::mt19937 rng(17);  // the same residual and weight on every rank, as in the model
  const auto residual = testing::RandomBf16(cap, rng, 2.0f), weight = testing::RandomBf16(kHidden, rng, 1.0f);
  DevArray<__nv_bfloat16> w(weight);
  for (int rows : rows_list) {
    const size_t n = static_cast<size_t>(rows) * kHidden;
    const std::string at = absl::StrCat("rank ", rank, " rows ", rows, graph ? " (graph)" : "");
    auto run = [&] {  // everything that is captured in graph mode
      if (rows <= kOneShotRows) {
        ASSERT_TRUE(ar.AllReduce(in.get(), one.get(), n, AllReduceAlgo::kOneShot, stream).ok()) << at;
      }
      ASSERT_TRUE(ar.AllReduce(in.get(), two.get(), n, AllReduceAlgo::kTwoShot, stream).ok()) << at;
      // In place, as the model's last projection runs it.
      ASSERT_EQ(cudaMemcpyAsync(sum.get(), in.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, stream),
                cudaSuccess);
      ASSERT_TRUE(ar.AllReduce(sum.get(), sum.get(), n, stream).ok()) << at;
      ASSERT_TRUE(ar.AllReduceAddRmsNorm(in.get(), res_fused.get(), w.get(), out_fused.get(), rows, kHidden, 1e-6f,
                                         stream).ok()) << at;
      ASSERT_TRUE(AddRmsNorm(sum.get(), res_plain.get(), w.get(), out_plain.get(), rows, kHidden, 1e-6f, stream).ok());
    };
    cudaGraphExec_t exec = nullptr;
    if (graph) {
      cudaGraph_t g;
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
      run();
      ASSERT_EQ(cudaStreamEndCapture(stream, &g), cudaSuccess) << at;
      ASSERT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess) << at;
      cudaGraphDestroy(g);
    }
    for (int replay = 0; replay < (graph ? 3 : 1); ++replay) {
      const std::vector<float> x = RankInput(rank, rows, replay);
      ASSERT_EQ(cudaMemcpy(in.get(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(ref.get(), x.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
      for (auto* r : {res_fused.get(), res_plain.get()}) {
        ASSERT_EQ(cudaMemcpy(r, residual.data(), n * 2, cudaMemcpyHostToDevice), cudaSuccess);
      }
      ASSERT_TRUE(comm.AllReduceSum(ref.get(), n, CommDType::kFloat32, stream).ok());
      if (graph) {
        ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      } else {
        run();
      }
      ASSERT_TRUE(comm.Synchronize(stream, absl::Seconds(60)).ok()) << at;
      ASSERT_TRUE(ar.Health().ok()) << ar.Health();
      const auto want = Download(ref.get(), n);
      if (rows <= kOneShotRows) ExpectNear(Download(one.get(), n), want, at + " one-shot");
      ExpectNear(Download(two.get(), n), want, at + " two-shot");
      ExpectNear(Download(sum.get(), n), want, at + " auto");
      ExpectSameBits(Download(res_fused.get(), n), Download(res_plain.get(), n), at + " fused residual");
      ExpectWithinOneBf16Step(Download(out_fused.get(), n), Download(out_plain.get(), n), at + " fused norm");
      ASSERT_EQ(Download(in.get(), n), x) << at << ": the fused form must leave its input alone";
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
  }
  cudaStreamDestroy(stream);
}

// Options with room for 256 rows, and both algorithms at every size tested.
CustomAllReduce::Options TestOptions(absl::Duration timeout) {
  CustomAllReduce::Options o;
  o.max_bytes = size_t{kMaxRows} * kHidden * sizeof(float);
  o.one_shot_max_bytes = size_t{kOneShotRows} * kHidden * sizeof(float);
  o.timeout = timeout;
  return o;
}

// One rank of a multi-process case (the child side).
void ChildRank(const std::string& what, int rank, int world, const std::string& uid) {
  auto comm = NcclCommunicator::Create(rank, world, uid, rank, absl::Seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  const bool dead_case = what == "dead";
  auto ar = CustomAllReduce::Create(**comm, TestOptions(dead_case ? absl::Milliseconds(300) : absl::Seconds(20)));
  ASSERT_TRUE(ar.ok()) << ar.status();
  ASSERT_NE(*ar, nullptr) << "the GPUs are not peer-accessible: the custom all-reduce is off";
  if (what == "sums") {
    std::vector<int> rows(std::begin(kRows), std::end(kRows));
    CheckRank(**comm, **ar, rows, /*graph=*/false);
    CheckRank(**comm, **ar, {1, 3, 64, 256}, /*graph=*/true);
    return;
  }
  ASSERT_TRUE(dead_case) << what;
  if (rank == 1) {  // never arrives
    absl::SleepFor(absl::Seconds(3));
    return;
  }
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  DevArray<float> x(kHidden);
  const absl::Time start = absl::Now();
  ASSERT_TRUE((*ar)->AllReduce(x.get(), x.get(), kHidden, stream).ok());
  // The kernel gives up by itself: the stream drains, the error is named.
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  const absl::Status health = (*ar)->Health();
  EXPECT_EQ(health.code(), absl::StatusCode::kUnavailable) << health;
  EXPECT_NE(health.message().find("rank 1 did not arrive"), std::string::npos) << health;
  EXPECT_EQ((*comm)->Health().code(), absl::StatusCode::kUnavailable) << "the communicator reports it too";
  EXPECT_EQ((*ar)->AllReduce(x.get(), x.get(), kHidden, stream).code(), absl::StatusCode::kUnavailable);
  cudaStreamDestroy(stream);
}

TEST(CustomAllReduceChild, Rank) {
  const char* what = std::getenv("TP_AR_CHILD");
  if (what == nullptr) GTEST_SKIP() << "runs only as a rank process of the tests below";
  std::string uid;
  ASSERT_TRUE(absl::Base64Unescape(std::getenv("TP_AR_UID"), &uid));
  ChildRank(what, std::atoi(std::getenv("TP_AR_RANK")), std::atoi(std::getenv("TP_AR_WORLD")), uid);
}

int Devices() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

// Runs `what` on `world` rank processes; every one must pass.
void RunRankProcesses(const std::string& what, int world) {
  auto uid = NcclCommunicator::CreateUniqueId();  // its bootstrap root lives in this process
  ASSERT_TRUE(uid.ok()) << uid.status();
  const std::string uid64 = absl::Base64Escape(*uid);
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // exec at once: CUDA state does not survive fork
      setenv("TP_AR_CHILD", what.c_str(), 1);
      setenv("TP_AR_RANK", std::to_string(r).c_str(), 1);
      setenv("TP_AR_WORLD", std::to_string(world).c_str(), 1);
      setenv("TP_AR_UID", uid64.c_str(), 1);
      execl("/proc/self/exe", "/proc/self/exe", "--gtest_filter=CustomAllReduceChild.Rank", nullptr);
      _exit(127);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < world; ++r) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[r], &status, 0), pids[r]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << what << ": rank " << r << " failed (" << status
                                                               << "); its log is above";
  }
}

TEST(CustomAllReduceTest, EqualsNcclAcrossProcesses) {
  const int devices = Devices();
  if (devices < 2) GTEST_SKIP() << "needs 2 GPUs, " << devices << " visible";
  for (int world : {2, 4, 8}) {
    if (world > devices) break;
    SCOPED_TRACE(absl::StrCat("TP=", world));
    RunRankProcesses("sums", world);
  }
}

TEST(CustomAllReduceTest, ARankThatNeverArrivesIsReportedNotHung) {
  if (Devices() < 2) GTEST_SKIP() << "needs 2 GPUs";
  RunRankProcesses("dead", 2);
}

TEST(CustomAllReduceTest, EqualsNcclAcrossThreadsOfOneProcess) {
  if (Devices() < 2) GTEST_SKIP() << "needs 2 GPUs";
  auto uid = NcclCommunicator::CreateUniqueId();
  ASSERT_TRUE(uid.ok());
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto comm = NcclCommunicator::Create(r, 2, *uid, r, absl::Seconds(60));
      ASSERT_TRUE(comm.ok()) << comm.status();
      auto ar = CustomAllReduce::Create(**comm, TestOptions(absl::Seconds(20)));
      ASSERT_TRUE(ar.ok() && *ar != nullptr);
      CheckRank(**comm, **ar, {1, 100}, /*graph=*/true);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(CustomAllReduceTest, RejectsWhatItCannotCarry) {
  AllReduceGroup g;  // not set up
  EXPECT_EQ(LaunchAllReduce(g, AllReduceAlgo::kOneShot, nullptr, nullptr, 8, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  g.world = 2;
  g.state = reinterpret_cast<uint32_t*>(16);
  g.max_bytes = g.src_stride = g.one_shot_stride = 1024;
  EXPECT_EQ(LaunchAllReduce(g, AllReduceAlgo::kOneShot, nullptr, nullptr, 6, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchAllReduce(g, AllReduceAlgo::kTwoShot, nullptr, nullptr, 4, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchAllReduce(g, AllReduceAlgo::kOneShot, nullptr, nullptr, 512, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchAllReduceAddRmsNorm(g, AllReduceAlgo::kOneShot, nullptr, nullptr, nullptr, nullptr, 1, 12, 1e-6f,
                                      nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchAllReduceAddRmsNorm(g, AllReduceAlgo::kOneShot, nullptr, nullptr, nullptr, nullptr, 1,
                                      kMaxFusedHidden + 8, 1e-6f, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tpserve::worker::cuda
