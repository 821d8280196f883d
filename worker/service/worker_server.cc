#include "worker/service/worker_server.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/security/grpc_credentials.h"
#include "common/logging.h"
#include "worker/service/backend_factory.h"

namespace tpserve::worker {
namespace {

// How long Shutdown lets the step in flight finish before aborting the
// communicator under it.
constexpr absl::Duration kDrainGrace = absl::Seconds(30);
// Steps carry whole prompts of new sequences: allow large messages.
constexpr int kMaxMessageBytes = 256 << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(
    const ServerConfig& config) {
  absl::StatusOr<std::string> kind = ResolveDeviceKind(config.device);
  if (!kind.ok()) return kind.status();
  const std::string resolved = *kind;
  return StartWith(config, resolved, [resolved](int rank) {
    return CreateBackend(resolved, rank);
  });
}

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::StartWith(
    const ServerConfig& config, const std::string& device_kind,
    BackendMaker make_backend) {
  if (config.worker_port < 0 || config.worker_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--worker-port must be in [0, 65535], got ", config.worker_port));
  }
  auto server = std::unique_ptr<WorkerServer>(new WorkerServer());
  // Collectives wait as long as the slowest legitimate step or load; a dead
  // peer is still detected at once (its socket closes).
  const absl::Duration op_timeout = absl::Milliseconds(
      std::max(config.worker_step_timeout_ms, config.worker_init_timeout_ms));
  server->service_ = std::make_unique<WorkerService>(
      config, device_kind, std::move(make_backend),
      CreateCommFactory(device_kind, op_timeout));
  grpc::ServerBuilder builder;
  // As for the router: without this a second worker on the same port would
  // bind silently (SO_REUSEPORT) and take part of the router's connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  TP_ASSIGN_OR_RETURN(std::unique_ptr<InternalTls> tls, LoadInternalTls(config));
  // Rank 0 relays steps to the other workers over the same internal links.
  server->service_->SetPeerChannel(InternalChannelCredentials(tls.get()),
                                   InternalChannelArguments(tls.get()));
  const std::string address = InternalListenAddress(config, config.worker_port);
  builder.AddListeningPort(address, InternalServerCredentials(tls.get()),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "worker: cannot listen on ", address,
        " (port in use, or --internal-host not an address of this host?)"));
  }
  spdlog::info("worker ({}) serving on port {}", device_kind, server->port_);
  return server;
}

WorkerServer::~WorkerServer() {
  Shutdown();
  Wait();
}

void WorkerServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    spdlog::info("worker: draining the step in flight");
    service_->Drain(kDrainGrace);
    // In-flight RPCs other than steps (Health, Info) finish at once; a
    // handshake call still blocked past the deadline is cancelled.
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    service_->Release();
    spdlog::info("worker: stopped");
  });
}

void WorkerServer::Wait() { server_->Wait(); }

}  // namespace tpserve::worker
