// A child process of the `serve` launcher: started with fork/exec, its stdout
// read line by line (readiness lines), bound to the launcher's life (it gets
// SIGTERM if the launcher dies), and stopped with SIGTERM then SIGKILL.
#ifndef TPSERVE_CLI_CHILD_PROCESS_H_
#define TPSERVE_CLI_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tpserve::cli {

class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`, extra environment `env` on top of ours.
  // Its stderr is inherited; stdout is piped to us (see ReadLine).
  static absl::StatusOr<ChildProcess> Spawn(const std::string& name,
                                            const std::vector<std::string>& argv,
                                            const std::map<std::string, std::string>& env);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // "worker rank 1" etc., for messages.
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }

  // Reads one line of the child's stdout, waiting at most `timeout`.
  // nullopt on timeout; NOT_FOUND-style error when the pipe closed.
  absl::StatusOr<std::optional<std::string>> ReadLine(std::chrono::milliseconds timeout);

  // Non-blocking: the exit description ("exited with code 3", "killed by
  // signal 9") if the child has ended, else nullopt.
  std::optional<std::string> PollExit();

  // Sends `sig` if the child still runs.
  void Signal(int sig);

  // Waits up to `timeout` for the child to end; SIGKILLs it after that.
  // Returns the exit description.
  std::string StopAndWait(std::chrono::milliseconds timeout);

  // Forwards whatever the child writes to stdout after readiness to our
  // stdout, prefixed; call periodically.
  void DrainOutput();

 private:
  ChildProcess(std::string name, pid_t pid, int stdout_fd);

  std::string name_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  std::optional<std::string> exit_;
};

// Describes a waitpid() status.
std::string DescribeWaitStatus(int status);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_CHILD_PROCESS_H_
