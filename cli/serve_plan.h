// Everything `tpserve serve` decides before starting a process: the model,
// the device, ports, and the command line of every child. Kept apart from
// process handling so it can be tested.
#ifndef TPSERVE_CLI_SERVE_PLAN_H_
#define TPSERVE_CLI_SERVE_PLAN_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"
#include "common/security/grpc_credentials.h"

namespace tpserve::cli {

struct ServePlan {
  std::string model_dir;
  std::string served_model_name;
  std::string device;  // cpu | cuda
  int world_size = 1;
  std::string host;          // gateway bind address
  std::string display_host;  // what to print for clients
  std::string scheme = "http";  // https with --ssl-certfile
  int gateway_port = 0;
  std::string router_address;  // 127.0.0.1:port
  std::vector<std::vector<std::string>> worker_argv;  // per rank
  std::vector<std::map<std::string, std::string>> worker_env;
  std::vector<std::string> router_argv;
  std::vector<std::string> gateway_argv;
  int ready_timeout_ms = 0;
  // Internal mutual TLS material (null: plaintext on loopback).
  std::shared_ptr<const InternalTls> internal_tls;
};

// Resolves the model (embedded default when --model is empty), checks what
// can be checked before starting anything (model folder, TP size against the
// heads, GPU count, free ports) and builds the children's command lines.
// Errors are one line, naming the flag to change.
absl::StatusOr<ServePlan> PlanServe(const ServerConfig& config, const std::string& self_path);

// "--name=value" for every option of `component` that differs from its
// default (lists: one flag per entry), except the names in `skip`, which the
// launcher sets itself.
std::vector<std::string> ForwardedFlags(const ServerConfig& c, uint32_t component,
                                        const std::vector<std::string>& skip);

// Number of NVIDIA GPUs the driver exposes (0 without a driver).
int CountGpus();

// True when `host:port` can be bound right now.
bool PortIsFree(const std::string& host, int port);

// A free TCP port on 127.0.0.1 (0 if none could be found).
int PickFreePort();

struct RouterReadiness {
  bool ready = false;   // SERVING_STATE_READY
  bool failed = false;  // a handshake attempt failed (its message says why)
  std::string message;
};

// One Health call to the plan's router (1 s deadline), over the same
// credentials the gateway uses.
RouterReadiness ProbeRouter(const ServePlan& plan);

// One Health call to the router behind `channel`, waiting at most `deadline`.
RouterReadiness ProbeRouter(const std::shared_ptr<grpc::Channel>& channel,
                            std::chrono::milliseconds deadline);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_SERVE_PLAN_H_
