// `tpserve probe --router=ADDR`: exit 0 when the router at ADDR reports READY
// (workers connected, weights loaded, KV cache allocated), 1 otherwise. For
// Kubernetes exec probes when internal mutual TLS is on: the kubelet's own
// gRPC probe cannot present a client certificate, this one uses the
// --internal-ssl-* settings as the gateway does.
#include <chrono>
#include <cstdio>

#include <grpcpp/grpcpp.h>

#include "cli/commands.h"
#include "cli/serve_plan.h"
#include "common/security/grpc_credentials.h"

namespace tpserve::cli {

int RunProbe(const CommandLine& cl) {
  const ServerConfig& c = cl.config;
  if (c.routers.size() != 1) {
    std::fprintf(stderr, "error: tpserve probe needs exactly one --router address, got %zu\n",
                 c.routers.size());
    return 2;
  }
  auto tls = LoadInternalTls(c);
  if (!tls.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(tls.status().message()).c_str());
    return 2;
  }
  auto channel = grpc::CreateCustomChannel(c.routers[0], InternalChannelCredentials(tls->get()),
                                           InternalChannelArguments(tls->get()));
  // Below the manifests' probe timeout, so that a slow answer is reported
  // as such rather than killed by the kubelet.
  RouterReadiness r = ProbeRouter(channel, std::chrono::seconds(3));
  std::printf("router %s: %s%s%s\n", c.routers[0].c_str(), r.ready ? "ready" : "not ready",
              r.message.empty() ? "" : ": ", r.message.c_str());
  return r.ready ? 0 : 1;
}

}  // namespace tpserve::cli
