#include "cli/supervisor.h"

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace tpserve::cli {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

absl::Status AwaitListening(ChildProcess& child, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto line = child.ReadLine(milliseconds(200));
    if (!line.ok() || child.PollExit()) {
      std::string why = child.PollExit().value_or("stopped");
      return absl::UnavailableError(absl::StrCat(child.name(), " failed to start (", why, ")"));
    }
    if (line->has_value() && (*line)->find("listening on port") != std::string::npos) {
      return absl::OkStatus();
    }
    if (line->has_value()) std::printf("[%s] %s\n", child.name().c_str(), (*line)->c_str());
  }
  return absl::DeadlineExceededError(
      absl::StrCat(child.name(), " did not start listening within ", timeout.count() / 1000, " s"));
}

void StopAll(std::vector<ChildProcess>& children, milliseconds drain, bool together) {
  if (together) {
    for (ChildProcess& c : children) c.Signal(SIGTERM);
  }
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    if (it->PollExit()) continue;
    std::string how = it->StopAndWait(drain + seconds(15));
    spdlog::info("{} {}", it->name(), how);
  }
}

int SuperviseChildren(std::vector<ChildProcess>& children, const sigset_t& signals,
                      const SuperviseOptions& options) {
  while (true) {
    timespec ts{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      std::printf("%s: %s, stopping %s\n", options.who.c_str(),
                  sig == SIGINT ? "SIGINT" : "SIGTERM", options.stopping.c_str());
      std::fflush(stdout);
      StopAll(children, options.drain, options.stop_together);
      std::printf("%s: stopped\n", options.who.c_str());
      std::fflush(stdout);
      return 0;
    }
    for (ChildProcess& c : children) {
      c.DrainOutput();
      if (auto e = c.PollExit()) {
        std::fprintf(stderr, "error: %s (pid %d) %s; stopping %s\n", c.name().c_str(), c.pid(),
                     e->c_str(), options.stopping.c_str());
        std::this_thread::sleep_for(options.grace);
        StopAll(children, options.drain, options.stop_together);
        return 1;
      }
    }
  }
}

}  // namespace tpserve::cli
