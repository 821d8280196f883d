// WorkerGroup: the step stream. Rank 0's bidirectional StepStream is driven
// from the step loop's thread on a completion queue: at most one write and
// one read in flight (gRPC's rule), later writes queue behind the one in
// flight, and a read is always posted so that answers (and a stream that
// ends) are seen as soon as the loop waits. Rank 0 relays each step to the
// other ranks and answers for all of them (worker/service/
// step_stream_server.h), naming a rank that failed, went silent or sampled
// differently.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/security/group_token.h"
#include "router/worker_group.h"

namespace tpserve::router {
namespace {

enum Op : intptr_t { kStart = 1, kWrite = 2, kRead = 3, kFinish = 4 };

void* Tag(Op op) { return reinterpret_cast<void*>(op); }

// The completion queue returns every operation once cancelled; this only
// guards against a gRPC bug leaving a wait unbounded.
constexpr absl::Duration kCloseGuard = absl::Seconds(60);

}  // namespace

absl::Duration WorkerGroup::AnswerTimeout() const {
  // Rank 0 waits --worker-step-timeout-ms for the others and then names the
  // silent one; waiting longer here leaves it the time to say so.
  const absl::Duration step = absl::Milliseconds(config_.worker_step_timeout_ms);
  return world_size() > 1 ? step * 1.5 : step;
}

absl::Status WorkerGroup::OpenStream() {
  auto stream = std::make_unique<RankStream>();
  if (!Register(&stream->context)) {
    return absl::UnavailableError("the router is stopping");
  }
  AttachGroupToken(&stream->context, group_token_);
  stream->call = generic_stubs_[0]->PrepareCall(
      &stream->context, "/tpserve.v1.Worker/StepStream", &step_queue_);
  stream->call->StartCall(Tag(kStart));
  ++stream->pending_ops;
  stream_ = std::move(stream);
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(std::min(
                            config_.worker_init_timeout_ms, 10000));
  while (!stream_->started && !(stream_->failed && stream_->finished) &&
         Pump(deadline)) {
  }
  if (!stream_->started || stream_->failed) {
    const std::string failure = absl::StrCat(
        "worker ", RankName(0), " could not open its step stream: ",
        stream_->finished ? stream_->status.error_message() : "timed out");
    CloseStream();
    closed_reason_ = failure;
    return absl::UnavailableError(failure);
  }
  closed_reason_.clear();
  last_answer_ = absl::Now();
  return absl::OkStatus();
}

void WorkerGroup::CloseStream() {
  if (stream_ == nullptr) return;
  stream_->context.TryCancel();
  const auto guard = absl::ToChronoTime(absl::Now() + kCloseGuard);
  while (stream_->pending_ops > 0) {
    if (!Pump(guard)) {
      // A context cannot be destroyed with operations in flight; nothing
      // sane is left to do.
      spdlog::critical("worker step stream operations never completed");
      std::abort();
    }
  }
  Unregister(&stream_->context);
  stream_.reset();
  in_flight_.clear();
  if (closed_reason_.empty()) closed_reason_ = "the step stream was closed";
}

void WorkerGroup::StartWrite() {
  stream_->writing = true;
  ++stream_->pending_ops;
  stream_->call->Write(stream_->writes.front(), Tag(kWrite));
}

void WorkerGroup::StartRead() {
  stream_->reading = true;
  ++stream_->pending_ops;
  stream_->call->Read(&stream_->incoming, Tag(kRead));
}

void WorkerGroup::MarkFailed() {
  RankStream& s = *stream_;
  s.failed = true;
  // Finish once nothing can still be read (gRPC's rule for Finish).
  if (s.finishing || s.reading) return;
  s.finishing = true;
  ++s.pending_ops;
  s.call->Finish(&s.status, Tag(kFinish));
}

bool WorkerGroup::Pump(std::chrono::system_clock::time_point deadline) {
  void* tag = nullptr;
  bool ok = false;
  if (step_queue_.AsyncNext(&tag, &ok, deadline) !=
      grpc::CompletionQueue::GOT_EVENT) {
    return false;
  }
  RankStream& s = *stream_;
  --s.pending_ops;
  switch (static_cast<Op>(reinterpret_cast<intptr_t>(tag))) {
    case kStart:
      if (!ok) {
        MarkFailed();
      } else {
        s.started = true;
        StartRead();
      }
      break;
    case kWrite:
      s.writing = false;
      s.writes.pop_front();
      if (!ok) {
        s.writes.clear();
        MarkFailed();
      } else if (!s.writes.empty() && !s.failed) {
        StartWrite();
      }
      break;
    case kRead:
      s.reading = false;
      if (ok) {
        s.answers.push_back(std::move(s.incoming));
        if (!s.failed) StartRead();
      }
      if (!ok || s.failed) MarkFailed();
      break;
    case kFinish:
      s.finished = true;
      break;
  }
  return true;
}

absl::Status WorkerGroup::Send(const v1::StepRequest& request) {
  if (stream_ == nullptr || !closed_reason_.empty()) {
    return absl::UnavailableError(closed_reason_.empty()
                                      ? "the step stream is closed"
                                      : closed_reason_);
  }
  if (!stream_->failed) {  // else Receive reports it
    grpc::Slice slice(request.SerializeAsString());
    stream_->writes.emplace_back(&slice, 1);
    if (!stream_->writing) StartWrite();
  }
  in_flight_.push_back({request.step_id(), absl::Now()});
  return absl::OkStatus();
}

std::string WorkerGroup::AnswerFailure(uint64_t step_id,
                                       v1::StepResponse* answer) {
  RankStream& s = *stream_;
  if (s.answers.empty()) {
    if (s.finished) {
      return absl::StrCat("failed in Step: ", s.status.error_message(),
                          " (grpc code ", static_cast<int>(s.status.error_code()),
                          ")");
    }
    return absl::StrCat("timed out in Step after ",
                        absl::ToInt64Milliseconds(AnswerTimeout()), " ms");
  }
  grpc::ProtoBufferReader reader(&s.answers.front());
  const bool parsed = answer->ParseFromZeroCopyStream(&reader);
  s.answers.pop_front();
  if (!parsed) return "sent a Step answer that does not parse";
  if (answer->error_code() != 0) {
    return absl::StrCat("failed in Step: ", answer->error_message(),
                        " (grpc code ", answer->error_code(), ")");
  }
  if (answer->step_id() != step_id) {
    return absl::StrCat("answered step ", answer->step_id(), " when step ",
                        step_id, " was due");
  }
  return "";
}

absl::Status WorkerGroup::Receive(v1::StepResponse* answer) {
  if (in_flight_.empty() || stream_ == nullptr) {
    return absl::FailedPreconditionError("Receive with no step in flight");
  }
  const uint64_t step_id = in_flight_.front().step_id;
  const auto deadline = absl::ToChronoTime(
      std::max(in_flight_.front().sent, last_answer_) + AnswerTimeout());
  while (stream_->answers.empty() && !(stream_->failed && stream_->finished) &&
         Pump(deadline)) {
  }
  const std::string why = AnswerFailure(step_id, answer);
  if (!why.empty()) {
    const std::string failure = absl::StrCat("worker ", RankName(0), " ", why);
    closed_reason_ = failure;
    CloseStream();
    return absl::UnavailableError(failure);
  }
  in_flight_.pop_front();
  last_answer_ = absl::Now();
  return absl::OkStatus();
}

absl::StatusOr<v1::StepResponse> WorkerGroup::Step(
    const v1::StepRequest& request) {
  if (absl::Status s = Send(request); !s.ok()) return s;
  v1::StepResponse answer;
  if (absl::Status s = Receive(&answer); !s.ok()) return s;
  return answer;
}

}  // namespace tpserve::router
