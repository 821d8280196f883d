// The worker process's server: the gRPC Worker service on 0.0.0.0:<port>,
// started by `tpserve worker` (cli/) from a ServerConfig.
#ifndef TPSERVE_WORKER_SERVICE_WORKER_SERVER_H_
#define TPSERVE_WORKER_SERVICE_WORKER_SERVER_H_

#include <atomic>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "worker/service/worker_service.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace tpserve::worker {

// One tensor-parallel rank's gRPC server.
class WorkerServer {
 public:
  // Binds config.worker_port (0 = pick a free port), starts serving, returns
  // at once. The backend kind comes from config.device.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(const ServerConfig& config);
  // Like Start, with an explicit backend maker (tests, other backends).
  static absl::StatusOr<std::unique_ptr<WorkerServer>> StartWith(
      const ServerConfig& config, const std::string& device_kind,
      BackendMaker make_backend);
  ~WorkerServer();

  // The bound port.
  int port() const { return port_; }
  // Graceful: refuses new steps, finishes the one in flight (aborting the
  // communicator if it is stuck on a peer for longer than a grace period),
  // stops serving and leaves the group. Idempotent.
  void Shutdown();
  // Blocks until shut down.
  void Wait();

 private:
  WorkerServer() = default;

  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::once_flag shutdown_once_;
};

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_WORKER_SERVER_H_
