#include "cli/serve_plan.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "common/config/options.h"
#include "common/model/model_config.h"
#include "common/model/tensor_parallel.h"
#include "common/status_macros.h"
#include "proto/router.grpc.pb.h"

namespace tpserve::cli {
namespace {

namespace fs = std::filesystem;

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

// Uses `wanted` when free; a default port that is taken is replaced by a free
// one (internal ports are private to this host), an explicit one is an error.
absl::StatusOr<int> ChoosePort(int wanted, int default_port, const std::string& flag) {
  if (wanted != 0 && PortIsFree("127.0.0.1", wanted)) return wanted;
  if (wanted == 0 || wanted == default_port) {
    int p = PickFreePort();
    if (p == 0) return absl::UnavailableError("no free TCP port on 127.0.0.1");
    return p;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("port ", wanted, " is taken by another process; choose another with ", flag));
}

}  // namespace

std::vector<std::string> ForwardedFlags(const ServerConfig& c, uint32_t component,
                                        const std::vector<std::string>& skip) {
  const ServerConfig defaults;
  std::vector<std::string> out;
  for (const Option& o : AllOptions()) {
    if ((o.components & component) == 0) continue;
    if (std::find(skip.begin(), skip.end(), o.name) != skip.end()) continue;
    if (o.type == OptionType::kStringList) {
      // Re-split the joined list: each entry is its own flag.
      std::string joined = o.get(c);
      size_t start = 0;
      while (!joined.empty() && start <= joined.size()) {
        size_t comma = joined.find(',', start);
        std::string item = joined.substr(start, comma == std::string::npos ? std::string::npos
                                                                             : comma - start);
        if (!item.empty()) out.push_back(absl::StrCat("--", o.name, "=", item));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      continue;
    }
    const std::string value = o.get(c);
    if (value != o.get(defaults)) out.push_back(absl::StrCat("--", o.name, "=", value));
  }
  return out;
}

int CountGpus() {
  std::error_code ec;
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    (void)e;
    ++n;
  }
  return n;
}

bool PortIsFree(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) addr.sin_addr.s_addr = INADDR_ANY;
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

absl::StatusOr<ServePlan> PlanServe(const ServerConfig& config, const std::string& self_path) {
  ServerConfig c = config;
  if (!c.workers.empty() || !c.routers.empty() || c.rank != -1) {
    return absl::InvalidArgumentError(
        "tpserve serve starts its own router and workers; --worker, --router and --rank belong to "
        "the single-component subcommands");
  }
  ServePlan plan;
  std::error_code ec;
  if (c.model.empty()) {
    c.model = DefaultModelDir(self_path);
    if (c.model.empty()) {
      return absl::NotFoundError(
          "no --model given and the embedded tiny chat model was not found next to the binary; "
          "pass --model DIR");
    }
    if (c.served_model_name.empty()) c.served_model_name = "tiny-qwen2-chat";
  }
  if (c.served_model_name.empty()) c.served_model_name = c.model;
  fs::path model(c.model);
  const bool dummy = c.load_format == "dummy";
  const fs::path config_json =
      fs::is_regular_file(model, ec) ? model : model / "config.json";
  if (!fs::exists(config_json, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "model folder ", c.model, " is missing or has no config.json; check it with 'tpserve verify ",
        c.model, "'"));
  }
  if (!dummy && !fs::exists(model / "tokenizer.json", ec)) {
    return absl::NotFoundError(absl::StrCat("model folder ", c.model,
                                            " has no tokenizer.json; check it with 'tpserve verify ",
                                            c.model, "'"));
  }
  auto mc = LoadModelConfig(config_json.string());
  if (!mc.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(mc.status().message(), " (check the folder with 'tpserve verify ", c.model, "')"));
  }
  if (absl::Status s = CheckTensorParallel(*mc, c.tensor_parallel_size); !s.ok()) return s;

  const int gpus = CountGpus();
  plan.device = c.device == "auto" ? (gpus > 0 ? "cuda" : "cpu") : c.device;
  if (plan.device == "cuda" && gpus < c.tensor_parallel_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--tensor-parallel-size ", c.tensor_parallel_size, " needs ", c.tensor_parallel_size,
        " GPUs but ", gpus, " are visible; lower it or use --device cpu"));
  }
  plan.model_dir = fs::absolute(model).string();
  plan.served_model_name = c.served_model_name;
  plan.world_size = c.tensor_parallel_size;
  plan.host = c.host;
  plan.display_host = (c.host == "0.0.0.0" || c.host == "::") ? "localhost" : c.host;
  plan.scheme = c.ssl_certfile.empty() ? "http" : "https";
  if (c.port != 0 && !PortIsFree(c.host, c.port)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "port ", c.port, " on ", c.host, " is taken by another process; choose another with --port"));
  }
  plan.gateway_port = c.port;
  plan.ready_timeout_ms = c.worker_init_timeout_ms + 30000;
  TP_ASSIGN_OR_RETURN(std::unique_ptr<InternalTls> tls, LoadInternalTls(c));
  plan.internal_tls = std::move(tls);

  const ServerConfig defaults;
  TP_ASSIGN_OR_RETURN(int router_port,
                      ChoosePort(c.router_port, defaults.router_port, "--router-port"));
  plan.router_address = Loopback(router_port);
  std::vector<std::string> worker_addrs;
  for (int rank = 0; rank < plan.world_size; ++rank) {
    const int wanted = c.worker_port == 0 ? 0 : c.worker_port + rank;
    TP_ASSIGN_OR_RETURN(int port, ChoosePort(wanted, defaults.worker_port + rank, "--worker-port"));
    worker_addrs.push_back(Loopback(port));
    std::vector<std::string> argv = {self_path, "worker",
                                     absl::StrCat("--worker-port=", port),
                                     absl::StrCat("--rank=", rank),
                                     absl::StrCat("--tensor-parallel-size=", plan.world_size),
                                     absl::StrCat("--device=", plan.device),
                                     "--internal-host=127.0.0.1"};
    for (std::string& f : ForwardedFlags(c, kWorker, {"worker-port", "rank", "tensor-parallel-size",
                                                      "device", "metrics-port"})) {
      argv.push_back(std::move(f));
    }
    plan.worker_argv.push_back(std::move(argv));
    // No NCCL_NVLS_ENABLE here: NVLink SHARP is the user's choice, made in
    // the environment that serve's workers inherit.
    plan.worker_env.emplace_back();
  }
  plan.router_argv = {self_path, "router", absl::StrCat("--router-port=", router_port),
                      absl::StrCat("--model=", plan.model_dir), "--internal-host=127.0.0.1"};
  for (const std::string& a : worker_addrs) plan.router_argv.push_back("--worker=" + a);
  for (std::string& f : ForwardedFlags(c, kRouter, {"router-port", "model", "worker"})) {
    plan.router_argv.push_back(std::move(f));
  }
  plan.gateway_argv = {self_path, "gateway", absl::StrCat("--port=", plan.gateway_port),
                       absl::StrCat("--host=", c.host), "--router=" + plan.router_address,
                       absl::StrCat("--model=", plan.model_dir),
                       absl::StrCat("--served-model-name=", plan.served_model_name)};
  for (std::string& f :
       ForwardedFlags(c, kGateway, {"port", "host", "router", "model", "served-model-name"})) {
    plan.gateway_argv.push_back(std::move(f));
  }
  return plan;
}

RouterReadiness ProbeRouter(const ServePlan& plan) {
  static auto channel = grpc::CreateCustomChannel(
      plan.router_address, InternalChannelCredentials(plan.internal_tls.get()),
      InternalChannelArguments(plan.internal_tls.get()));
  return ProbeRouter(channel, std::chrono::seconds(1));
}

RouterReadiness ProbeRouter(const std::shared_ptr<grpc::Channel>& channel,
                            std::chrono::milliseconds deadline) {
  auto stub = tpserve::v1::Router::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  tpserve::v1::HealthResponse resp;
  grpc::Status s = stub->Health(&ctx, tpserve::v1::HealthRequest(), &resp);
  RouterReadiness r;
  if (!s.ok()) {
    r.message = absl::StrCat("router not answering yet (", s.error_message(), ")");
    return r;
  }
  r.ready = resp.state() == tpserve::v1::SERVING_STATE_READY;
  // Every worker of `serve` is local and already listening, so a failed
  // handshake is a configuration problem (memory, TP size, model files), not
  // something the router's retries fix.
  r.failed = resp.state() == tpserve::v1::SERVING_STATE_UNHEALTHY ||
             (!r.ready && resp.failed_handshakes() > 0);
  r.message = resp.message();
  return r;
}

}  // namespace tpserve::cli
