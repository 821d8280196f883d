// The router's core: one step-loop thread drives the scheduler and the worker
// group; Generate handlers submit requests and read their outputs from a
// RequestStream. The loop keeps one step in flight ahead: it plans and sends
// step N+1 while the workers run step N, then applies N's tokens. The engine
// also owns the serving state (STARTING, READY, UNHEALTHY), re-running the
// worker handshake with backoff after a failure.
#ifndef TPSERVE_ROUTER_ENGINE_H_
#define TPSERVE_ROUTER_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "proto/router.pb.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"
#include "router/worker_group.h"

namespace tpserve::router {

// Steps in flight at most: one running on the workers and the next one
// already queued behind it.
inline constexpr int kPipelineDepth = 2;

// Tunables that are not user settings.
struct EngineOptions {
  // Wait before re-running a failed handshake; doubles up to max_backoff.
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(10);
};

// Outputs of one request, from the step loop to whoever serves the request.
// Nothing waits on it: the server registers a listener that is told when
// outputs arrive and takes them without blocking.
class RequestStream {
 public:
  // The scheduler's id for the request.
  uint64_t seq_id() const { return seq_id_; }
  // Moves every queued output into `out` (appends; never waits).
  void Take(std::vector<SequenceOutput>* out);
  // Calls `on_output` after every Push from now on, and once now if outputs
  // are already queued. It runs on the step loop's thread with this stream's
  // lock held, so it must only hand off (queue work elsewhere): never block,
  // never call back into this stream.
  void SetListener(std::function<void()> on_output);
  // Removes the listener; once this returns it is not running and will not
  // run again.
  void ClearListener();

 private:
  friend class Engine;
  void Push(SequenceOutput output);

  uint64_t seq_id_ = 0;
  absl::Time arrival_;
  bool got_first_token_ = false;
  std::mutex mu_;
  std::deque<SequenceOutput> outputs_;
  std::function<void()> on_output_;
};

// Scheduler + worker group + step loop.
class Engine {
 public:
  // Creates the worker clients; the loop starts with Start(). `config` is
  // trusted: its ranges were checked by the option table (common/config).
  static absl::StatusOr<std::unique_ptr<Engine>> Create(
      const ServerConfig& config, EngineOptions options = {});
  ~Engine();

  // Starts the step loop (which begins with the handshake).
  void Start();

  // Admits a request (see Scheduler::Add for the errors); UNAVAILABLE while
  // the group is not ready or the router is shutting down.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(
      const v1::GenerateRequest& request, absl::Time deadline);

  // Cancels a request; its blocks are freed at the next step.
  void Cancel(uint64_t seq_id);

  // Refuses new requests and waits up to `timeout` for in-flight ones.
  void Drain(absl::Duration timeout);

  // Stops the loop; requests still in flight end with UNAVAILABLE.
  void Stop();

  // Health and Stats RPC answers.
  v1::HealthResponse Health();
  v1::StatsResponse Stats(bool include_metrics_text = false);
  // Metrics in Prometheus text format.
  std::string PrometheusText();

 private:
  Engine(const ServerConfig& config, EngineOptions options,
         std::unique_ptr<WorkerGroup> group,
         std::unique_ptr<RouterMetrics> metrics);

  // A step sent to the workers and not yet answered.
  struct InFlightStep {
    StepPlan plan;
    absl::Time sent;
  };

  void Loop();
  // Runs the handshake and builds a fresh scheduler; false on failure.
  bool Connect(std::unique_lock<std::mutex>& lock);
  // Plans the next step and sends it (the lock is released while writing to
  // the ranks), then delivers what the last answer produced.
  void SendStep(std::unique_lock<std::mutex>& lock);
  // Waits for the oldest step's answers (lock released) and applies them;
  // the outputs wait in undelivered_ until the next step is on its way.
  void ReceiveStep(std::unique_lock<std::mutex>& lock);
  // Ends every request after a failed step and marks the group unhealthy.
  void FailGroup(const absl::Status& status);
  // Routes outputs to their streams and records metrics.
  void Deliver(std::vector<SequenceOutput>* outputs);
  // Refreshes gauges and counters from the scheduler.
  void RefreshMetrics();
  // Milliseconds a refused client should wait before retrying.
  int64_t RetryAfterMs() const;

  const ServerConfig config_;
  const EngineOptions options_;
  std::unique_ptr<WorkerGroup> group_;
  std::unique_ptr<RouterMetrics> metrics_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_cv_;
  v1::ServingState state_ = v1::SERVING_STATE_STARTING;
  std::string state_message_ = "connecting to workers";
  // Consecutive failed handshakes (reset when the group becomes ready).
  int failed_handshakes_ = 0;
  v1::ModelInfo model_;
  std::unique_ptr<Scheduler> scheduler_;
  uint64_t next_seq_id_ = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<RequestStream>> streams_;
  bool stop_ = false;
  bool draining_ = false;
  // Scheduler totals already added to the counters (reset per scheduler).
  int64_t seen_preemptions_ = 0;
  int64_t seen_queries_ = 0;
  int64_t seen_hits_ = 0;
  // Exponentially weighted step time, for the retry hint.
  double ewma_step_seconds_ = 0.02;
  // Steps sent and not answered, oldest first (at most kPipelineDepth).
  std::deque<InFlightStep> in_flight_;
  // Plans and the answer message kept for reuse: a step's messages keep
  // their allocations from one step to the next.
  std::vector<StepPlan> spare_plans_;
  v1::StepResponse answer_;
  // The last plan came out empty or needs the steps in flight applied first
  // (the rest waits for tokens on their way): receive before planning again.
  bool wait_for_answer_ = false;
  // Outputs of the last answer, delivered once the next step is sent.
  std::vector<SequenceOutput> undelivered_;
  // When the last step's answer came in (step durations do not overlap).
  absl::Time last_answer_;
  std::thread loop_;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_ENGINE_H_
