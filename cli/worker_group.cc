#include "cli/worker_group.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/child_process.h"
#include "cli/commands.h"
#include "cli/run_server.h"
#include "cli/serve_plan.h"
#include "cli/supervisor.h"
#include "common/config/options.h"
#include "common/logging.h"

namespace tpserve::cli {
namespace {

// Ports first..first+n-1 as "first-last" for messages.
std::string PortRange(int first, int n) {
  return n == 1 ? absl::StrCat(first) : absl::StrCat(first, "-", first + n - 1);
}

absl::Status CheckPortRange(int first, int n, const char* flag) {
  if (first + n - 1 > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " ", first, " leaves no room for ", n, " ranks (rank r uses ", flag,
        " + r, at most 65535)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WorkerGroupPlan> PlanWorkerGroup(const ServerConfig& c,
                                                const std::string& self_path) {
  if (c.rank != -1) {
    return absl::InvalidArgumentError(
        "tpserve workers runs ranks 0..tensor-parallel-size-1 itself; --rank belongs to "
        "'tpserve worker'");
  }
  const int n = c.tensor_parallel_size;
  if (c.worker_port == 0) {
    return absl::InvalidArgumentError(
        "tpserve workers needs a fixed --worker-port (rank r listens on it + r, and the router's "
        "--worker list names those ports)");
  }
  if (absl::Status s = CheckPortRange(c.worker_port, n, "--worker-port"); !s.ok()) return s;
  if (c.metrics_port != 0) {
    if (absl::Status s = CheckPortRange(c.metrics_port, n, "--metrics-port"); !s.ok()) return s;
    if (c.metrics_port < c.worker_port + n && c.worker_port < c.metrics_port + n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--metrics-port range ", PortRange(c.metrics_port, n), " overlaps --worker-port range ",
          PortRange(c.worker_port, n)));
    }
  }
  // Rank r takes device r of those visible; with fewer, two ranks would
  // share a GPU (and its memory) without any error.
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      visible != nullptr && c.device != "cpu") {
    const std::vector<std::string> ids = absl::StrSplit(visible, ',', absl::SkipEmpty());
    if (static_cast<int>(ids.size()) < n && !(ids.empty() && c.device == "auto")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--tensor-parallel-size ", n, " needs ", n, " GPUs but CUDA_VISIBLE_DEVICES lists ",
          ids.size(), " ('", visible, "'); give the container all of the replica's GPUs"));
    }
  }
  WorkerGroupPlan plan;
  plan.world_size = n;
  for (int rank = 0; rank < n; ++rank) {
    const int port = c.worker_port + rank;
    plan.worker_ports.push_back(port);
    std::vector<std::string> argv = {self_path, "worker", absl::StrCat("--worker-port=", port),
                                     absl::StrCat("--rank=", rank),
                                     absl::StrCat("--tensor-parallel-size=", n)};
    if (c.metrics_port != 0) {
      plan.metrics_ports.push_back(c.metrics_port + rank);
      argv.push_back(absl::StrCat("--metrics-port=", c.metrics_port + rank));
    }
    for (std::string& f : ForwardedFlags(
             c, kWorker, {"worker-port", "rank", "tensor-parallel-size", "metrics-port"})) {
      argv.push_back(std::move(f));
    }
    plan.worker_argv.push_back(std::move(argv));
  }
  return plan;
}

int RunWorkers(const CommandLine& cl, const std::string& self_path) {
  sigset_t signals = BlockTerminationSignals();
  sigaddset(&signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (absl::Status s = InitLogging("workers", cl.config.log_level); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto plan = PlanWorkerGroup(cl.config, self_path);
  if (!plan.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(plan.status().message()).c_str());
    return 2;
  }
  std::vector<ChildProcess> children;
  // Every rank is started before any is awaited: they come up in parallel.
  absl::Status status;
  for (int rank = 0; rank < plan->world_size && status.ok(); ++rank) {
    auto child = ChildProcess::Spawn(absl::StrCat("worker rank ", rank), plan->worker_argv[rank], {});
    if (child.ok()) {
      children.push_back(std::move(*child));
    } else {
      status = child.status();
    }
  }
  for (size_t i = 0; i < children.size() && status.ok(); ++i) {
    status = AwaitListening(children[i], std::chrono::seconds(60));
  }
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s; stopping every rank\n", std::string(status.message()).c_str());
    StopAll(children, std::chrono::milliseconds(0), /*together=*/true);
    return 1;
  }
  std::printf("tpserve workers: %d rank%s listening on ports %s\n", plan->world_size,
              plan->world_size == 1 ? "" : "s",
              PortRange(plan->worker_ports[0], plan->world_size).c_str());
  std::fflush(stdout);
  // A dead rank leaves its group unable to step: stop the others at once and
  // exit 1, so that the kubelet restarts the whole group and the router
  // re-initialises it.
  return SuperviseChildren(children, signals,
                           {"tpserve workers", "every rank", std::chrono::milliseconds(0),
                            std::chrono::milliseconds(0), /*stop_together=*/true});
}

}  // namespace tpserve::cli
