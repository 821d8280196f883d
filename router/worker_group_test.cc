#include "router/worker_group.h"

#include <chrono>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/testing/fake_worker.h"
#include "router/testing/toy_worker_state.h"

namespace tpserve::router {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::tpserve::router::testing::FakeWorker;
using ::tpserve::router::testing::FakeWorkerOptions;

std::unique_ptr<FakeWorker> StartWorker(FakeWorkerOptions o = {}) {
  auto w = FakeWorker::Start(o);
  EXPECT_TRUE(w.ok()) << w.status();
  return std::move(w).value();
}

ServerConfig Config(const std::vector<FakeWorker*>& workers) {
  ServerConfig c;
  c.tensor_parallel_size = static_cast<int>(workers.size());
  for (FakeWorker* w : workers) c.workers.push_back(w->address());
  c.block_size = 16;
  c.worker_step_timeout_ms = 500;
  c.worker_init_timeout_ms = 2000;
  return c;
}

v1::StepRequest OneSequenceStep(uint64_t seq_id = 7) {
  v1::StepRequest r;
  r.set_step_id(1);
  v1::NewSequence* ns = r.add_new_sequences();
  ns->set_seq_id(seq_id);
  ns->add_token_ids(3);
  ns->add_token_ids(4);
  ns->set_num_prompt_tokens(2);
  ns->set_num_scheduled_tokens(2);
  ns->add_block_table(0);
  ns->mutable_sampling()->set_seed(1);
  ns->mutable_sampling()->set_max_tokens(1);
  return r;
}

TEST(WorkerGroupTest, HandshakeTakesTheSmallestCacheAndStepsAllRanks) {
  FakeWorkerOptions big, small;
  big.num_blocks = 100;
  small.num_blocks = 40;
  auto w0 = StartWorker(big), w1 = StartWorker(small);
  auto group = WorkerGroup::Create(Config({w0.get(), w1.get()})).value();
  auto info = group->Handshake();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_blocks, 40);
  EXPECT_EQ(info->model.max_model_len(), 256);
  EXPECT_EQ(info->device, "cpu");
  EXPECT_EQ(w0->num_handshakes(), 1);
  EXPECT_EQ(w1->num_handshakes(), 1);

  auto step = group->Step(OneSequenceStep());
  ASSERT_TRUE(step.ok()) << step.status();
  ASSERT_EQ(step->sampled_size(), 1);
  EXPECT_EQ(step->sampled(0).seq_id(), 7u);
  EXPECT_EQ(w0->num_steps(), 1);
  EXPECT_EQ(w1->num_steps(), 1);
}

TEST(WorkerGroupTest, HandshakeErrors) {
  FakeWorkerOptions other;
  other.fingerprint = "other-model";
  auto w0 = StartWorker(), w1 = StartWorker(other);
  auto mismatch = WorkerGroup::Create(Config({w0.get(), w1.get()})).value();
  auto s = mismatch->Handshake();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()),
              AllOf(HasSubstr("toy-model"), HasSubstr("other-model")));

  // 256 tokens need 16 blocks of 16; only 10 fit.
  FakeWorkerOptions tiny;
  tiny.num_blocks = 10;
  auto w2 = StartWorker(tiny);
  auto too_long = WorkerGroup::Create(Config({w2.get()})).value();
  s = too_long->Handshake();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()),
              AllOf(HasSubstr("max_model_len 256 needs 16 blocks"),
                    HasSubstr("holds 10 blocks"), HasSubstr("--max-model-len"),
                    HasSubstr("--gpu-memory-utilization"),
                    HasSubstr("--cpu-kv-cache-space")));

  ServerConfig dead = Config({w0.get()});
  dead.workers.push_back("127.0.0.1:1");
  dead.tensor_parallel_size = 2;
  auto unreachable = WorkerGroup::Create(dead).value();
  s = unreachable->Handshake();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("rank 1 (127.0.0.1:1) failed in Info"));

  ServerConfig mismatched = Config({w0.get()});
  mismatched.tensor_parallel_size = 2;
  EXPECT_EQ(WorkerGroup::Create(mismatched).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WorkerGroup::Create(ServerConfig()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WorkerGroupTest, FailingHungAndKilledRanksAreNamed) {
  auto w0 = StartWorker(), w1 = StartWorker();
  auto group = WorkerGroup::Create(Config({w0.get(), w1.get()})).value();
  ASSERT_TRUE(group->Handshake().ok());

  w1->set_fail_steps(true);
  auto failed = group->Step(OneSequenceStep(1));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("rank 1 (" + w1->address() +
                        ") failed in Step: injected step failure"));
  w1->set_fail_steps(false);
  // A failure closes the streams until the next handshake.
  EXPECT_EQ(group->Step(OneSequenceStep(9)).status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE(group->Handshake().ok());
  w1->set_diverge(true);
  auto diverged = group->Step(OneSequenceStep(10));
  EXPECT_EQ(diverged.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(diverged.status().message()),
              HasSubstr("rank 1 (" + w1->address() +
                        ") sampled different tokens than rank 0"));
  w1->set_diverge(false);

  ASSERT_TRUE(group->Handshake().ok());
  w1->set_hang_steps(true);
  const auto start = std::chrono::steady_clock::now();
  auto hung = group->Step(OneSequenceStep(2));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(hung.status().message()),
              HasSubstr("rank 1 (" + w1->address() + ") timed out in Step after 500 ms"));
  EXPECT_GE(waited, std::chrono::milliseconds(450));
  EXPECT_LT(waited, std::chrono::seconds(3));

  // Killed while a step is in flight: the error comes well before the
  // step timeout.
  ASSERT_TRUE(group->Handshake().ok());
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    w1->Kill();
  });
  const auto kill_start = std::chrono::steady_clock::now();
  auto killed = group->Step(OneSequenceStep(3));
  killer.join();
  EXPECT_EQ(killed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(killed.status().message()), HasSubstr("rank 1"));
  EXPECT_LT(std::chrono::steady_clock::now() - kill_start,
            std::chrono::milliseconds(450));
}

// Steps are written ahead of the answers: the next one reaches the ranks
// while the first still runs, and it continues from the token the workers
// sampled themselves.
TEST(WorkerGroupTest, StepsSentAheadAreAnsweredInOrder) {
  auto w0 = StartWorker(), w1 = StartWorker();
  auto group = WorkerGroup::Create(Config({w0.get(), w1.get()})).value();
  ASSERT_TRUE(group->Handshake().ok());
  w0->set_step_delay_ms(30);
  v1::StepRequest second;
  second.set_step_id(2);
  v1::RunningSequence* rs = second.add_running_sequences();
  rs->set_seq_id(7);
  rs->set_num_scheduled_tokens(1);
  ASSERT_TRUE(group->Send(OneSequenceStep()).ok());
  ASSERT_TRUE(group->Send(second).ok());
  EXPECT_EQ(group->num_in_flight(), 2);
  v1::StepResponse a, b;
  ASSERT_TRUE(group->Receive(&a).ok());
  ASSERT_TRUE(group->Receive(&b).ok());
  EXPECT_EQ(a.step_id(), 1u);
  EXPECT_EQ(b.step_id(), 2u);
  const int32_t first = testing::ToyWorkerState::NextToken(4, 1000);
  EXPECT_EQ(a.sampled(0).token_id(), first);
  EXPECT_EQ(b.sampled(0).token_id(),
            testing::ToyWorkerState::NextToken(first, 1000));
  // Rank 1 ran both steps too (rank 0 relayed them).
  EXPECT_EQ(w1->num_steps(), 2);
  EXPECT_EQ(group->num_in_flight(), 0);
  EXPECT_TRUE(w0->violation().ok()) << w0->violation();
  EXPECT_TRUE(w1->violation().ok()) << w1->violation();
}

TEST(WorkerGroupTest, AbortEndsAHungStepAtOnceAndRefusesLaterCalls) {
  auto w0 = StartWorker();
  ServerConfig config = Config({w0.get()});
  config.worker_step_timeout_ms = 60000;
  auto group = WorkerGroup::Create(config).value();
  ASSERT_TRUE(group->Handshake().ok());
  w0->set_hang_steps(true);
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    group->Abort();
  });
  const auto start = std::chrono::steady_clock::now();
  auto step = group->Step(OneSequenceStep());
  aborter.join();
  EXPECT_EQ(step.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(group->Step(OneSequenceStep(8)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(group->Handshake().status().code(),
            absl::StatusCode::kUnavailable);
  w0->set_hang_steps(false);
}

}  // namespace
}  // namespace tpserve::router
