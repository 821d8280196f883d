#include "worker/service/step_stream_server.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/str_cat.h"
#include "common/security/group_token.h"
#include "proto/worker.grpc.pb.h"

namespace tpserve::worker {
namespace {

// Steps read from a stream and not yet run, oldest first.
class StepQueue {
 public:
  void Push(std::unique_ptr<v1::StepRequest> step) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      steps_.push_back(std::move(step));
    }
    cv_.notify_one();
  }
  // The stream ended: Pop returns null once the queue is empty.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_one();
  }
  std::unique_ptr<v1::StepRequest> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !steps_.empty() || closed_; });
    if (steps_.empty()) return nullptr;
    std::unique_ptr<v1::StepRequest> step = std::move(steps_.front());
    steps_.pop_front();
    return step;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<v1::StepRequest>> steps_;
  bool closed_ = false;
};

using StepWriter = grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>;

// Rank 0's side of the relay: the other ranks' step streams and the
// matching of their answers with rank 0's own (see the header comment).
class Relay {
 public:
  explicit Relay(const RelayOptions& options) : timeout_(options.peer_timeout) {
    grpc::ChannelArguments args = options.channel_args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    const std::shared_ptr<grpc::ChannelCredentials> credentials =
        options.credentials != nullptr ? options.credentials : grpc::InsecureChannelCredentials();
    for (size_t i = 0; i < options.peers.size(); ++i) {
      auto peer = std::make_unique<Peer>();
      peer->name = absl::StrCat("rank ", i + 1, " (", options.peers[i], ")");
      peer->stub = v1::Worker::NewStub(grpc::CreateCustomChannel(options.peers[i], credentials, args));
      AttachGroupToken(&peer->context, options.group_token);
      peer->stream = peer->stub->StepStream(&peer->context);
      peers_.push_back(std::move(peer));
    }
    for (auto& peer : peers_) peer->reader = std::thread([this, p = peer.get()] { ReadAnswers(p); });
  }

  ~Relay() {
    for (auto& peer : peers_) {
      {
        std::lock_guard<std::mutex> lock(peer->write_mu);
        if (!peer->dead) peer->stream->WritesDone();
      }
      // A peer stuck in its step must not hold us: its answers no longer
      // matter.
      peer->context.TryCancel();
    }
    for (auto& peer : peers_) peer->reader.join();
  }

  // Reader thread: the step goes to every peer as soon as it is read.
  void Forward(const v1::StepRequest& step) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back({step.step_id(), absl::Now()});
    }
    for (auto& peer : peers_) {
      std::lock_guard<std::mutex> lock(peer->write_mu);
      if (!peer->dead && !peer->stream->Write(step)) peer->dead = true;
    }
  }

  // Executor: rank 0's own answer to the oldest step it has not answered.
  void Own(v1::StepResponse answer) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Pending& p : pending_) {
        if (!p.has_own) {
          p.own = std::move(answer);
          p.has_own = true;
          break;
        }
      }
    }
    cv_.notify_all();
  }

  // No more steps: Respond returns once every pending one is answered.
  void Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
  }

  // Responder thread: writes the group's answers in step order. False when
  // the stream broke.
  bool Respond(StepWriter* stream) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (pending_.empty()) {
        if (finished_) return true;
        cv_.wait(lock);
        continue;
      }
      Pending& p = pending_.front();
      const bool own_failed = p.has_own && p.own.error_code() != 0;
      if (failure_.ok() && !own_failed && !(p.has_own && AllPeersIn())) {
        const absl::Time deadline = std::max(p.forwarded, last_done_) + timeout_;
        if (absl::Now() < deadline) {
          cv_.wait_until(lock, absl::ToChronoTime(deadline));
          continue;
        }
        if (AllPeersIn()) {
          // Only rank 0 itself is late: the router's longer deadline names it.
          cv_.wait(lock);
          continue;
        }
      }
      v1::StepResponse answer = Compose(p);
      pending_.pop_front();
      last_done_ = absl::Now();
      lock.unlock();
      const bool written = stream->Write(answer);
      lock.lock();
      if (!written) return false;
    }
  }

 private:
  struct Peer {
    std::string name;  // "rank 2 (host:port)"
    std::unique_ptr<v1::Worker::Stub> stub;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepResponse>> stream;
    std::thread reader;
    // Forward's writes against ReadAnswers' Finish.
    std::mutex write_mu;
    bool dead = false;
    // Guarded by Relay::mu_.
    std::deque<v1::StepResponse> answers;
    bool ended = false;
    std::string end_message;
  };
  struct Pending {
    uint64_t step_id = 0;
    absl::Time forwarded;
    bool has_own = false;
    v1::StepResponse own;
  };

  void ReadAnswers(Peer* peer) {
    v1::StepResponse answer;
    while (peer->stream->Read(&answer)) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        peer->answers.push_back(std::move(answer));
      }
      cv_.notify_all();
      answer.Clear();
    }
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(peer->write_mu);
      peer->dead = true;
      status = peer->stream->Finish();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      peer->ended = true;
      peer->end_message = status.ok() ? std::string("its step stream ended")
                                      : absl::StrCat(status.error_message(), " (grpc code ",
                                                     static_cast<int>(status.error_code()), ")");
    }
    cv_.notify_all();
  }

  bool AllPeersIn() const {
    for (const auto& peer : peers_) {
      if (peer->answers.empty() && !peer->ended) return false;
    }
    return true;
  }

  // The group's answer to `p` (under mu_): rank 0's, unless a rank failed.
  // After a failure every later step gets the same error: the router ends
  // the group at the first one.
  v1::StepResponse Compose(Pending& p) {
    if (!failure_.ok()) return ErrorAnswer(p.step_id, failure_);
    if (p.has_own && p.own.error_code() != 0) {
      failure_ = absl::Status(static_cast<absl::StatusCode>(p.own.error_code()), p.own.error_message());
      return std::move(p.own);
    }
    std::string failures;
    auto fail = [&](const Peer& peer, const std::string& why) {
      absl::StrAppend(&failures, failures.empty() ? "" : "; ", peer.name, " ", why);
    };
    for (auto& peer : peers_) {
      if (peer->answers.empty()) {
        fail(*peer, peer->ended ? absl::StrCat("failed in Step: ", peer->end_message)
                                : absl::StrCat("timed out in Step after ",
                                               absl::ToInt64Milliseconds(timeout_), " ms"));
        continue;
      }
      const v1::StepResponse a = std::move(peer->answers.front());
      peer->answers.pop_front();
      if (a.error_code() != 0) {
        fail(*peer, absl::StrCat("failed in Step: ", a.error_message()));
      } else if (a.step_id() != p.step_id) {
        fail(*peer, absl::StrCat("answered step ", a.step_id(), " when step ", p.step_id, " was due"));
      } else if (p.has_own && a.sampled_digest() != p.own.sampled_digest()) {
        fail(*peer, absl::StrCat("sampled different tokens than rank 0 in step ", p.step_id, " (digest ",
                                 a.sampled_digest(), " vs ", p.own.sampled_digest(),
                                 "); the ranks no longer compute the same sequences"));
      }
    }
    if (!p.has_own) {
      absl::StrAppend(&failures, "; rank 0 had not finished step ", p.step_id, " either");
    }
    if (failures.empty()) return std::move(p.own);
    failure_ = absl::UnavailableError(failures);
    return ErrorAnswer(p.step_id, failure_);
  }

  const absl::Duration timeout_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  absl::Time last_done_ = absl::InfinitePast();
  bool finished_ = false;
  absl::Status failure_;
};

}  // namespace

v1::StepResponse ErrorAnswer(uint64_t step_id, const absl::Status& status) {
  v1::StepResponse answer;
  answer.set_step_id(step_id);
  answer.set_error_code(static_cast<int>(status.code()));
  answer.set_error_message(std::string(status.message()));
  return answer;
}

grpc::Status ServeStepStream(grpc::ServerContext* context, StepWriter* stream,
                             const RelayOptions& relay_options, const StepFn& run_step) {
  StepQueue queue;
  std::unique_ptr<Relay> relay;
  if (!relay_options.peers.empty()) relay = std::make_unique<Relay>(relay_options);
  // The reader parses (and relays) step N+1 while N runs.
  std::thread reader([&] {
    auto step = std::make_unique<v1::StepRequest>();
    while (stream->Read(step.get())) {
      if (relay != nullptr) relay->Forward(*step);
      queue.Push(std::move(step));
      step = std::make_unique<v1::StepRequest>();
    }
    queue.Close();
  });
  std::thread responder;
  if (relay != nullptr) {
    responder = std::thread([&] {
      if (!relay->Respond(stream)) context->TryCancel();  // the client is gone
    });
  }
  while (std::unique_ptr<v1::StepRequest> step = queue.Pop()) {
    v1::StepResponse answer;
    // Steps left behind by a client that went away are not run.
    absl::Status s = context->IsCancelled() ? absl::CancelledError("the step stream was closed")
                                            : run_step(*step, &answer);
    if (!s.ok()) answer = ErrorAnswer(step->step_id(), s);
    if (relay != nullptr) {
      relay->Own(std::move(answer));
    } else if (!stream->Write(answer)) {
      context->TryCancel();  // the client is gone; end the reader's Read too
    }
  }
  reader.join();
  if (relay != nullptr) {
    relay->Finish();
    responder.join();
  }
  return grpc::Status::OK;
}

}  // namespace tpserve::worker
