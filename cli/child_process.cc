#include "cli/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tpserve::cli {

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return "ended";
}

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const std::string& name,
                                                 const std::vector<std::string>& argv,
                                                 const std::map<std::string, std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: die with the launcher, never outlive it as an orphan.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    // Own process group, so a terminal's Ctrl-C reaches only the launcher,
    // which then stops children in order.
    setpgid(0, 0);
    // Signals blocked in the launcher must not stay blocked here.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(fds[1], STDOUT_FILENO);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  return ChildProcess(name, pid, fds[0]);
}

ChildProcess::ChildProcess(std::string name, pid_t pid, int stdout_fd)
    : name_(std::move(name)), pid_(pid), stdout_fd_(stdout_fd) {}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : name_(std::move(o.name_)),
      pid_(o.pid_),
      stdout_fd_(o.stdout_fd_),
      buffer_(std::move(o.buffer_)),
      exit_(std::move(o.exit_)) {
  o.pid_ = -1;
  o.stdout_fd_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    this->~ChildProcess();
    new (this) ChildProcess(std::move(o));
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_) StopAndWait(std::chrono::seconds(5));
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

absl::StatusOr<std::optional<std::string>> ChildProcess::ReadLine(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return std::optional<std::string>(line);
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<std::string>();
    pollfd p{stdout_fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (r < 0 && errno != EINTR) return absl::InternalError(std::strerror(errno));
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n == 0) return absl::UnavailableError(absl::StrCat(name_, " closed its output"));
    if (n > 0) buffer_.append(buf, n);
  }
}

void ChildProcess::DrainOutput() {
  while (true) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (stdout_fd_ < 0 || poll(&p, 1, 0) <= 0) break;
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) break;
    buffer_.append(buf, n);
  }
  size_t nl;
  while ((nl = buffer_.find('\n')) != std::string::npos) {
    std::printf("[%s] %s\n", name_.c_str(), buffer_.substr(0, nl).c_str());
    buffer_.erase(0, nl + 1);
  }
  std::fflush(stdout);
}

std::optional<std::string> ChildProcess::PollExit() {
  if (exit_ || pid_ <= 0) return exit_;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_ = DescribeWaitStatus(status);
  return exit_;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !PollExit()) kill(pid_, sig);
}

std::string ChildProcess::StopAndWait(std::chrono::milliseconds timeout) {
  Signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!PollExit()) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_ = DescribeWaitStatus(status) + " after the stop timeout";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return *exit_;
}

}  // namespace tpserve::cli
