// The gRPC Worker service of one tensor-parallel rank: the handshake state
// machine (Info -> CreateUniqueId -> InitDistributed -> LoadModel ->
// ProfileMemory -> InitCache -> StepStream), strict validation of every call,
// and health that reflects the communicator's view of the peers. A step
// stream has a reader thread that parses the next step while the current one
// runs; steps run one at a time, in order.
#ifndef TPSERVE_WORKER_SERVICE_WORKER_SERVICE_H_
#define TPSERVE_WORKER_SERVICE_WORKER_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "proto/worker.grpc.pb.h"
#include "worker/comm/comm_factory.h"
#include "worker/backend/backend.h"
#include "structured/grammar_cache.h"
#include "worker/service/sequence_table.h"
#include "worker/service/step_stream_server.h"

namespace tpserve::worker {

// Makes the backend for a rank (the service calls it once per group join).
using BackendMaker =
    std::function<absl::StatusOr<std::unique_ptr<Backend>>(int rank)>;

// Serves the Worker contract for one rank (see the file comment).
class WorkerService final : public v1::Worker::Service {
 public:
  // `device_kind` is "cpu" or "cuda" (resolved); the factories decide what
  // backend and communicator this rank uses.
  WorkerService(const ServerConfig& config, std::string device_kind,
                BackendMaker make_backend, std::unique_ptr<CommFactory> comm_factory);
  ~WorkerService() override;

  grpc::Status Info(grpc::ServerContext*, const v1::InfoRequest*,
                    v1::InfoResponse*) override;
  grpc::Status CreateUniqueId(grpc::ServerContext*, const v1::CreateUniqueIdRequest*,
                              v1::CreateUniqueIdResponse*) override;
  grpc::Status InitDistributed(grpc::ServerContext*, const v1::InitDistributedRequest*,
                               v1::InitDistributedResponse*) override;
  grpc::Status LoadModel(grpc::ServerContext*, const v1::LoadModelRequest*,
                         v1::LoadModelResponse*) override;
  grpc::Status ProfileMemory(grpc::ServerContext*, const v1::ProfileMemoryRequest*,
                             v1::ProfileMemoryResponse*) override;
  grpc::Status InitCache(grpc::ServerContext*, const v1::InitCacheRequest*,
                         v1::InitCacheResponse*) override;
  grpc::Status StepStream(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::StepResponse, v1::StepRequest>*) override;
  grpc::Status Health(grpc::ServerContext*, const v1::WorkerHealthRequest*,
                      v1::WorkerHealthResponse*) override;

  // How rank 0 connects to the ranks it relays steps to (the internal
  // credentials the server was started with). Call before serving.
  void SetPeerChannel(std::shared_ptr<grpc::ChannelCredentials> credentials,
                      grpc::ChannelArguments args);

  // Refuses new work and waits up to `grace` for the step in flight; past
  // that, aborts the communicator so a step stuck on a peer returns.
  void Drain(absl::Duration grace);
  // Drops the communicator (peers see this rank leave) and the backend.
  void Release();

 private:
  enum class Phase { kFresh, kJoined, kLoaded, kProfiled, kReady };

  absl::Status DoInitDistributed(const v1::InitDistributedRequest& req);
  absl::StatusOr<v1::LoadModelResponse> DoLoadModel(const v1::LoadModelRequest& req);
  // Runs one step of the stream opened at `epoch` (refused once a newer
  // stream or a new group replaced it).
  absl::Status DoStep(const v1::StepRequest& req, uint64_t epoch, v1::StepResponse* resp);
  // Every rank shares its load result and fingerprint; any failure or
  // mismatch fails all of them with the same message.
  absl::Status CheckPeersLoaded(const absl::Status& local, const std::string& fingerprint);
  // Requires at least `phase`; the message names the missing call.
  absl::Status Require(Phase phase, const char* call) const;
  // Resets the rank to kFresh (a new group join).
  void ResetLocked();
  // Takes mu_, waiting at most `grace` for the step in flight; past that
  // aborts the communicator (with `reason`) so the step returns.
  std::unique_lock<std::timed_mutex> LockAbortingStuckStep(absl::Duration grace,
                                                          const char* reason);

  const ServerConfig config_;
  const std::string device_kind_;
  BackendMaker make_backend_;
  std::unique_ptr<CommFactory> comm_factory_;

  // mu_ guards everything below; Step holds it for the whole forward pass,
  // so handshake calls and Drain wait for the step in flight.
  mutable std::timed_mutex mu_;
  Phase phase_ = Phase::kFresh;
  int rank_ = -1;
  int world_size_ = 0;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Backend> backend_;
  v1::ModelInfo model_;
  StepLimits limits_;
  int64_t bytes_per_block_ = 0;  // from ProfileMemory
  SequenceTable sequences_;
  // Structured output's compiled grammars (null without a tokenizer.json).
  std::unique_ptr<structured::GrammarCache> grammars_;
  // Rank 0: the other ranks it forwards steps to (from InitCache), and the
  // channel settings for them (SetPeerChannel).
  RelayOptions relay_;
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials_;
  grpc::ChannelArguments peer_channel_args_;
  // The group's token (InitDistributed); empty before a group is formed.
  // LoadModel, ProfileMemory, InitCache and StepStream require it.
  std::string group_token_;
  // Bumped by every new step stream and every group reset: only the newest
  // stream of the current group may step.
  uint64_t stream_epoch_ = 0;

  // Health and Drain must answer while a step holds mu_: they use only the
  // atomics and health_mu_ (which guards the comm_ pointer's lifetime, not
  // its collectives, and failure_).
  std::atomic<bool> draining_{false};
  std::atomic<bool> ready_{false};
  mutable std::mutex health_mu_;
  std::string failure_;  // why the rank cannot run steps any more
  // Open step streams (guarded by health_mu_): Drain ends them, or the gRPC
  // server would wait out its shutdown deadline on their pending reads.
  std::vector<grpc::ServerContext*> streams_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_WORKER_SERVICE_H_
