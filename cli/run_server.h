// Runs one service in the foreground until SIGINT or SIGTERM, then shuts it
// down gracefully. Shared by `tpserve gateway|router|worker`.
#ifndef TPSERVE_CLI_RUN_SERVER_H_
#define TPSERVE_CLI_RUN_SERVER_H_

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

#include "common/config/config.h"
#include "common/logging.h"

namespace tpserve::cli {

// Blocks SIGINT/SIGTERM in the calling thread; call before any thread is
// started so that every thread inherits the mask and only the waiter below
// receives them.
inline sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Starts `Server` (which has Start(config), port(), Shutdown(), Wait()),
// prints "<what> listening on port N" on stdout (launchers wait for it), and
// returns once the server stopped. Exit code 0 after a signal, 1 if the
// server could not start.
template <typename Server>
int RunServerUntilSignal(const std::string& what, const ServerConfig& config) {
  sigset_t set = BlockTerminationSignals();
  if (absl::Status s = InitLogging(what, config.log_level); !s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto server = Server::Start(config);
  if (!server.ok()) {
    std::fprintf(stderr, "error: %s: %s\n", what.c_str(),
                 std::string(server.status().message()).c_str());
    return 1;
  }
  std::printf("%s listening on port %d\n", what.c_str(), (*server)->port());
  std::fflush(stdout);
  std::thread waiter([&set, &server, &what] {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("{} received {}, shutting down", what, sig == SIGINT ? "SIGINT" : "SIGTERM");
      (*server)->Shutdown();
    }
  });
  (*server)->Wait();
  // Wake the waiter if the server stopped on its own.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  spdlog::info("{} stopped", what);
  return 0;
}

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_RUN_SERVER_H_
