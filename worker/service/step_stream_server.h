// Serves one Worker.StepStream around a step function: a reader thread
// parses the steps into a queue (step N+1, written early by the router, is
// parsed while N runs) and the calling thread runs them one at a time, in
// order, answering each in-band. On rank 0 of a group it is also the relay:
// every step is forwarded to the other ranks' step streams as soon as it is
// read, and a step's answer goes back only when every rank answered it, so
// the router writes and reads one message per step whatever the TP size.
// The step function never waits for the other ranks: a responder thread
// matches the answers, so rank 0 starts step N+1 at once.
//
// Used by the worker service and by the router tests' fake worker, which
// must behave the same.
#ifndef TPSERVE_WORKER_SERVICE_STEP_STREAM_SERVER_H_
#define TPSERVE_WORKER_SERVICE_STEP_STREAM_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/worker.pb.h"

namespace tpserve::worker {

// Where rank 0 forwards steps (InitCacheRequest.relay_to).
struct RelayOptions {
  // The other ranks' addresses, rank 1 first; empty: no relay.
  std::vector<std::string> peers;
  // How long a peer may take to answer a step, from when it could start it.
  absl::Duration peer_timeout = absl::Seconds(30);
  // The peers' channels: the deployment's internal credentials (mutual TLS
  // when configured) and their arguments; null credentials: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments channel_args;
  // The group's token, attached to the peers' step streams.
  std::string group_token;
};

// Runs one step into `answer`; a non-OK status is answered in-band.
using StepFn = std::function<absl::Status(const v1::StepRequest& step, v1::StepResponse* answer)>;

// Serves `stream` until its client closes it or it is cancelled, then closes
// the relayed streams. Returns the status to end the call with.
grpc::Status ServeStepStream(grpc::ServerContext* context,
                             grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>* stream,
                             const RelayOptions& relay, const StepFn& run_step);

// The in-band answer for a step that failed with `status`.
v1::StepResponse ErrorAnswer(uint64_t step_id, const absl::Status& status);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_STEP_STREAM_SERVER_H_
