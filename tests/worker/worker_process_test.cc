// Real worker processes on loopback (TP = 1, 2, 4) driven like a router:
// goldens of the tiny checkpoint (greedy exact, logprobs of the last prompt
// position within 1e-4 relative of the HF reference), TP = N equal to TP = 1,
// handshake errors, and a rank that dies or is stopped mid-run.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "gtest/gtest.h"
#include "tests/worker/worker_harness.h"
#include "worker/model/testing/goldens.h"
#include "worker/service/step_stream_client.h"

namespace tpserve::testing {
namespace {

// `tpserve worker`, exactly as deployments run it.
const std::vector<std::string> kBinary = {"cli/tpserve", "worker"};
constexpr char kModel[] = "tests/fixtures/tiny-qwen2";
constexpr int kTopLogprobs = 20;

LoadSpec TinySpec() {
  LoadSpec spec;
  spec.model_path = kModel;
  return spec;
}

// log_softmax of the reference logits.
std::vector<double> LogSoftmax(const std::vector<float>& logits) {
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - max);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - max - std::log(sum);
  return out;
}

// What one TP size produced for every golden prompt.
struct TpRun {
  std::vector<std::vector<int32_t>> greedy;
  std::vector<v1::TokenLogprob> first;
};

TpRun GenerateAll(int tp, const std::vector<worker::testing::GoldenPrompt>& goldens) {
  TpRun run;
  auto group = WorkerGroup::Start(kBinary, tp);
  EXPECT_TRUE(group.ok()) << group.status();
  if (!group.ok()) return run;
  absl::Status hs = (*group)->Handshake(TinySpec());
  EXPECT_TRUE(hs.ok()) << hs;
  if (!hs.ok()) return run;
  for (const auto& g : goldens) {
    v1::TokenLogprob first;
    auto tokens = (*group)->Greedy(g.input_ids, static_cast<int>(g.greedy.size()),
                                   kTopLogprobs, &first);
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    run.greedy.push_back(tokens.ok() ? *tokens : std::vector<int32_t>());
    run.first.push_back(first);
  }
  return run;
}

class WorkerGoldenTest : public ::testing::TestWithParam<int> {};

TEST_P(WorkerGoldenTest, ReproducesTheReference) {
  auto goldens = worker::testing::LoadGoldens(kModel);
  ASSERT_TRUE(goldens.ok()) << goldens.status();
  const TpRun run = GenerateAll(GetParam(), *goldens);
  ASSERT_EQ(run.greedy.size(), goldens->size());
  for (size_t p = 0; p < goldens->size(); ++p) {
    const auto& g = (*goldens)[p];
    EXPECT_EQ(run.greedy[p], g.greedy) << "prompt " << p;
    // Top-20 logprobs at the last prompt position against the reference's
    // log_softmax: same ids in the same order, values within 1e-4 relative
    // (max abs error over max abs reference, the fixtures' metric).
    const std::vector<double> ref = LogSoftmax(g.last_logits);
    std::vector<int> order(ref.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + kTopLogprobs, order.end(),
                      [&](int a, int b) { return ref[a] > ref[b]; });
    const v1::TokenLogprob& got = run.first[p];
    ASSERT_EQ(got.top_size(), kTopLogprobs) << "prompt " << p;
    double max_err = 0.0, max_ref = 0.0;
    for (int k = 0; k < kTopLogprobs; ++k) {
      EXPECT_EQ(got.top(k).token_id(), order[k]) << "prompt " << p << " rank " << k;
      max_err = std::max(max_err, std::abs(got.top(k).logprob() - ref[order[k]]));
      max_ref = std::max(max_ref, std::abs(ref[order[k]]));
    }
    EXPECT_LE(max_err / max_ref, 1e-4) << "prompt " << p;
    std::printf("TP=%d prompt %zu (len %zu): greedy %s, top-%d logprob rel err %.2e\n",
                GetParam(), p, g.input_ids.size(),
                run.greedy[p] == g.greedy ? "exact" : "DIFFERS", kTopLogprobs,
                max_err / max_ref);
    EXPECT_EQ(got.token_id(), g.greedy[0]);
    EXPECT_NEAR(got.logprob(), ref[g.greedy[0]], 1e-4 * max_ref);
  }
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, WorkerGoldenTest, ::testing::Values(1, 2, 4),
                         [](const auto& info) { return "Tp" + std::to_string(info.param); });

TEST(WorkerTpTest, TwoRanksEqualOneRank) {
  auto goldens = worker::testing::LoadGoldens(kModel);
  ASSERT_TRUE(goldens.ok()) << goldens.status();
  const TpRun one = GenerateAll(1, *goldens);
  const TpRun two = GenerateAll(2, *goldens);
  ASSERT_EQ(one.greedy.size(), two.greedy.size());
  for (size_t p = 0; p < one.greedy.size(); ++p) {
    EXPECT_EQ(one.greedy[p], two.greedy[p]) << "prompt " << p;
    ASSERT_EQ(one.first[p].top_size(), two.first[p].top_size());
    for (int k = 0; k < one.first[p].top_size(); ++k) {
      EXPECT_EQ(one.first[p].top(k).token_id(), two.first[p].top(k).token_id());
      EXPECT_NEAR(one.first[p].top(k).logprob(), two.first[p].top(k).logprob(),
                  1e-4 * std::abs(one.first[p].top(k).logprob()) + 1e-5);
    }
  }
}

v1::WorkerHealthResponse Health(WorkerProcess& proc) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::WorkerHealthResponse resp;
  EXPECT_TRUE(proc.stub().Health(&ctx, {}, &resp).ok());
  return resp;
}

// Polls rank `r`'s Health until it is unhealthy (at most `ms`).
v1::WorkerHealthResponse WaitUnhealthy(WorkerGroup& group, int r, int ms) {
  v1::WorkerHealthResponse h;
  for (int waited = 0; waited < ms; waited += 20) {
    h = Health(group.rank(r));
    if (!h.healthy()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return h;
}

TEST(WorkerFailureTest, KilledRankIsReportedByItsPeerNotAHang) {
  auto group = WorkerGroup::Start(kBinary, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->Handshake(TinySpec()).ok());
  EXPECT_TRUE(Health((*group)->rank(0)).healthy());
  ASSERT_TRUE((*group)->Greedy({1, 2, 3}, 3).ok());
  (*group)->rank(1).Signal(SIGKILL);
  const v1::WorkerHealthResponse h = WaitUnhealthy(**group, 0, 3000);
  EXPECT_FALSE(h.healthy());
  EXPECT_EQ(h.state(), "peer_lost");
  EXPECT_NE(h.message().find("rank 1"), std::string::npos) << h.message();
  // A step sent to the survivor fails at once instead of waiting on rank 1.
  v1::StepRequest step;
  step.set_step_id(100);
  auto* ns = step.add_new_sequences();
  ns->set_seq_id(77);
  ns->add_token_ids(5);
  ns->set_num_prompt_tokens(1);
  ns->set_num_scheduled_tokens(1);
  ns->add_block_table(0);
  const auto start = std::chrono::steady_clock::now();
  const absl::Status s = worker::StepOnce((*group)->rank(0).stub(), step, absl::Seconds(20), (*group)->group_token())
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(WorkerFailureTest, SigtermDrainsAndExitsAndThePeerNotices) {
  auto group = WorkerGroup::Start(kBinary, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->Handshake(TinySpec()).ok());
  ASSERT_TRUE((*group)->Greedy({4, 5, 6}, 2).ok());
  (*group)->rank(1).Signal(SIGTERM);
  absl::StatusOr<int> status = (*group)->rank(1).WaitExit(15000);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  const v1::WorkerHealthResponse h = WaitUnhealthy(**group, 0, 3000);
  EXPECT_EQ(h.state(), "peer_lost") << h.message();
}

TEST(WorkerHandshakeTest, StepBeforeInitCacheIsRefused) {
  auto group = WorkerGroup::Start(kBinary, 1);
  ASSERT_TRUE(group.ok()) << group.status();
  const absl::Status s =
      worker::StepOnce((*group)->rank(0).stub(), v1::StepRequest(), absl::Seconds(10), "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("Step before InitCache"), std::string::npos) << s;
  EXPECT_EQ(Health((*group)->rank(0)).state(), "starting");
}

TEST(WorkerHandshakeTest, TensorParallelSizeMustDivideTheHeads) {
  auto group = WorkerGroup::Start(kBinary, 3);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->InitDistributed().ok());
  for (const absl::Status& s : (*group)->LoadModel({TinySpec()})) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("does not divide the model's num_attention_heads (4)"), std::string::npos)
        << s;
  }
}

TEST(WorkerHandshakeTest, RanksThatLoadDifferentModelsFail) {
  auto group = WorkerGroup::Start(kBinary, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->InitDistributed().ok());
  LoadSpec other = TinySpec();
  other.load_format = "dummy";
  for (const absl::Status& s : (*group)->LoadModel({TinySpec(), other})) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find("rank 1 loaded a different model"), std::string::npos) << s;
  }
}

TEST(WorkerHandshakeTest, StepNamingAnUnknownSequenceIsRejected) {
  auto group = WorkerGroup::Start(kBinary, 1);
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_TRUE((*group)->Handshake(TinySpec()).ok());
  v1::StepRequest step;
  step.set_step_id(3);
  auto* rs = step.add_running_sequences();
  rs->set_seq_id(42);
  rs->set_num_scheduled_tokens(1);
  auto resp = (*group)->Step(step);
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(resp.status().message().find("running sequence 42: is unknown"),
            std::string::npos)
      << resp.status();
  EXPECT_TRUE(Health((*group)->rank(0)).healthy());  // a bad step is not fatal
}

}  // namespace
}  // namespace tpserve::testing
