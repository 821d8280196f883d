// `tpserve serve`: the whole service on one host. Starts --tensor-parallel-size
// workers, one router and one gateway as child processes on loopback, waits
// until the model is loaded, supervises them, and stops them in order.
//
// Supervision policy: a child that dies is reported and the whole service
// shuts down with exit code 1 (after a short grace so that the router can
// fail in-flight requests with a clear error). Restarting is left to the
// process manager above (systemd, Kubernetes), which sees the exit code.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/child_process.h"
#include "cli/commands.h"
#include "cli/run_server.h"
#include "cli/serve_plan.h"
#include "cli/supervisor.h"
#include "common/logging.h"

namespace tpserve::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

}  // namespace

int RunServe(const CommandLine& cl, const std::string& self_path) {
  sigset_t signals = BlockTerminationSignals();
  sigaddset(&signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (absl::Status s = InitLogging("serve", cl.config.log_level); !s.ok()) return Fail(std::string(s.message()));

  auto plan = PlanServe(cl.config, self_path);
  if (!plan.ok()) return Fail(std::string(plan.status().message()));
  std::printf("tpserve serve: model %s (%s), %d %s worker%s, gateway on %s:%d\n",
              plan->model_dir.c_str(), plan->served_model_name.c_str(), plan->world_size,
              plan->device.c_str(), plan->world_size == 1 ? "" : "s", plan->host.c_str(),
              plan->gateway_port);
  std::fflush(stdout);

  const auto start = Clock::now();
  const milliseconds drain(cl.config.drain_timeout_ms);
  std::vector<ChildProcess> children;  // workers, router, gateway in start order
  auto spawn = [&](const std::string& name, const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env) -> absl::Status {
    auto child = ChildProcess::Spawn(name, argv, env);
    if (!child.ok()) return child.status();
    children.push_back(std::move(*child));
    return AwaitListening(children.back(), seconds(60));
  };
  auto fail_all = [&](const absl::Status& s) {
    StopAll(children, drain);
    return Fail(std::string(s.message()));
  };

  for (int rank = 0; rank < plan->world_size; ++rank) {
    absl::Status s = spawn(absl::StrCat("worker rank ", rank), plan->worker_argv[rank],
                           plan->worker_env[rank]);
    if (!s.ok()) return fail_all(s);
  }
  if (absl::Status s = spawn("router", plan->router_argv, {}); !s.ok()) return fail_all(s);
  std::printf("tpserve serve: %d worker%s and router up; loading the model...\n", plan->world_size,
              plan->world_size == 1 ? "" : "s");
  std::fflush(stdout);

  // The router's handshake (load, profile memory, allocate KV blocks) is the
  // long part; its progress is in the router's and workers' logs.
  const auto load_deadline = Clock::now() + milliseconds(plan->ready_timeout_ms);
  while (true) {
    RouterReadiness r = ProbeRouter(*plan);
    if (r.ready) break;
    if (r.failed) return fail_all(absl::FailedPreconditionError(r.message));
    for (ChildProcess& c : children) {
      if (auto e = c.PollExit()) {
        return fail_all(absl::UnavailableError(absl::StrCat(c.name(), " ", *e, " during start-up")));
      }
      c.DrainOutput();
    }
    if (Clock::now() > load_deadline) {
      return fail_all(absl::DeadlineExceededError(absl::StrCat(
          "the model did not finish loading within ", plan->ready_timeout_ms / 1000,
          " s (last router state: ", r.message, "); raise --worker-init-timeout-ms")));
    }
    timespec ts{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      std::printf("tpserve serve: interrupted during start-up, stopping\n");
      StopAll(children, drain);
      return 130;
    }
  }
  if (absl::Status s = spawn("gateway", plan->gateway_argv, {}); !s.ok()) return fail_all(s);
  const double ready_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("tpserve serve: ready in %.1f s — OpenAI API at %s://%s:%d/v1 (model \"%s\")\n",
              ready_s, plan->scheme.c_str(), plan->display_host.c_str(), plan->gateway_port,
              plan->served_model_name.c_str());
  std::fflush(stdout);

  // Supervise until a signal or a child's death; after a death the router
  // gets a moment to fail in-flight requests with UNAVAILABLE before the
  // gateway goes away.
  return SuperviseChildren(children, signals,
                           {"tpserve serve", "gateway, router and workers", drain, seconds(2)});
}

}  // namespace tpserve::cli
