// Router.Generate on gRPC's callback API: one GenerateReactor per call, no
// thread per stream. The step loop pushes outputs into the request's
// RequestStream, whose listener only queues the reactor on a WritePump; a
// pump thread (or gRPC's own thread, when the previous write completes) takes
// everything queued and writes it as one message. One write is in flight per
// stream, so tokens sampled while a write is pending are coalesced into the
// next one. Cancellation arrives as OnCancel, when it happens.
#ifndef TPSERVE_ROUTER_GENERATE_REACTOR_H_
#define TPSERVE_ROUTER_GENERATE_REACTOR_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <grpcpp/support/server_callback.h>

#include "proto/router.pb.h"
#include "router/engine.h"

namespace grpc {
class CallbackServerContext;
}

namespace tpserve::router {

class GenerateReactor;

// A fixed pool of threads that start the writes of streams with new outputs,
// so that the step loop never builds messages or runs gRPC's transport code
// (StartWrite may write to the socket inline).
class WritePump {
 public:
  // Starts `num_threads` threads (at least one).
  explicit WritePump(int num_threads);
  // Joins the threads; queued reactors are dropped (their calls still end
  // through their own cancellation or finish).
  ~WritePump();
  WritePump(const WritePump&) = delete;
  WritePump& operator=(const WritePump&) = delete;

  // Queues `reactor` to write its pending outputs.
  void Schedule(std::shared_ptr<GenerateReactor> reactor);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenerateReactor>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// One Generate call. Owns itself: created by Start, deleted after OnDone
// (and after the pump lets go of it).
class GenerateReactor final
    : public grpc::ServerWriteReactor<v1::GenerateResponse>,
      public std::enable_shared_from_this<GenerateReactor> {
 public:
  // Submits `request` to `engine` and returns the reactor serving the call;
  // a refused request is finished at once with the engine's status (and the
  // retry hint in the trailing metadata).
  static GenerateReactor* Start(Engine* engine, WritePump* pump,
                                grpc::CallbackServerContext* context,
                                const v1::GenerateRequest& request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // Private constructor tag (make_shared needs a public constructor).
  struct Token {};
  GenerateReactor(Token, Engine* engine, WritePump* pump);

 private:
  friend class WritePump;

  // Writes what the stream holds, unless a write is in flight or the call
  // is over. Called with mu_ held.
  void PumpLocked();
  // Ends the call once (mu_ held). With a write in flight the finish waits
  // for OnWriteDone.
  void FinishLocked(grpc::Status status);

  Engine* const engine_;
  WritePump* const pump_;
  std::shared_ptr<RequestStream> stream_;
  // Keeps the reactor alive until OnDone.
  std::shared_ptr<GenerateReactor> self_;
  // Set by the listener, cleared by the pump: one queue entry per burst of
  // pushes, however many there were.
  std::atomic<bool> scheduled_{false};

  std::mutex mu_;
  bool write_in_flight_ = false;
  // Finish was called (or is waiting for the write in flight).
  bool finishing_ = false;
  std::optional<grpc::Status> pending_finish_;
  // The engine sent the request's last output (finished or failed).
  bool ended_by_engine_ = false;
  // Owned here because gRPC reads it until OnWriteDone.
  v1::GenerateResponse response_;
  std::vector<SequenceOutput> outputs_;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_GENERATE_REACTOR_H_
