// Runs the router calls of one HTTP request (one per prompt x n) and turns
// their token streams into text events. Each call is a gRPC client reactor:
// gRPC's own threads hand every message to this object's queue (no thread per
// call), and the thread serving the HTTP request takes them with Next(),
// which detokenizes, checks stop strings (cancelling the call on a match) and
// fails over to another router on UNAVAILABLE before the first token. When
// that thread falls behind, the messages waiting for one sequence become one
// event (one SSE chunk), so slow clients cost fewer writes, not more.
#ifndef TPSERVE_GATEWAY_GENERATION_H_
#define TPSERVE_GATEWAY_GENERATION_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
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

class GenerationRegistry;

// The router calls of one request. Destroying it cancels what still runs.
class Generation {
 public:
  // `metrics` and `registry` may be null. Nothing starts before Start().
  Generation(RouterPool* pool, const TextService* text, GatewayMetrics* metrics,
             std::string request_id, std::vector<SequenceSpec> specs,
             std::chrono::steady_clock::time_point arrival,
             GenerationRegistry* registry = nullptr);
  // Cancels the calls still open and waits until gRPC has let go of them.
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Launches every router call. Call from the thread that calls Next.
  void Start();
  // Blocks for the next event; false once every sequence has finished or
  // failed and all events were taken. One consumer thread at a time.
  bool Next(SequenceEvent* event);
  // Cancels every router call now (client gone); safe from any thread.
  void Cancel();
  // Ends every unfinished sequence with `status` (an error event each) and
  // cancels the calls; the first abort's status wins. Safe from any thread.
  void Abort(absl::Status status);
  // Number of sequences.
  int size() const { return static_cast<int>(specs_.size()); }

 private:
  class Call;
  // What a call delivered: a message, or its end (status set).
  struct Arrival {
    Call* call = nullptr;
    tpserve::v1::GenerateResponse message;
    std::chrono::steady_clock::time_point time;
    std::optional<grpc::Status> end;
  };
  // Consumer-side state of one sequence (touched only by Next's thread).
  struct SeqState {
    Call* call = nullptr;  // the current attempt
    std::vector<int> tried;
    std::unique_ptr<SequenceDecoder> decoder;
    int completion_tokens = 0;
    bool got_message = false;
    bool done = false;
    // The event being built from this batch's messages.
    std::optional<SequenceEvent> pending;
  };

  // Starts a call on the next router to try; false when none is left.
  bool StartAttempt(int seq);
  // Reactor side (gRPC threads); false when the call must pause reading.
  bool OnArrival(Arrival arrival);
  // Consumer side.
  void Process(std::deque<Arrival>& batch);
  void TakeMessage(int seq, const Arrival& arrival);
  void TakeEnd(int seq, const Arrival& arrival);
  void Fail(int seq, absl::Status status);
  void Flush(int seq);

  RouterPool* const pool_;
  const TextService* const text_;
  GatewayMetrics* const metrics_;
  GenerationRegistry* const registry_;
  const std::string request_id_;
  const std::vector<SequenceSpec> specs_;
  const std::chrono::steady_clock::time_point arrival_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Arrival> arrivals_;
  // The consumer is in Next's wait (arrivals notify only then).
  bool waiting_ = false;
  std::optional<absl::Status> abort_;
  // Every call started (attempts included), alive until the destructor.
  std::vector<std::unique_ptr<Call>> calls_;
  // Calls gRPC has not finished with (OnDone not yet run).
  int live_calls_ = 0;

  std::vector<SeqState> seqs_;
  std::deque<SequenceEvent> ready_;
  // Sequences with events still to come.
  int open_ = 0;
  // Sequences with a pending event, in the order they got it.
  std::vector<int> touched_;
};

// The Generations of one gateway, so that a shutdown can wait for them and
// end the ones still running after the drain timeout.
class GenerationRegistry {
 public:
  // Waits until none is registered or `timeout` passes; true if none is.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Aborts every registered Generation with `status`, and every one
  // registered from now on.
  void AbortAll(const absl::Status& status);
  // Generations registered now.
  int size();

 private:
  friend class Generation;
  void Add(Generation* generation);
  void Remove(Generation* generation);

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<Generation*> live_;
  std::optional<absl::Status> abort_;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_GENERATION_H_
