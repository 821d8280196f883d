// Randomized workloads against a strict toy worker: no workload may leak a
// block, break the token budget or the sequence cap, or corrupt a KV slot
// (the toy worker checks every position attention reads). After any mix of
// finished, cancelled, preempted and expired requests an idle scheduler has
// every block free. Every workload runs twice: with each step updated before
// the next is planned, and with the next planned while one is in flight (the
// engine's way). Either way every request's tokens are the toy model's
// continuation of its prompt.
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "router/scheduler.h"
#include "router/testing/toy_worker_state.h"

namespace tpserve::router {
namespace {

using ::tpserve::router::testing::ToyWorkerState;

constexpr int kVocab = 50;  // Small, so that EOS and stop ids do happen.

void CheckBlockInvariants(const Scheduler& s) {
  const BlockManager& bm = s.block_manager();
  int referenced = 0;
  for (int b = 0; b < bm.num_blocks(); ++b) {
    ASSERT_GE(bm.ref_count(b), 0);
    referenced += bm.ref_count(b) > 0 ? 1 : 0;
  }
  ASSERT_EQ(referenced + bm.num_free_blocks(), bm.num_blocks());
}

TEST(SchedulerRandomTest, NoLeakNoBudgetBreakNoCorruption) {
  int64_t total_preemptions = 0, total_hits = 0, total_expired = 0;
  int64_t total_syncs = 0;
  for (int seed = 0; seed < 40; ++seed)
  for (int depth : {1, 2}) {
    std::mt19937 rng(seed);
    auto uniform = [&](int lo, int hi) {
      return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    SchedulerConfig c;
    c.block_size = uniform(1, 8);
    c.num_blocks = uniform(8, 80);
    c.max_model_len = uniform(8, 96);
    c.max_num_seqs = uniform(1, 12);
    c.max_num_batched_tokens = uniform(1, 64);
    c.max_queued_requests = uniform(1, 20);
    c.enable_prefix_caching = uniform(0, 1) == 1;
    c.priority_policy = uniform(0, 1) == 1;
    c.vocab_size = kVocab;
    c.eos_token_ids = {uniform(0, kVocab - 1)};
    c.seed = seed;
    Scheduler s(c);
    ToyWorkerState worker(kVocab, c.block_size, c.num_blocks);
    // A few shared prefixes so that the prefix cache gets hits.
    std::vector<std::vector<int32_t>> prefixes(3);
    for (auto& p : prefixes) {
      for (int i = 0, n = uniform(1, 24); i < n; ++i) {
        p.push_back(uniform(0, kVocab - 1));
      }
    }
    absl::Time now = absl::UnixEpoch() + absl::Hours(1);
    std::deque<std::pair<StepPlan, v1::StepResponse>> in_flight;
    std::set<uint64_t> live;
    std::map<uint64_t, int> max_tokens;
    // Each request's last prompt token and what it was sent so far.
    std::map<uint64_t, int32_t> last_prompt;
    std::map<uint64_t, std::vector<int32_t>> generated;
    int ended = 0, admitted = 0;

    // 400 steps, then until the last step in flight is answered.
    for (int step = 0;
         step < 400 || (step < 1000 && (s.HasWork() || !in_flight.empty()));
         ++step) {
      // Arrivals.
      for (int i = uniform(0, 3); i > 0 && step < 300; --i) {
        v1::GenerateRequest r;
        const auto& prefix = prefixes[uniform(0, 2)];
        const int len = uniform(1, c.max_model_len - 1);
        for (int t = 0; t < len; ++t) {
          r.add_prompt_token_ids(t < static_cast<int>(prefix.size())
                                     ? prefix[t]
                                     : uniform(0, kVocab - 1));
        }
        auto* sp = r.mutable_sampling();
        sp->set_max_tokens(uniform(1, c.max_model_len - len));
        sp->set_min_tokens(uniform(0, sp->max_tokens()));
        sp->set_ignore_eos(uniform(0, 3) == 0);
        if (uniform(0, 2) == 0) sp->add_stop_token_ids(uniform(0, kVocab - 1));
        r.set_priority(uniform(-2, 2));
        const absl::Time deadline = uniform(0, 5) == 0
                                        ? now + absl::Milliseconds(uniform(0, 50))
                                        : absl::InfiniteFuture();
        auto id = s.Add(r, deadline);
        if (id.ok()) {
          live.insert(*id);
          max_tokens[*id] = sp->max_tokens();
          last_prompt[*id] = r.prompt_token_ids(len - 1);
          ++admitted;
        } else {
          ASSERT_TRUE(id.status().code() ==
                          absl::StatusCode::kResourceExhausted ||
                      id.status().code() == absl::StatusCode::kInvalidArgument)
              << id.status();
        }
      }
      // Cancellations, including ids that already ended.
      if (!live.empty() && uniform(0, 6) == 0) {
        auto it = live.begin();
        std::advance(it, uniform(0, static_cast<int>(live.size()) - 1));
        s.Abort(*it, absl::CancelledError("gone"));
      }
      now += absl::Milliseconds(uniform(0, 4));

      std::vector<SequenceOutput> out;
      auto update_oldest = [&] {
        ASSERT_TRUE(s.Update(in_flight.front().first, in_flight.front().second,
                             &out)
                        .ok());
        in_flight.pop_front();
      };
      StepPlan plan;
      s.Schedule(now, &plan, &out);
      if (plan.needs_sync) {
        ++total_syncs;
        while (!in_flight.empty()) update_oldest();
        s.Schedule(now, &plan, &out);
        ASSERT_FALSE(plan.needs_sync);
      }
      ASSERT_LE(plan.num_scheduled_tokens, c.max_num_batched_tokens);
      ASSERT_LE(static_cast<int>(plan.scheduled.size()), c.max_num_seqs);
      int sum = 0;
      for (const ScheduledSequence& e : plan.scheduled) sum += e.num_tokens;
      ASSERT_EQ(sum, plan.num_scheduled_tokens);
      if (!plan.empty()) {
        auto response = worker.Step(plan.request);
        ASSERT_TRUE(response.ok()) << "seed " << seed << " depth " << depth
                                   << " step " << step << ": "
                                   << response.status();
        in_flight.emplace_back(plan, *response);
      }
      while (!in_flight.empty() &&
             (static_cast<int>(in_flight.size()) >= depth || plan.empty())) {
        update_oldest();
      }
      for (const SequenceOutput& o : out) {
        ASSERT_TRUE(live.count(o.seq_id)) << o.seq_id;
        ASSERT_LE(o.completion_tokens, max_tokens[o.seq_id]);
        if (o.error.code() == absl::StatusCode::kDeadlineExceeded) {
          ++total_expired;
        }
        auto& tokens = generated[o.seq_id];
        for (int32_t t : o.token_ids) {
          const int32_t want = ToyWorkerState::NextToken(
              tokens.empty() ? last_prompt[o.seq_id] : tokens.back(), kVocab);
          ASSERT_EQ(t, want) << "seed " << seed << " depth " << depth
                             << " sequence " << o.seq_id << " token "
                             << tokens.size();
          tokens.push_back(t);
        }
        if (o.finished) {
          live.erase(o.seq_id);
          ++ended;
        }
      }
      CheckBlockInvariants(s);
      ASSERT_EQ(s.num_running() + s.num_waiting(), static_cast<int>(live.size()));
    }
    // Everything that was admitted ended one way or another and the router
    // holds no block; the worker holds exactly the ended sequences whose ids
    // wait for the next busy step, and one more request flushes them.
    ASSERT_TRUE(live.empty()) << "seed " << seed << " depth " << depth << ": "
                              << live.size() << " requests never ended";
    ASSERT_TRUE(in_flight.empty());
    ASSERT_EQ(ended, admitted);
    ASSERT_FALSE(s.HasWork());
    EXPECT_EQ(s.num_free_blocks(), s.num_blocks()) << "seed " << seed;
    EXPECT_EQ(s.num_waiting_tokens(), 0);
    EXPECT_EQ(worker.num_sequences(),
              static_cast<size_t>(s.num_pending_finished()))
        << "seed " << seed;
    v1::GenerateRequest last;
    last.add_prompt_token_ids(1);
    last.mutable_sampling()->set_max_tokens(1);
    ASSERT_TRUE(s.Add(last, absl::InfiniteFuture()).ok());
    StepPlan flush;
    std::vector<SequenceOutput> out;
    s.Schedule(now, &flush, &out);
    auto response = worker.Step(flush.request);
    ASSERT_TRUE(response.ok()) << response.status();
    ASSERT_TRUE(s.Update(flush, *response, &out).ok());
    EXPECT_EQ(worker.num_sequences(), 1u) << "seed " << seed;
    EXPECT_EQ(s.num_free_blocks(), s.num_blocks());
    total_preemptions += s.num_preemptions();
    total_hits += s.prefix_hit_tokens();
  }
  // The workloads must actually exercise the hard paths.
  EXPECT_GT(total_preemptions, 0);
  EXPECT_GT(total_hits, 0);
  EXPECT_GT(total_expired, 0);
  // And some plans had to wait for the step in flight before preempting.
  EXPECT_GT(total_syncs, 0);
  std::printf("preemptions %ld, prefix-hit tokens %ld, expired %ld, syncs %ld\n",
              static_cast<long>(total_preemptions), static_cast<long>(total_hits),
              static_cast<long>(total_expired), static_cast<long>(total_syncs));
}

}  // namespace
}  // namespace tpserve::router
