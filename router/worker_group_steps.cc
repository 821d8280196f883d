// WorkerGroup: the step streams. Every rank has one bidirectional StepStream
// driven from the step loop's thread on one completion queue: at most one
// write and one read in flight per stream (gRPC's rule), later writes queue
// behind the one in flight, and a read is always posted so that answers (and
// a stream that ends) are seen as soon as the loop waits.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/worker_group.h"

namespace tpserve::router {
namespace {

enum Op : intptr_t { kStart = 0, kWrite = 1, kRead = 2, kFinish = 3 };

void* Tag(int rank, Op op) {
  return reinterpret_cast<void*>((static_cast<intptr_t>(rank) << 2) | op);
}

// The completion queue returns every operation once cancelled; this only
// guards against a gRPC bug leaving a wait unbounded.
constexpr absl::Duration kCloseGuard = absl::Seconds(60);

}  // namespace

absl::Status WorkerGroup::OpenStreams() {
  const int n = world_size();
  for (int r = 0; r < n; ++r) {
    auto stream = std::make_unique<RankStream>();
    if (!Register(&stream->context)) {
      CloseStreams();
      return absl::UnavailableError("the router is stopping");
    }
    stream->call = generic_stubs_[r]->PrepareCall(
        &stream->context, "/tpserve.v1.Worker/StepStream", &step_queue_);
    stream->call->StartCall(Tag(r, kStart));
    ++stream->pending_ops;
    streams_.push_back(std::move(stream));
  }
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds(std::min(
                            config_.worker_init_timeout_ms, 10000));
  auto settled = [&] {
    for (const auto& s : streams_) {
      if (!s->started && !(s->failed && s->finished)) return false;
    }
    return true;
  };
  while (!settled() && Pump(deadline)) {
  }
  std::string failures;
  for (int r = 0; r < n; ++r) {
    const RankStream& s = *streams_[r];
    if (s.started && !s.failed) continue;
    absl::StrAppend(&failures, failures.empty() ? "worker " : "; worker ",
                    RankName(r), " could not open its step stream: ",
                    s.finished ? s.status.error_message() : "timed out");
  }
  if (!failures.empty()) {
    CloseStreams();
    closed_reason_ = failures;
    return absl::UnavailableError(failures);
  }
  closed_reason_.clear();
  last_answer_ = absl::Now();
  return absl::OkStatus();
}

void WorkerGroup::CloseStreams() {
  for (auto& s : streams_) s->context.TryCancel();
  const auto guard = absl::ToChronoTime(absl::Now() + kCloseGuard);
  for (size_t r = 0; r < streams_.size(); ++r) {
    while (streams_[r]->pending_ops > 0) {
      if (!Pump(guard)) {
        // Contexts cannot be destroyed with operations in flight; nothing
        // sane is left to do.
        spdlog::critical("worker step stream operations never completed");
        std::abort();
      }
    }
  }
  for (auto& s : streams_) Unregister(&s->context);
  streams_.clear();
  in_flight_.clear();
  if (closed_reason_.empty()) closed_reason_ = "the step streams were closed";
}

void WorkerGroup::StartWrite(int rank) {
  RankStream& s = *streams_[rank];
  s.writing = true;
  ++s.pending_ops;
  s.call->Write(s.writes.front(), Tag(rank, kWrite));
}

void WorkerGroup::StartRead(int rank) {
  RankStream& s = *streams_[rank];
  s.reading = true;
  ++s.pending_ops;
  s.call->Read(&s.incoming, Tag(rank, kRead));
}

void WorkerGroup::MarkFailed(int rank) {
  RankStream& s = *streams_[rank];
  s.failed = true;
  // Finish once nothing can still be read (gRPC's rule for Finish).
  if (s.finishing || s.reading) return;
  s.finishing = true;
  ++s.pending_ops;
  s.call->Finish(&s.status, Tag(rank, kFinish));
}

bool WorkerGroup::Pump(std::chrono::system_clock::time_point deadline) {
  void* tag = nullptr;
  bool ok = false;
  if (step_queue_.AsyncNext(&tag, &ok, deadline) !=
      grpc::CompletionQueue::GOT_EVENT) {
    return false;
  }
  const intptr_t bits = reinterpret_cast<intptr_t>(tag);
  const int rank = static_cast<int>(bits >> 2);
  RankStream& s = *streams_[rank];
  --s.pending_ops;
  switch (static_cast<Op>(bits & 3)) {
    case kStart:
      if (!ok) {
        MarkFailed(rank);
      } else {
        s.started = true;
        StartRead(rank);
      }
      break;
    case kWrite:
      s.writing = false;
      s.writes.pop_front();
      if (!ok) {
        s.writes.clear();
        MarkFailed(rank);
      } else if (!s.writes.empty() && !s.failed) {
        StartWrite(rank);
      }
      break;
    case kRead:
      s.reading = false;
      if (ok) {
        s.answers.push_back(std::move(s.incoming));
        if (!s.failed) StartRead(rank);
      }
      if (!ok || s.failed) MarkFailed(rank);
      break;
    case kFinish:
      s.finished = true;
      break;
  }
  return true;
}

absl::Status WorkerGroup::Send(const v1::StepRequest& request) {
  if (streams_.empty() || !closed_reason_.empty()) {
    return absl::UnavailableError(closed_reason_.empty()
                                      ? "the step streams are closed"
                                      : closed_reason_);
  }
  // Serialized once; every rank's buffer shares the same slice.
  grpc::Slice slice(request.SerializeAsString());
  const grpc::ByteBuffer payload(&slice, 1);
  for (int r = 0; r < world_size(); ++r) {
    RankStream& s = *streams_[r];
    if (s.failed) continue;  // Receive reports it.
    s.writes.push_back(payload);
    if (!s.writing) StartWrite(r);
  }
  in_flight_.push_back({request.step_id(), absl::Now()});
  return absl::OkStatus();
}

std::string WorkerGroup::RankFailure(int rank, uint64_t step_id,
                                     v1::StepResponse* out) {
  RankStream& s = *streams_[rank];
  if (s.answers.empty()) {
    if (s.finished) {
      return absl::StrCat("failed in Step: ", s.status.error_message(),
                          " (grpc code ", static_cast<int>(s.status.error_code()),
                          ")");
    }
    return absl::StrCat("timed out in Step after ",
                        config_.worker_step_timeout_ms, " ms");
  }
  grpc::ProtoBufferReader reader(&s.answers.front());
  if (!out->ParseFromZeroCopyStream(&reader)) {
    return "sent a Step answer that does not parse";
  }
  s.answers.pop_front();
  if (out->error_code() != 0) {
    return absl::StrCat("failed in Step: ", out->error_message(), " (grpc code ",
                        out->error_code(), ")");
  }
  if (out->step_id() != step_id) {
    return absl::StrCat("answered step ", out->step_id(), " when step ",
                        step_id, " was due");
  }
  return "";
}

absl::StatusOr<v1::StepResponse> WorkerGroup::Receive() {
  if (in_flight_.empty()) {
    return absl::FailedPreconditionError("Receive with no step in flight");
  }
  const int n = world_size();
  const absl::Duration timeout =
      absl::Milliseconds(config_.worker_step_timeout_ms);
  const uint64_t step_id = in_flight_.front().step_id;
  const auto deadline = absl::ToChronoTime(
      std::max(in_flight_.front().sent, last_answer_) + timeout);
  // Wait until every rank answered or is over (or the deadline): a rank that
  // fails often makes its peers fail too, and every failing rank is named.
  auto settled = [&] {
    for (const auto& s : streams_) {
      if (s->answers.empty() && !(s->failed && s->finished)) return false;
    }
    return true;
  };
  while (!settled() && Pump(deadline)) {
  }
  std::vector<v1::StepResponse> answers(n);
  std::string failures;
  for (int r = 0; r < n; ++r) {
    const std::string why = RankFailure(r, step_id, &answers[r]);
    if (!why.empty()) {
      absl::StrAppend(&failures, failures.empty() ? "worker " : "; worker ",
                      RankName(r), " ", why);
    }
  }
  if (failures.empty()) {
    for (int r = 1; r < n; ++r) {
      if (answers[r].sampled_digest() != answers[0].sampled_digest()) {
        failures = absl::StrCat(
            "worker ", RankName(r), " sampled different tokens than ",
            RankName(0), " in step ", step_id, " (digest ",
            answers[r].sampled_digest(), " vs ", answers[0].sampled_digest(),
            "); the ranks no longer compute the same sequences");
        break;
      }
    }
  }
  if (!failures.empty()) {
    closed_reason_ = failures;
    CloseStreams();
    return absl::UnavailableError(failures);
  }
  in_flight_.pop_front();
  last_answer_ = absl::Now();
  return std::move(answers[0]);
}

absl::StatusOr<v1::StepResponse> WorkerGroup::Step(
    const v1::StepRequest& request) {
  if (absl::Status s = Send(request); !s.ok()) return s;
  return Receive();
}

}  // namespace tpserve::router
