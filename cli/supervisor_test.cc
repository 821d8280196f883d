// The launchers' supervision with real child processes (/bin/sh): a death
// stops the others and returns 1; SIGTERM stops every child and returns 0.
#include "cli/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

namespace tpserve::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A child that runs `before`, announces itself like a tpserve server, then
// runs `then`.
ChildProcess Start(const std::string& name, const std::string& then,
                   const std::string& before = "") {
  auto c = ChildProcess::Spawn(
      name, {"/bin/sh", "-c", before + "echo '" + name + " listening on port 1'; " + then}, {});
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  }
  sigset_t signals_;
};

TEST_F(SupervisorTest, AwaitListeningSeesTheLineOrTheDeath) {
  ChildProcess up = Start("rank 0", "exec sleep 30");
  EXPECT_TRUE(AwaitListening(up, seconds(10)).ok());
  auto dead = ChildProcess::Spawn("rank 1", {"/bin/sh", "-c", "exit 3"}, {});
  ASSERT_TRUE(dead.ok());
  absl::Status s = AwaitListening(*dead, seconds(10));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("rank 1 failed to start"), std::string::npos) << s;
  ChildProcess silent = Start("rank 2", "exec sleep 30");
  ASSERT_TRUE(silent.ReadLine(seconds(10)).ok());  // swallow its line
  EXPECT_EQ(AwaitListening(silent, milliseconds(300)).code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SupervisorTest, ADeadChildStopsTheOthersAndFails) {
  std::vector<ChildProcess> children;
  children.push_back(Start("rank 0", "exec sleep 30"));
  children.push_back(Start("rank 1", "sleep 0.3; exit 7"));
  children.push_back(Start("rank 2", "exec sleep 30"));
  for (ChildProcess& c : children) ASSERT_TRUE(AwaitListening(c, seconds(10)).ok());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(SuperviseChildren(children, signals_, {"test", "every rank", milliseconds(0),
                                                   milliseconds(0), true}),
            1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(10));
  EXPECT_EQ(children[1].PollExit().value_or(""), "exited with code 7");
  EXPECT_EQ(children[0].PollExit().value_or(""), "killed by signal 15 (Terminated)");
  EXPECT_EQ(children[2].PollExit().value_or(""), "killed by signal 15 (Terminated)");
}

TEST_F(SupervisorTest, SigtermIsForwardedToEveryChild) {
  std::vector<ChildProcess> children;
  // The second child ends cleanly on SIGTERM, as a tpserve server does; its
  // trap is set before it announces itself, so the SIGTERM cannot beat it.
  children.push_back(Start("rank 0", "exec sleep 30"));
  children.push_back(Start("rank 1", "while :; do sleep 0.05; done", "trap 'exit 0' TERM; "));
  for (ChildProcess& c : children) ASSERT_TRUE(AwaitListening(c, seconds(10)).ok());
  kill(getpid(), SIGTERM);  // blocked: pending until SuperviseChildren takes it
  EXPECT_EQ(SuperviseChildren(children, signals_, {"test", "every rank", milliseconds(0),
                                                   milliseconds(0), true}),
            0);
  EXPECT_EQ(children[0].PollExit().value_or(""), "killed by signal 15 (Terminated)");
  EXPECT_EQ(children[1].PollExit().value_or(""), "exited with code 0");
}

}  // namespace
}  // namespace tpserve::cli
