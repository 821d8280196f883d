// The router process's server: the Router gRPC service on 0.0.0.0:router_port
// and, when metrics_port is non-zero, Prometheus /metrics over HTTP. Called
// by `tpserve router` (cli/).
#ifndef TPSERVE_ROUTER_ROUTER_SERVER_H_
#define TPSERVE_ROUTER_ROUTER_SERVER_H_

#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "router/engine.h"
#include "router/router_service.h"

namespace httplib {
class Server;
}

namespace tpserve::router {

// One router: engine (scheduler, worker group, step loop) behind gRPC.
class RouterServer {
 public:
  // Binds (router_port 0 = pick a free port), starts serving and the worker
  // handshake, returns at once. Health reports STARTING until the handshake
  // succeeds.
  static absl::StatusOr<std::unique_ptr<RouterServer>> Start(
      const ServerConfig& config);
  // Same, with engine tunables (tests shorten the handshake backoff).
  static absl::StatusOr<std::unique_ptr<RouterServer>> Start(
      const ServerConfig& config, EngineOptions options);
  ~RouterServer();

  // The bound gRPC port.
  int port() const { return port_; }
  // The bound /metrics port, 0 when disabled.
  int metrics_port() const { return metrics_port_; }
  // Graceful: refuses new requests, lets in-flight ones finish (up to
  // --drain-timeout-ms), then stops. Idempotent.
  void Shutdown();
  // Blocks until shut down.
  void Wait();

 private:
  RouterServer() = default;

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<RouterService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  // Mirrors the engine's state into gRPC's standard health service
  // (grpc.health.v1, service "tpserve.v1.Router" and ""), which Kubernetes
  // gRPC probes query.
  void SyncGrpcHealth();
  std::thread health_thread_;
  std::mutex health_mu_;
  std::condition_variable health_cv_;
  bool health_stop_ = false;
  int port_ = 0;
  int metrics_port_ = 0;
  absl::Duration drain_timeout_ = absl::Seconds(30);
  std::once_flag shutdown_once_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
};

}  // namespace tpserve::router

#endif  // TPSERVE_ROUTER_ROUTER_SERVER_H_
