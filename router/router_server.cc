#include "router/router_server.h"

#include <httplib.h>

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "common/security/grpc_credentials.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace tpserve::router {

absl::StatusOr<std::unique_ptr<RouterServer>> RouterServer::Start(
    const ServerConfig& config) {
  return Start(config, EngineOptions());
}

absl::StatusOr<std::unique_ptr<RouterServer>> RouterServer::Start(
    const ServerConfig& config, EngineOptions options) {
  std::unique_ptr<RouterServer> server(new RouterServer());
  server->drain_timeout_ = absl::Milliseconds(config.drain_timeout_ms);
  TP_ASSIGN_OR_RETURN(server->engine_, Engine::Create(config, options));
  server->service_ = std::make_unique<RouterService>(server->engine_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // Without this a second router on the same port would bind silently
  // (SO_REUSEPORT) and steal half the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  TP_ASSIGN_OR_RETURN(std::unique_ptr<InternalTls> tls, LoadInternalTls(config));
  const std::string address = InternalListenAddress(config, config.router_port);
  builder.AddListeningPort(address, InternalServerCredentials(tls.get()),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "could not listen on ", address, " (port in use, or --internal-host not "
        "an address of this host?)"));
  }

  if (config.metrics_port > 0) {
    server->http_ = std::make_unique<httplib::Server>();
    Engine* engine = server->engine_.get();
    server->http_->Get("/metrics", [engine](const httplib::Request&,
                                            httplib::Response& res) {
      res.set_content(engine->PrometheusText(),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    if (!server->http_->bind_to_port(config.internal_host, config.metrics_port)) {
      return absl::UnavailableError(absl::StrCat(
          "could not listen for /metrics on ",
          InternalListenAddress(config, config.metrics_port)));
    }
    server->metrics_port_ = config.metrics_port;
    httplib::Server* http = server->http_.get();
    server->http_thread_ = std::thread([http] { http->listen_after_bind(); });
  }
  server->engine_->Start();
  server->health_thread_ = std::thread([s = server.get()] { s->SyncGrpcHealth(); });
  spdlog::info("router serving on port {} for {} worker(s)", server->port_,
               config.workers.size());
  return server;
}

RouterServer::~RouterServer() {
  Shutdown();
  Wait();
}

void RouterServer::SyncGrpcHealth() {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  std::unique_lock<std::mutex> lock(health_mu_);
  while (!health_stop_) {
    const bool ready = engine_->Health().state() == v1::SERVING_STATE_READY;
    if (health != nullptr) {
      health->SetServingStatus("tpserve.v1.Router", ready);
      health->SetServingStatus(ready);
    }
    health_cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return health_stop_; });
  }
  // Draining: probes must see NOT_SERVING from here on.
  if (health != nullptr) {
    health->SetServingStatus("tpserve.v1.Router", false);
    health->SetServingStatus(false);
  }
}

void RouterServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (health_thread_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(health_mu_);
        health_stop_ = true;
      }
      health_cv_.notify_all();
      health_thread_.join();
    }
    // Start may have failed half way: stop only what exists.
    if (engine_ != nullptr) {
      spdlog::info("router draining");
      engine_->Drain(drain_timeout_);
      // Handlers end once the engine stops (remaining requests get
      // UNAVAILABLE), so the gRPC shutdown cannot wait on them forever.
      engine_->Stop();
    }
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
    }
    if (http_ != nullptr) {
      http_->stop();
      if (http_thread_.joinable()) http_thread_.join();
    }
    std::lock_guard<std::mutex> lock(done_mu_);
    done_ = true;
    done_cv_.notify_all();
  });
}

void RouterServer::Wait() {
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [&] { return done_; });
}

}  // namespace tpserve::router
