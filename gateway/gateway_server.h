// The gateway process: an OpenAI-compatible HTTP server (cpp-httplib behind a
// pimpl) in front of one or more routers. `tpserve gateway` calls Start().
#ifndef TPSERVE_GATEWAY_GATEWAY_SERVER_H_
#define TPSERVE_GATEWAY_GATEWAY_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace tpserve::gateway {

// HTTP front end: /v1/chat/completions, /v1/completions, /v1/models,
// /health, /metrics, /version, /tokenize, /detokenize.
class GatewayServer {
 public:
  // Loads the tokenizer and chat template (config.tokenizer, else
  // config.model), connects to config.routers, binds config.host:config.port
  // (port 0 = pick a free port), starts serving and returns at once.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> Start(const ServerConfig& config);
  ~GatewayServer();
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  // The bound HTTP port.
  int port() const;
  // Graceful: refuses new generations (503), waits for in-flight ones to
  // finish (bounded), then stops listening. Idempotent.
  void Shutdown();
  // Blocks until the server has shut down.
  void Wait();

  class Impl;

 private:
  explicit GatewayServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_GATEWAY_SERVER_H_
