#include "worker/service/step_stream_client.h"

#include <grpcpp/grpcpp.h>

#include "common/grpc_status.h"
#include "common/security/group_token.h"

namespace tpserve::worker {

absl::StatusOr<v1::StepResponse> StepOnce(v1::Worker::Stub& stub,
                                          const v1::StepRequest& step,
                                          absl::Duration timeout,
                                          std::string_view group_token) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  AttachGroupToken(&context, group_token);
  auto stream = stub.StepStream(&context);
  v1::StepResponse response;
  const bool answered = stream->Write(step) && stream->Read(&response);
  stream->WritesDone();
  const grpc::Status finished = stream->Finish();
  if (!answered) {
    if (!finished.ok()) return FromGrpcStatus(finished);
    return absl::UnavailableError("the step stream ended without an answer");
  }
  if (response.error_code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(response.error_code()),
                        response.error_message());
  }
  return response;
}

}  // namespace tpserve::worker
