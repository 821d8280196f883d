// One request as the scheduler sees it: its tokens, how many of them have
// KV entries, its blocks, and what the workers already know about it.
#ifndef TPSERVE_ROUTER_SEQUENCE_H_
#define TPSERVE_ROUTER_SEQUENCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/common.pb.h"
#include "router/block_manager.h"

namespace tpserve::router {

// Where a sequence is in its life.
enum class SequenceStatus { kWaiting, kRunning };

// A request's state inside the scheduler.
struct Sequence {
  // Router-assigned id, unique for the router's lifetime.
  uint64_t seq_id = 0;
  // Caller's id, for logs.
  std::string request_id;
  // Prompt followed by generated tokens.
  std::vector<int32_t> tokens;
  // Length of the prompt prefix of `tokens`.
  int num_prompt_tokens = 0;
  // Tokens whose KV entries exist or are written by a step already sent
  // (prefix hits included). Workers run steps in order, so a later step may
  // rely on them.
  int num_computed_tokens = 0;
  // Tokens sampled by steps in flight that the router has not seen yet: the
  // workers already hold them (each rank appends what it samples), the
  // router learns them when the step's answer comes back.
  int num_pending_tokens = 0;
  // Prompt tokens served by the prefix cache the first time it was scheduled.
  std::optional<int> num_cached_tokens;
  // Sampling parameters; the seed is always set.
  v1::SamplingParams sampling;
  // Lower runs first under the priority policy.
  int priority = 0;
  // Admission order; ties and FCFS order.
  uint64_t arrival = 0;
  // When the request must end with DEADLINE_EXCEEDED.
  absl::Time deadline = absl::InfiniteFuture();
  SequenceStatus status = SequenceStatus::kWaiting;
  // KV blocks.
  BlockTable blocks;
  // Whether the workers hold state for it (a NewSequence was sent and no
  // finished id since).
  bool on_workers = false;
  // How many of blocks.block_ids the workers have been sent.
  int num_blocks_sent = 0;

  // Generated tokens the router knows.
  int num_output_tokens() const {
    return static_cast<int>(tokens.size()) - num_prompt_tokens;
  }
  // Known tokens plus those still in flight.
  int num_tokens_with_pending() const {
    return static_cast<int>(tokens.size()) + num_pending_tokens;
  }
};

// What one sequence produced in a step (or why it ended).
struct SequenceOutput {
  uint64_t seq_id = 0;
  // Tokens sampled since the previous output (zero or one per step).
  std::vector<int32_t> token_ids;
  std::vector<v1::TokenLogprob> logprobs;
  // Set when the sequence ended; it is gone from the scheduler then.
  bool finished = false;
  v1::FinishReason finish_reason = v1::FINISH_REASON_UNSPECIFIED;
  std::optional<int32_t> stop_token_id;
  // Non-OK when it ended without finishing (cancelled, deadline, rank lost).
  absl::Status error;
  // Usage so far.
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_SEQUENCE_H_
