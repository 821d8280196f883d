// The continuous-batching scheduler (vLLM v1 style): there is no separate
// prefill phase; every step spends one token budget, running sequences first
// (decodes, or the next chunk of a long prompt), then waiting prompts in
// chunks that fit what is left (chunked prefill). When blocks run out the
// newest running sequence is preempted by recompute.
//
// Steps may be scheduled one ahead (the engine keeps a step in flight while
// it plans the next): a running sequence whose token is still in flight is
// scheduled from that pending token (the workers already hold it), and the
// router learns tokens one step late. So EOS and stop ids take effect one
// step late too: the extra token of a sequence that finished is computed but
// never reported, and its blocks are freed when the finish is seen (workers
// run steps in order, so nothing later reads them too early). max_tokens and
// max_model_len are known ahead and cost no extra step. Not thread-safe: the
// router's engine serialises calls under its lock.
#ifndef TPSERVE_ROUTER_SCHEDULER_H_
#define TPSERVE_ROUTER_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/router.pb.h"
#include "proto/worker.pb.h"
#include "router/block_manager.h"
#include "router/sequence.h"

namespace tpserve::router {

// Everything the scheduler needs to know, resolved (no "0 = default").
struct SchedulerConfig {
  int num_blocks = 0;
  int block_size = 16;
  int max_model_len = 0;
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  int max_queued_requests = 1024;
  // 0: no bound.
  int64_t max_waiting_tokens = 0;
  bool enable_prefix_caching = true;
  // Priority policy (lower GenerateRequest.priority first) instead of FCFS.
  bool priority_policy = false;
  int vocab_size = 0;
  std::vector<int32_t> eos_token_ids;
  // Whether the workers apply structured_output, logit_bias and
  // allowed_token_ids (ModelInfo.applies_token_masks); requests using them
  // are refused otherwise rather than silently served unconstrained.
  bool applies_token_masks = false;
  // Seeds the draws for requests without a seed.
  uint64_t seed = 0;
  // First seq_id handed out; a recreated scheduler continues after the old
  // one so that ids never repeat towards workers that kept state.
  uint64_t first_seq_id = 1;
};

// One sequence's share of a planned step.
struct ScheduledSequence {
  uint64_t seq_id = 0;
  // Tokens computed for it in the step.
  int num_tokens = 0;
  // Whether the step ends at its last token, so the workers sample one.
  bool samples = false;
};

// One step as planned: the message for the workers and which sequences it
// computes how far.
struct StepPlan {
  v1::StepRequest request;
  // Every sequence computed in the step, in the request's order.
  std::vector<ScheduledSequence> scheduled;
  int num_scheduled_tokens = 0;
  // Blocks ran out while a step was in flight. Nothing was planned: Update
  // every step in flight, then Schedule again (preemption only happens with
  // no step in flight, so no preempted sequence has a token on its way).
  bool needs_sync = false;
  // Whether there is anything for the workers to compute.
  bool empty() const { return scheduled.empty(); }
};

// Decides, every step, which tokens of which sequences run.
class Scheduler {
 public:
  // Config must be valid (positive sizes; checked by the router).
  explicit Scheduler(SchedulerConfig config);

  // Admits a request: INVALID_ARGUMENT when it can never run (too long for
  // max_model_len or the whole cache, bad fields), RESOURCE_EXHAUSTED when
  // the queue is full. Returns the new seq_id.
  absl::StatusOr<uint64_t> Add(const v1::GenerateRequest& request,
                               absl::Time deadline);

  // Ends a sequence with `reason` at the next Schedule (blocks freed then).
  // Unknown or already-finished ids are ignored.
  void Abort(uint64_t seq_id, absl::Status reason);

  // Plans the next step into `plan`; may be called again before the steps
  // planned earlier are updated (a non-empty plan counts as in flight until
  // its Update). Sequences that ended because of an abort or a passed
  // deadline are reported in `outputs`.
  void Schedule(absl::Time now, StepPlan* plan,
                std::vector<SequenceOutput>* outputs);

  // Applies the tokens rank 0 sampled for `plan`, the oldest step in
  // flight: appends them, checks stop conditions. Tokens of sequences that
  // ended meanwhile are dropped. INTERNAL when the response does not match
  // the plan (then the caller must AbortAll).
  absl::Status Update(const StepPlan& plan, const v1::StepResponse& response,
                      std::vector<SequenceOutput>* outputs);

  // Ends every sequence with `status`, forgets the steps in flight and frees
  // every block: the workers' state is gone (a rank failed).
  void AbortAll(const absl::Status& status,
                std::vector<SequenceOutput>* outputs);

  // Whether a step would do anything (work or pending aborts).
  bool HasWork() const {
    return !running_.empty() || !waiting_.empty() || !aborts_.empty();
  }
  // The earliest deadline of any live sequence.
  absl::Time NextDeadline() const;
  // Steps planned and not yet updated.
  int num_in_flight() const { return static_cast<int>(in_flight_.size()); }

  // Figures for Stats and metrics.
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t num_waiting_tokens() const { return waiting_tokens_; }
  int num_free_blocks() const { return blocks_.num_free_blocks(); }
  int num_blocks() const { return blocks_.num_blocks(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  // Prefix-cache lookups and hits, in tokens.
  int64_t prefix_queried_tokens() const { return prefix_queried_; }
  int64_t prefix_hit_tokens() const { return prefix_hits_; }
  // Ended sequences the workers still hold (told at the next busy step).
  int num_pending_finished() const {
    return static_cast<int>(pending_finished_.size());
  }
  // The id the next admitted sequence gets.
  uint64_t next_seq_id() const { return next_seq_id_; }
  const SchedulerConfig& config() const { return config_; }
  // Read-only access for invariant checks in tests.
  const BlockManager& block_manager() const { return blocks_; }

 private:
  // Orders the waiting queue: priority (priority policy only), then arrival.
  struct WaitingOrder {
    bool operator()(const Sequence* a, const Sequence* b) const;
  };

  absl::Status Validate(const v1::GenerateRequest& request) const;
  void AddToWaiting(Sequence* seq);
  void RemoveFromWaiting(Sequence* seq);
  // Frees a running sequence's blocks and puts it back in the queue.
  void Preempt(Sequence* seq);
  // Removes a sequence entirely (it must already be out of running_).
  void Release(Sequence* seq);
  // Ends a sequence with an error and reports it.
  void EndWithError(Sequence* seq, const absl::Status& status,
                    std::vector<SequenceOutput>* outputs);
  // Fills the usage fields of an output.
  void FillUsage(const Sequence& seq, SequenceOutput* out) const;
  // Emits the sequence's final output, ended by `status` (abort).
  void PushAbortOutput(const Sequence& seq, const absl::Status& status,
                       std::vector<SequenceOutput>* outputs) const;
  // Decides whether the last appended token ends the sequence.
  void CheckStop(const Sequence& seq, SequenceOutput* out) const;
  // Whether the sequence's pending tokens already reach max_tokens or
  // max_model_len: it ends when they arrive and needs no further step.
  bool ReachesLimit(const Sequence& seq) const;
  // Schedules the running sequences into `scheduled`; false when blocks ran
  // out with a step in flight (nothing was scheduled then).
  bool ScheduleRunning(int* budget, bool* preempted,
                       std::vector<std::pair<Sequence*, int>>* scheduled);
  // Starts waiting sequences while the budget and max_num_seqs allow.
  void ScheduleWaiting(int* budget,
                       std::vector<std::pair<Sequence*, int>>* scheduled);
  // Adds the worker-facing description of one scheduled sequence and
  // advances it by `num_tokens`.
  void Describe(Sequence* seq, int num_tokens, StepPlan* plan);

  const SchedulerConfig config_;
  BlockManager blocks_;
  std::mt19937_64 rng_;
  uint64_t next_seq_id_;
  uint64_t next_arrival_ = 0;
  uint64_t step_id_ = 0;
  // Ids of the steps planned and not yet updated, oldest first.
  std::deque<uint64_t> in_flight_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Sequence>> seqs_;
  std::set<Sequence*, WaitingOrder> waiting_;
  // Scheduling order; the back is the preemption victim.
  std::vector<Sequence*> running_;
  std::vector<std::pair<uint64_t, absl::Status>> aborts_;
  // Ids the workers must forget at the next step.
  std::vector<uint64_t> pending_finished_;
  int64_t waiting_tokens_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t prefix_queried_ = 0;
  int64_t prefix_hits_ = 0;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_SCHEDULER_H_
