#include "router/scheduler.h"

#include <deque>
#include <map>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/sampling_rules.h"
#include "router/testing/toy_worker_state.h"

namespace tpserve::router {
namespace {

using ::testing::HasSubstr;
using ::tpserve::router::testing::ToyWorkerState;

constexpr int kVocab = 1000;

SchedulerConfig Config(int num_blocks = 64, int block_size = 4,
                       int budget = 64) {
  SchedulerConfig c;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  c.max_model_len = 256;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = budget;
  c.vocab_size = kVocab;
  return c;
}

v1::GenerateRequest Request(std::vector<int32_t> prompt, int max_tokens) {
  v1::GenerateRequest r;
  r.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  r.mutable_sampling()->set_max_tokens(max_tokens);
  return r;
}

std::vector<int32_t> Prompt(int n, int start = 1) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// A scheduler driving a strict toy worker, collecting every output. With
// `depth` 2 it plans each step while the previous one is in flight, as the
// engine does: the toy worker runs each step when it is sent (workers run
// steps in order) and its answer is applied one step later.
struct Harness {
  explicit Harness(SchedulerConfig c, int depth = 1)
      : scheduler(c), worker(kVocab, c.block_size, c.num_blocks), depth(depth) {}

  uint64_t Add(const v1::GenerateRequest& r,
               absl::Time deadline = absl::InfiniteFuture()) {
    auto id = scheduler.Add(r, deadline);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or(0);
  }

  // Plans and sends one step (empty only when there is nothing to compute);
  // returns the plan (its request is what the workers saw).
  StepPlan Step(absl::Time now = absl::Now()) {
    StepPlan plan;
    while (true) {
      std::vector<SequenceOutput> out;
      scheduler.Schedule(now, &plan, &out);
      Collect(out);
      if (plan.needs_sync) {
        ++syncs;
        while (!in_flight.empty()) UpdateOldest();
        continue;
      }
      if (plan.empty() && !in_flight.empty()) {
        UpdateOldest();  // What is left waits for tokens on their way.
        continue;
      }
      break;
    }
    last_scheduled.clear();
    for (const ScheduledSequence& e : plan.scheduled) {
      last_scheduled.emplace_back(e.seq_id, e.num_tokens);
      ++steps_computing[e.seq_id];
    }
    if (!plan.empty()) {
      auto response = worker.Step(plan.request);
      EXPECT_TRUE(response.ok()) << response.status();
      in_flight.emplace_back(plan, response.value_or(v1::StepResponse()));
    }
    while (static_cast<int>(in_flight.size()) >= depth) UpdateOldest();
    return plan;
  }

  void UpdateOldest() {
    std::vector<SequenceOutput> out;
    EXPECT_TRUE(scheduler
                    .Update(in_flight.front().first, in_flight.front().second,
                            &out)
                    .ok());
    in_flight.pop_front();
    Collect(out);
  }

  void Collect(const std::vector<SequenceOutput>& out) {
    for (auto& o : out) {
      auto& tokens = generated[o.seq_id];
      tokens.insert(tokens.end(), o.token_ids.begin(), o.token_ids.end());
      if (o.finished) final_output[o.seq_id] = o;
    }
  }

  void RunToIdle() {
    for (int i = 0; i < 10000 && (scheduler.HasWork() || !in_flight.empty());
         ++i) {
      Step();
    }
    ASSERT_FALSE(scheduler.HasWork());
    ASSERT_TRUE(in_flight.empty());
    EXPECT_EQ(scheduler.num_free_blocks(), scheduler.num_blocks());
  }

  Scheduler scheduler;
  ToyWorkerState worker;
  const int depth;
  std::deque<std::pair<StepPlan, v1::StepResponse>> in_flight;
  std::vector<std::pair<uint64_t, int>> last_scheduled;
  std::map<uint64_t, std::vector<int32_t>> generated;
  std::map<uint64_t, SequenceOutput> final_output;
  // Steps sent that computed each sequence.
  std::map<uint64_t, int> steps_computing;
  // Plans that had to wait for the steps in flight.
  int syncs = 0;
};

// What the toy model generates after `prompt`.
std::vector<int32_t> ToyTokens(const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  int32_t last = prompt.back();
  for (int i = 0; i < n; ++i) out.push_back(last = ToyWorkerState::NextToken(last, kVocab));
  return out;
}

TEST(SchedulerTest, Admission) {
  struct Case {
    const char* name;
    v1::GenerateRequest request;
    absl::StatusCode code;
    const char* message;
  };
  auto with = [](v1::GenerateRequest r, auto fn) {
    fn(r);
    return r;
  };
  const Case cases[] = {
      {"ok", Request(Prompt(10), 10), absl::StatusCode::kOk, ""},
      {"empty prompt", Request({}, 10), absl::StatusCode::kInvalidArgument,
       "empty"},
      {"token outside vocab", Request({1, kVocab}, 10),
       absl::StatusCode::kInvalidArgument, "outside the vocabulary"},
      {"too long", Request(Prompt(200), 57), absl::StatusCode::kInvalidArgument,
       "prompt (200 tokens) + max_tokens (57) = 257 exceeds max_model_len 256"},
      {"exactly max_model_len", Request(Prompt(200), 56), absl::StatusCode::kOk,
       ""},
      {"max_tokens 0", Request(Prompt(3), 0),
       absl::StatusCode::kInvalidArgument, "max_tokens"},
      {"min_tokens > max_tokens",
       with(Request(Prompt(3), 2),
            [](auto& r) { r.mutable_sampling()->set_min_tokens(3); }),
       absl::StatusCode::kInvalidArgument, "min_tokens"},
      {"negative temperature",
       with(Request(Prompt(3), 2),
            [](auto& r) { r.mutable_sampling()->set_temperature(-1); }),
       absl::StatusCode::kInvalidArgument, "temperature"},
      {"bad stop token",
       with(Request(Prompt(3), 2),
            [](auto& r) { r.mutable_sampling()->add_stop_token_ids(-5); }),
       absl::StatusCode::kInvalidArgument, "stop token id -5"},
      // bad_words the workers would refuse, which would fail a whole step.
      {"bad_words id outside vocab",
       with(Request(Prompt(3), 2),
            [](auto& r) { r.mutable_sampling()->add_bad_words()->add_ids(kVocab); }),
       absl::StatusCode::kInvalidArgument, "bad_words token id 1000 is outside"},
      {"too many bad_words sequences",
       with(Request(Prompt(3), 2),
            [](auto& r) {
              for (int i = 0; i <= kMaxBadWordSequences; ++i) {
                r.mutable_sampling()->add_bad_words()->add_ids(1);
              }
            }),
       absl::StatusCode::kInvalidArgument, "129 sequences exceed the limit of 128"},
  };
  for (const Case& c : cases) {
    Scheduler s(Config());
    auto id = s.Add(c.request, absl::InfiniteFuture());
    EXPECT_EQ(id.status().code(), c.code) << c.name << ": " << id.status();
    EXPECT_THAT(std::string(id.status().message()), HasSubstr(c.message))
        << c.name;
  }
}

// Token masks the workers would not apply are refused, not ignored.
TEST(SchedulerTest, TokenMasksNeedWorkersThatApplyThem) {
  std::vector<v1::GenerateRequest> masked(3, Request(Prompt(3), 2));
  masked[0].mutable_sampling()->set_structured_output("regex:[ab]+");
  (*masked[1].mutable_sampling()->mutable_logit_bias())[5] = 10;
  masked[2].mutable_sampling()->add_allowed_token_ids(5);
  for (bool applies : {false, true}) {
    SchedulerConfig c = Config();
    c.applies_token_masks = applies;
    Scheduler s(c);
    for (const v1::GenerateRequest& r : masked) {
      auto id = s.Add(r, absl::InfiniteFuture());
      if (applies) {
        EXPECT_TRUE(id.ok()) << id.status();
      } else {
        EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(std::string(id.status().message()), HasSubstr("not supported by this deployment"));
      }
    }
    EXPECT_TRUE(s.Add(Request(Prompt(3), 2), absl::InfiniteFuture()).ok());
  }
}

// Token masks the workers would refuse (ids outside the vocabulary, a bias
// out of range) are refused at admission, not by a failed step.
TEST(SchedulerTest, TokenMasksOutsideTheWorkersRulesAreRefused) {
  std::vector<v1::GenerateRequest> bad(3, Request(Prompt(3), 2));
  (*bad[0].mutable_sampling()->mutable_logit_bias())[kVocab] = 1;
  (*bad[1].mutable_sampling()->mutable_logit_bias())[5] = 150;
  bad[2].mutable_sampling()->add_allowed_token_ids(-1);
  SchedulerConfig c = Config();
  c.applies_token_masks = true;
  Scheduler s(c);
  for (const v1::GenerateRequest& r : bad) {
    auto id = s.Add(r, absl::InfiniteFuture());
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << r.ShortDebugString();
  }
}

TEST(SchedulerTest, RefusesWhatCanNeverFitTheCache) {
  Scheduler s(Config(/*num_blocks=*/4, /*block_size=*/4));
  // 16 positions fit: a 10-token prompt with 7 new tokens needs 16.
  EXPECT_TRUE(s.Add(Request(Prompt(10), 7), absl::InfiniteFuture()).ok());
  auto r = s.Add(Request(Prompt(10), 8), absl::InfiniteFuture());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("needs 5 KV blocks but the cache has only 4"));
}

TEST(SchedulerTest, BoundedQueue) {
  SchedulerConfig c = Config();
  c.max_queued_requests = 2;
  c.max_waiting_tokens = 25;
  Scheduler s(c);
  EXPECT_TRUE(s.Add(Request(Prompt(10), 1), absl::InfiniteFuture()).ok());
  auto tokens = s.Add(Request(Prompt(16), 1), absl::InfiniteFuture());
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(tokens.status().message()),
              HasSubstr("--max-waiting-tokens 25"));
  EXPECT_TRUE(s.Add(Request(Prompt(15), 1), absl::InfiniteFuture()).ok());
  auto count = s.Add(Request(Prompt(1), 1), absl::InfiniteFuture());
  EXPECT_EQ(count.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(count.status().message()),
              HasSubstr("--max-queued-requests 2"));
  EXPECT_EQ(s.num_waiting_tokens(), 25);
}

// Tokens scheduled per step for each sequence, under one token budget.
TEST(SchedulerTest, BudgetChunkedPrefillAndDecodesFirst) {
  struct Case {
    const char* name;
    int budget;
    int max_num_seqs;
    std::vector<int> prompts;
    int max_tokens;
    // Per step: tokens scheduled for each seq in admission order (0 = none).
    std::vector<std::vector<int>> steps;
  };
  const Case cases[] = {
      {"long prompt in chunks", 8, 8, {20}, 2, {{8}, {8}, {4}, {1}}},
      {"second prompt fills the rest", 8, 8, {5, 5}, 3,
       {{5, 3}, {1, 2}, {1, 1}, {0, 1}}},
      {"decodes before new prompts", 4, 8, {3, 6}, 3,
       {{3, 1}, {1, 3}, {1, 2}, {0, 1}, {0, 1}}},
      {"max_num_seqs caps the batch", 64, 1, {2, 2}, 2,
       {{2, 0}, {1, 0}, {0, 2}, {0, 1}}},
  };
  // The same plans whether or not a step is in flight while the next is
  // planned (a decode continues from its pending token).
  for (int depth : {1, 2})
  for (const Case& c : cases) {
    SchedulerConfig config = Config(64, 4, c.budget);
    config.max_num_seqs = c.max_num_seqs;
    Harness h(config, depth);
    std::vector<uint64_t> ids;
    for (int p : c.prompts) ids.push_back(h.Add(Request(Prompt(p), c.max_tokens)));
    for (size_t step = 0; step < c.steps.size(); ++step) {
      StepPlan plan = h.Step();
      std::vector<int> got(ids.size(), 0);
      for (auto& [id, n] : h.last_scheduled) {
        got[std::find(ids.begin(), ids.end(), id) - ids.begin()] = n;
      }
      EXPECT_EQ(got, c.steps[step]) << c.name << " step " << step
                                    << " depth " << depth;
      EXPECT_LE(plan.num_scheduled_tokens, c.budget) << c.name;
    }
    h.RunToIdle();
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(h.generated[ids[i]], ToyTokens(Prompt(c.prompts[i]), c.max_tokens))
          << c.name << " depth " << depth;
    }
  }
}

TEST(SchedulerTest, StopConditions) {
  const std::vector<int32_t> prompt = Prompt(5);
  const std::vector<int32_t> toy = ToyTokens(prompt, 8);
  struct Case {
    const char* name;
    std::vector<int32_t> eos;
    std::vector<int32_t> stop_ids;
    bool ignore_eos;
    int min_tokens;
    int max_tokens;
    int expect_len;
    v1::FinishReason reason;
    std::optional<int32_t> stop_token;
  };
  const Case cases[] = {
      {"max_tokens", {}, {}, false, 0, 4, 4, v1::FINISH_REASON_LENGTH, {}},
      {"eos", {toy[2]}, {}, false, 0, 8, 3, v1::FINISH_REASON_STOP, toy[2]},
      {"ignore_eos", {toy[2]}, {}, true, 0, 6, 6, v1::FINISH_REASON_LENGTH, {}},
      {"stop token id", {}, {toy[1]}, false, 0, 8, 2, v1::FINISH_REASON_STOP,
       toy[1]},
      {"stop id with ignore_eos", {toy[0]}, {toy[3]}, true, 0, 8, 4,
       v1::FINISH_REASON_STOP, toy[3]},
      {"min_tokens delays eos", {toy[1]}, {}, false, 3, 3, 3,
       v1::FINISH_REASON_LENGTH, {}},
      {"length wins over eos on the last token", {toy[3]}, {}, false, 0, 4, 4,
       v1::FINISH_REASON_LENGTH, {}},
  };
  // Planned one step ahead, a stop is seen one step late: the outputs must
  // not change.
  for (int depth : {1, 2})
  for (const Case& c : cases) {
    SchedulerConfig config = Config();
    config.eos_token_ids = c.eos;
    Harness h(config, depth);
    v1::GenerateRequest r = Request(prompt, c.max_tokens);
    r.mutable_sampling()->set_ignore_eos(c.ignore_eos);
    r.mutable_sampling()->set_min_tokens(c.min_tokens);
    r.mutable_sampling()->mutable_stop_token_ids()->Add(c.stop_ids.begin(),
                                                        c.stop_ids.end());
    const uint64_t id = h.Add(r);
    h.RunToIdle();
    const SequenceOutput& out = h.final_output.at(id);
    EXPECT_EQ(out.finish_reason, c.reason) << c.name << " depth " << depth;
    EXPECT_EQ(out.stop_token_id, c.stop_token) << c.name;
    EXPECT_EQ(out.completion_tokens, c.expect_len) << c.name;
    EXPECT_EQ(h.generated[id],
              std::vector<int32_t>(toy.begin(), toy.begin() + c.expect_len))
        << c.name << " depth " << depth;
    // A length cap is known ahead (no wasted step); an EOS or stop id costs
    // one step that computes a token nobody sees.
    const bool late = depth == 2 && c.reason == v1::FINISH_REASON_STOP;
    EXPECT_EQ(h.steps_computing[id], c.expect_len + (late ? 1 : 0))
        << c.name << " depth " << depth;
  }
}

TEST(SchedulerTest, PrefixReuseReportsCachedTokensAndSkipsThem) {
  for (int depth : {1, 2}) {
  Harness h(Config(64, 4), depth);
  const std::vector<int32_t> prompt = Prompt(10);
  const uint64_t a = h.Add(Request(prompt, 3));
  h.RunToIdle();
  EXPECT_EQ(h.final_output[a].cached_tokens, 0);
  const uint64_t b = h.Add(Request(prompt, 3));
  StepPlan plan = h.Step();
  ASSERT_EQ(plan.request.new_sequences_size(), 1);
  EXPECT_EQ(plan.request.new_sequences(0).num_computed_tokens(), 8);
  EXPECT_EQ(plan.request.new_sequences(0).num_scheduled_tokens(), 2);
  h.RunToIdle();
  EXPECT_EQ(h.final_output[b].cached_tokens, 8);
  EXPECT_EQ(h.generated[b], h.generated[a]);
  EXPECT_EQ(h.scheduler.prefix_hit_tokens(), 8);
  EXPECT_EQ(h.scheduler.prefix_queried_tokens(), 20);
  }
}

// The next turn of a chat (prompt + answer + more) reuses the blocks the
// answer's steps computed, also the ones a step in flight was writing.
TEST(SchedulerTest, PrefixReuseCoversGeneratedTokens) {
  for (int depth : {1, 2}) {
    Harness h(Config(64, 4), depth);
    const std::vector<int32_t> prompt = Prompt(6);
    const uint64_t a = h.Add(Request(prompt, 7));
    h.RunToIdle();
    std::vector<int32_t> next = prompt;
    next.insert(next.end(), h.generated[a].begin(), h.generated[a].end());
    next.push_back(999);
    const uint64_t b = h.Add(Request(next, 2));
    h.RunToIdle();
    // 6 + 7 tokens: positions 0..11 have KV (the last token has none), so
    // three full blocks of 4.
    EXPECT_EQ(h.final_output[b].cached_tokens, 12) << "depth " << depth;
    EXPECT_EQ(h.generated[b], ToyTokens(next, 2));
  }
}

TEST(SchedulerTest, PreemptionByRecomputeKeepsGeneratedTokens) {
  // 6 blocks of 4: two sequences of 8-token prompts growing to 8 + 12 cannot
  // both hold their blocks, so the newer is preempted and recomputed.
  for (int depth : {1, 2}) {
  SchedulerConfig config = Config(/*num_blocks=*/6, /*block_size=*/4, 64);
  config.enable_prefix_caching = false;
  Harness h(config, depth);
  const uint64_t a = h.Add(Request(Prompt(8, 1), 12));
  const uint64_t b = h.Add(Request(Prompt(8, 100), 12));
  bool saw_restart = false;
  for (int i = 0; i < 200 && h.scheduler.HasWork(); ++i) {
    StepPlan plan = h.Step();
    for (const auto& ns : plan.request.new_sequences()) {
      if (ns.seq_id() == b && ns.token_ids_size() > 8) {
        saw_restart = true;
        EXPECT_EQ(ns.num_prompt_tokens(), 8);
        EXPECT_EQ(ns.num_computed_tokens(), 0);
      }
    }
  }
  EXPECT_GE(h.scheduler.num_preemptions(), 1);
  EXPECT_TRUE(saw_restart);
  EXPECT_EQ(h.generated[a], ToyTokens(Prompt(8, 1), 12));
  EXPECT_EQ(h.generated[b], ToyTokens(Prompt(8, 100), 12));
  EXPECT_EQ(h.scheduler.num_free_blocks(), 6);
  // Planned ahead, the scheduler does not preempt under a step in flight:
  // it waits for it first.
  EXPECT_EQ(h.syncs > 0, depth == 2);
  }
}

TEST(SchedulerTest, CancelAndDeadlineFreeBlocksAtNextStep) {
  Harness h(Config(64, 4));
  const absl::Time now = absl::Now();
  const uint64_t running = h.Add(Request(Prompt(9), 50));
  const uint64_t expiring = h.Add(Request(Prompt(9, 50), 50), now + absl::Seconds(1));
  h.Step(now);
  const uint64_t waiting = h.Add(Request(Prompt(5), 5));
  EXPECT_LT(h.scheduler.num_free_blocks(), 64);
  h.scheduler.Abort(running, absl::CancelledError("client gone"));
  h.scheduler.Abort(waiting, absl::CancelledError("client gone"));
  h.scheduler.Abort(12345, absl::CancelledError("unknown id is ignored"));
  // With nothing left to compute there is no step for the workers; the
  // finished ids wait for the next busy one.
  StepPlan idle = h.Step(now + absl::Seconds(2));
  EXPECT_TRUE(idle.empty());
  EXPECT_EQ(idle.request.finished_seq_ids_size(), 0);
  EXPECT_EQ(h.scheduler.num_pending_finished(), 2);
  EXPECT_EQ(h.final_output[running].error.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(h.final_output[waiting].error.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(h.final_output[expiring].error.code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(h.scheduler.HasWork());
  EXPECT_EQ(h.scheduler.num_free_blocks(), 64);

  h.Add(Request(Prompt(3), 1));
  StepPlan busy = h.Step(now + absl::Seconds(2));
  EXPECT_THAT(std::vector<uint64_t>(busy.request.finished_seq_ids().begin(),
                                    busy.request.finished_seq_ids().end()),
              ::testing::UnorderedElementsAre(running, expiring));
  EXPECT_EQ(h.worker.num_sequences(), 1u);
}

// Planned one step ahead: a sequence that hit EOS in step N was already
// scheduled in step N+1. Its blocks are freed as soon as the EOS is seen,
// the extra token is never reported, and the workers forget it in the next
// step (which runs after N+1).
TEST(SchedulerPipelineTest, FinishSeenOneStepLateFreesBlocksAndDropsTheExtraToken) {
  const std::vector<int32_t> prompt = Prompt(5);
  const std::vector<int32_t> toy = ToyTokens(prompt, 8);
  SchedulerConfig config = Config(64, 4);
  config.eos_token_ids = {toy[1]};
  Harness h(config, /*depth=*/2);
  const uint64_t a = h.Add(Request(prompt, 8));
  v1::GenerateRequest long_one = Request(Prompt(3, 500), 20);
  long_one.mutable_sampling()->set_ignore_eos(true);
  const uint64_t other = h.Add(long_one);
  // Step 1 prefills; steps 2 and 3 decode from the tokens in flight.
  StepPlan s1 = h.Step(), s2 = h.Step(), s3 = h.Step();
  // Step 2's answer (toy[1], the EOS) came in after step 3 was sent, which
  // computes one more token for `a`.
  ASSERT_EQ(h.final_output.count(a), 1u);
  EXPECT_EQ(h.final_output[a].finish_reason, v1::FINISH_REASON_STOP);
  EXPECT_EQ(h.generated[a], std::vector<int32_t>(toy.begin(), toy.begin() + 2));
  EXPECT_EQ(h.steps_computing[a], 3);
  EXPECT_EQ(s3.request.finished_seq_ids_size(), 0);
  // Only `other` holds blocks now: 3 + 2 tokens need 2 blocks of 4.
  EXPECT_EQ(h.scheduler.num_free_blocks(), 64 - 2);
  StepPlan s4 = h.Step();
  EXPECT_THAT(std::vector<uint64_t>(s4.request.finished_seq_ids().begin(),
                                    s4.request.finished_seq_ids().end()),
              ::testing::ElementsAre(a));
  EXPECT_EQ(h.worker.num_sequences(), 1u);
  h.RunToIdle();
  // The token step 3 computed for `a` never showed up.
  EXPECT_EQ(h.generated[a], std::vector<int32_t>(toy.begin(), toy.begin() + 2));
  EXPECT_EQ(h.generated[other], ToyTokens(Prompt(3, 500), 20));
}

TEST(SchedulerPipelineTest, CancelWhileInFlightFreesBlocksAtOnce) {
  Harness h(Config(64, 4), /*depth=*/2);
  const uint64_t a = h.Add(Request(Prompt(9), 50));
  const uint64_t b = h.Add(Request(Prompt(9, 100), 50));
  for (int i = 0; i < 4; ++i) h.Step();
  ASSERT_EQ(h.in_flight.size(), 1u);
  const size_t before = h.generated[a].size();
  h.scheduler.Abort(a, absl::CancelledError("client gone"));
  StepPlan next = h.Step();
  EXPECT_EQ(h.final_output[a].error.code(), absl::StatusCode::kCancelled);
  // `a` is not in the new step, and the worker forgets it there (the step
  // in flight still computes it, before).
  for (const ScheduledSequence& e : next.scheduled) EXPECT_NE(e.seq_id, a);
  EXPECT_THAT(std::vector<uint64_t>(next.request.finished_seq_ids().begin(),
                                    next.request.finished_seq_ids().end()),
              ::testing::ElementsAre(a));
  // The token that was in flight for `a` is dropped.
  h.RunToIdle();
  EXPECT_EQ(h.generated[a].size(), before);
  EXPECT_EQ(h.generated[b], ToyTokens(Prompt(9, 100), 50));
  EXPECT_EQ(h.worker.num_sequences(),
            static_cast<size_t>(h.scheduler.num_pending_finished()));
}

// Workers answer in the step's order, but any order is matched by id.
TEST(SchedulerTest, AnswersInAnotherOrderAreMatchedById) {
  Scheduler s(Config());
  const uint64_t a = s.Add(Request(Prompt(3), 1), absl::InfiniteFuture()).value();
  const uint64_t b = s.Add(Request(Prompt(3, 50), 1), absl::InfiniteFuture()).value();
  StepPlan plan;
  std::vector<SequenceOutput> out;
  s.Schedule(absl::Now(), &plan, &out);
  v1::StepResponse response;
  response.set_step_id(plan.request.step_id());
  for (auto [id, token] : {std::pair<uint64_t, int32_t>{b, 7}, {a, 9}}) {
    v1::SampledToken* t = response.add_sampled();
    t->set_seq_id(id);
    t->set_token_id(token);
  }
  ASSERT_TRUE(s.Update(plan, response, &out).ok());
  std::map<uint64_t, int32_t> got;
  for (const SequenceOutput& o : out) got[o.seq_id] = o.token_ids.at(0);
  EXPECT_EQ(got, (std::map<uint64_t, int32_t>{{a, 9}, {b, 7}}));
}

TEST(SchedulerPipelineTest, UpdatesMustComeInOrder) {
  Scheduler s(Config());
  ASSERT_TRUE(s.Add(Request(Prompt(3), 5), absl::InfiniteFuture()).ok());
  StepPlan first, second;
  std::vector<SequenceOutput> out;
  s.Schedule(absl::Now(), &first, &out);
  s.Schedule(absl::Now(), &second, &out);
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(s.num_in_flight(), 2);
  v1::StepResponse response;
  response.set_step_id(second.request.step_id());
  const absl::Status status = s.Update(second, response, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("out of order"));
}

TEST(SchedulerTest, PriorityPolicyOrdersWaitingQueue) {
  for (bool priority : {false, true}) {
    SchedulerConfig config = Config();
    config.priority_policy = priority;
    config.max_num_seqs = 1;
    Harness h(config);
    v1::GenerateRequest low = Request(Prompt(3), 1);
    low.set_priority(5);
    v1::GenerateRequest high = Request(Prompt(3, 10), 1);
    high.set_priority(-1);
    const uint64_t first = h.Add(low);
    const uint64_t second = h.Add(high);
    h.Step();
    ASSERT_EQ(h.last_scheduled.size(), 1u);
    EXPECT_EQ(h.last_scheduled[0].first, priority ? second : first);
    h.RunToIdle();
  }
}

TEST(SchedulerTest, SeedsAreDrawnOnlyWhenUnset) {
  Harness h(Config());
  v1::GenerateRequest seeded = Request(Prompt(3), 1);
  seeded.mutable_sampling()->set_seed(42);
  h.Add(seeded);
  h.Add(Request(Prompt(3), 1));
  h.Add(Request(Prompt(3), 1));
  StepPlan plan = h.Step();
  ASSERT_EQ(plan.request.new_sequences_size(), 3);
  EXPECT_EQ(plan.request.new_sequences(0).sampling().seed(), 42u);
  EXPECT_TRUE(plan.request.new_sequences(1).sampling().has_seed());
  EXPECT_NE(plan.request.new_sequences(1).sampling().seed(),
            plan.request.new_sequences(2).sampling().seed());
}

TEST(SchedulerTest, AbortAllEndsEverythingAndFreesEveryBlock) {
  Harness h(Config(64, 4, 8));
  h.Add(Request(Prompt(20), 5));
  h.Add(Request(Prompt(20), 5));
  h.Step();
  std::vector<SequenceOutput> out;
  h.scheduler.AbortAll(absl::UnavailableError("rank 1 failed"), &out);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& o : out) {
    EXPECT_EQ(o.error.code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_FALSE(h.scheduler.HasWork());
  EXPECT_EQ(h.scheduler.num_free_blocks(), 64);
  EXPECT_EQ(h.scheduler.num_waiting_tokens(), 0);
}

TEST(SchedulerTest, UpdateRejectsAResponseThatDoesNotMatch) {
  Scheduler s(Config());
  ASSERT_TRUE(s.Add(Request(Prompt(3), 2), absl::InfiniteFuture()).ok());
  StepPlan plan;
  std::vector<SequenceOutput> out;
  s.Schedule(absl::Now(), &plan, &out);
  v1::StepResponse response;
  response.set_step_id(plan.request.step_id());
  EXPECT_EQ(s.Update(plan, response, &out).code(), absl::StatusCode::kInternal);
  response.add_sampled()->set_seq_id(plan.scheduled[0].seq_id);
  response.mutable_sampled(0)->set_token_id(kVocab);
  EXPECT_EQ(s.Update(plan, response, &out).code(), absl::StatusCode::kInternal);
  response.set_step_id(99);
  EXPECT_EQ(s.Update(plan, response, &out).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace tpserve::router
