// Runs the router calls of one HTTP request (one per prompt x n) and turns
// their token streams into text events: one thread per call reads the gRPC
// stream, detokenizes, checks stop strings (cancelling the call on a match)
// and fails over to another router on UNAVAILABLE before the first token.
// The HTTP side pops events with Next() and formats them.
#ifndef TPSERVE_GATEWAY_GENERATION_H_
#define TPSERVE_GATEWAY_GENERATION_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "gateway/gateway_metrics.h"
#include "gateway/openai_format.h"
#include "gateway/router_pool.h"
#include "gateway/text_service.h"
#include "proto/router.pb.h"

namespace tpserve::gateway {

// One router call: the choice index it fills and what to send.
struct SequenceSpec {
  int index = 0;
  std::vector<int> prompt_token_ids;
  tpserve::v1::SamplingParams sampling;
  int priority = 0;
  std::vector<std::string> stop;
  bool skip_special_tokens = true;
};

// Something that happened to one sequence.
struct SequenceEvent {
  int index = 0;
  // New text (already checked against stop strings).
  std::string text;
  // Logprobs of the tokens behind this event (when asked for).
  std::vector<LogprobEntry> logprobs;
  // Set on the sequence's last event: "stop", "length" or "abort".
  std::optional<std::string> finish_reason;
  // vLLM's stop_reason: matched stop string or stop token id, else null.
  nlohmann::json stop_reason;
  // Token counts so far.
  UsageCounts usage;
  // Non-OK: the sequence failed; no further events for it.
  absl::Status error;
};

// The router calls of one request. Destroying it cancels what still runs.
class Generation {
 public:
  // `metrics` may be null. Nothing starts before Start().
  Generation(RouterPool* pool, const TextService* text, GatewayMetrics* metrics,
             std::string request_id, std::vector<SequenceSpec> specs,
             std::chrono::steady_clock::time_point arrival);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Launches every router call.
  void Start();
  // Blocks for the next event; false once every sequence has finished or
  // failed and all events were taken.
  bool Next(SequenceEvent* event);
  // Like Next but gives up after `timeout` (returns false, *timed_out set).
  bool NextFor(SequenceEvent* event, std::chrono::milliseconds timeout, bool* timed_out);
  // Cancels every router call now (client gone); safe from any thread.
  void Cancel();
  // Number of sequences.
  int size() const { return static_cast<int>(specs_.size()); }

 private:
  void Run(int seq);
  // One attempt on router `router`; returns the call's final status and
  // whether any message arrived.
  absl::Status Attempt(int seq, int router, bool* got_message, bool* finished);
  void Push(SequenceEvent event);

  RouterPool* const pool_;
  const TextService* const text_;
  GatewayMetrics* const metrics_;
  const std::string request_id_;
  const std::vector<SequenceSpec> specs_;
  const std::chrono::steady_clock::time_point arrival_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SequenceEvent> events_;
  int running_ = 0;
  bool cancelled_ = false;
  // Live call contexts by sequence (null between attempts).
  std::vector<grpc::ClientContext*> contexts_;
  std::vector<std::thread> threads_;
};

// Converts a finished gRPC status from a router into the gateway's status,
// carrying the `retry-after-ms` trailing metadata for RESOURCE_EXHAUSTED.
absl::Status RouterCallStatus(const grpc::Status& status, const grpc::ClientContext& context);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_GENERATION_H_
