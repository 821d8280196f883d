// Steps one worker by hand over its StepStream, one stream per step: for
// tests and tools (the router keeps one stream per rank open and writes the
// next step early; see router/worker_group_steps.cc).
#ifndef TPSERVE_WORKER_SERVICE_STEP_STREAM_CLIENT_H_
#define TPSERVE_WORKER_SERVICE_STEP_STREAM_CLIENT_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/worker.grpc.pb.h"

namespace tpserve::worker {

// Opens a step stream, sends `step` and returns its answer within
// `timeout`. An in-band error answer becomes its status; a stream that ends
// without an answer, the stream's status (FAILED_PRECONDITION "Step before
// InitCache" and the like). `group_token` is the one the group was formed
// with (InitDistributedRequest.group_token).
absl::StatusOr<v1::StepResponse> StepOnce(v1::Worker::Stub& stub,
                                          const v1::StepRequest& step,
                                          absl::Duration timeout,
                                          std::string_view group_token);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_STEP_STREAM_CLIENT_H_
