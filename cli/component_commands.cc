// `tpserve worker|router|gateway|verify`: one component in the foreground.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/run_server.h"
#include "common/verify/verify.h"
#include "gateway/gateway_server.h"
#include "router/router_server.h"
#include "worker/service/worker_server.h"

namespace tpserve::cli {

int RunWorker(const CommandLine& cl) {
  return RunServerUntilSignal<worker::WorkerServer>("worker", cl.config);
}

int RunGateway(const CommandLine& cl) {
  return RunServerUntilSignal<gateway::GatewayServer>("gateway", cl.config);
}

int RunRouter(const CommandLine& cl) {
  return RunServerUntilSignal<router::RouterServer>("router", cl.config);
}

int RunVerify(const CommandLine& cl) {
  if (cl.positional.size() != 1) {
    std::fprintf(stderr, "usage: tpserve verify MODEL_DIR\n");
    return 2;
  }
  return tpserve::verify::RunVerify(cl.positional[0], std::cout);
}

}  // namespace tpserve::cli
