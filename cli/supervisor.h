// Supervision shared by the launchers (`tpserve serve` and `tpserve
// workers`): wait for a child's readiness line, stop children in order, and
// watch them until a termination signal or the first death.
#ifndef TPSERVE_CLI_SUPERVISOR_H_
#define TPSERVE_CLI_SUPERVISOR_H_

#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/child_process.h"

namespace tpserve::cli {

// Waits for "<what> listening on port N" on `child`'s stdout, echoing other
// lines; fails if the child exits or `timeout` passes first.
absl::Status AwaitListening(ChildProcess& child, std::chrono::milliseconds timeout);

// Stops children in reverse start order (the data path's front first), each
// with SIGTERM and `drain` plus a grace before SIGKILL. `together` sends every
// SIGTERM first (peers without an order, such as the ranks of one replica),
// so the stop takes one timeout rather than one per child.
void StopAll(std::vector<ChildProcess>& children, std::chrono::milliseconds drain,
             bool together = false);

struct SuperviseOptions {
  std::string who;        // prefix of messages, e.g. "tpserve serve"
  std::string stopping;   // what a signal stops, e.g. "gateway, router and workers"
  std::chrono::milliseconds drain{0};
  // After a death, how long the survivors keep running before they are
  // stopped (lets a router fail in-flight requests with a clear error).
  std::chrono::milliseconds grace{0};
  bool stop_together = false;  // see StopAll
};

// Forwards children's output until SIGINT/SIGTERM arrives (`signals` must be
// blocked in every thread) or a child ends. A signal stops every child and
// returns 0; a death is reported, the others are stopped and 1 is returned,
// so that the process manager above sees the failure and restarts the group.
int SuperviseChildren(std::vector<ChildProcess>& children, const sigset_t& signals,
                      const SuperviseOptions& options);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_SUPERVISOR_H_
