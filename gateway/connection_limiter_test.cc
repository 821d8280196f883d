#include "gateway/connection_limiter.h"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace tpserve::gateway {
namespace {

// A connected pair: the limiter manages `server`; `client` sees what it does.
struct Pair {
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0); }
  ~Pair() {
    close(fds[0]);
    close(fds[1]);
  }
  int server() const { return fds[0]; }
  // Whether the server side was shut down (the client reads EOF at once).
  bool ShutDown() const {
    pollfd p{fds[1], POLLIN, 0};
    if (poll(&p, 1, 0) != 1) return false;
    char c;
    return recv(fds[1], &c, 1, MSG_DONTWAIT) == 0;
  }
  int fds[2];
};

TEST(ConnectionLimiterTest, AtTheCapTheLongestWaitingGivesWay) {
  ConnectionLimiter limiter(3);
  Pair a, b, c, d;
  uint64_t ia = limiter.Admit(a.server(), nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  uint64_t ib = limiter.Admit(b.server(), nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  uint64_t ic = limiter.Admit(c.server(), nullptr);
  ASSERT_NE(ia, 0u);
  ASSERT_NE(ib, 0u);
  ASSERT_NE(ic, 0u);
  EXPECT_EQ(limiter.open(), 3);
  // a is busy with a request: b, waiting longest, is shut down for d.
  limiter.SetWaiting(ia, false);
  EXPECT_NE(limiter.Admit(d.server(), nullptr), 0u);
  EXPECT_FALSE(a.ShutDown());
  EXPECT_TRUE(b.ShutDown());
  EXPECT_FALSE(c.ShutDown());
  EXPECT_FALSE(d.ShutDown());
  EXPECT_EQ(limiter.open(), 3);
  // b's thread releases it later: nothing changes.
  limiter.Release(ib);
  EXPECT_EQ(limiter.open(), 3);
}

TEST(ConnectionLimiterTest, WaitingAgainRestartsTheClock) {
  ConnectionLimiter limiter(2);
  Pair a, b, c;
  uint64_t ia = limiter.Admit(a.server(), nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  limiter.Admit(b.server(), nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // a served a request and waits for the next one: now b waited longest.
  limiter.SetWaiting(ia, false);
  limiter.SetWaiting(ia, true);
  limiter.Admit(c.server(), nullptr);
  EXPECT_FALSE(a.ShutDown());
  EXPECT_TRUE(b.ShutDown());
}

TEST(ConnectionLimiterTest, RefusesWhenEveryConnectionIsBusy) {
  ConnectionLimiter limiter(2);
  Pair a, b, c;
  uint64_t ia = limiter.Admit(a.server(), nullptr);
  uint64_t ib = limiter.Admit(b.server(), nullptr);
  limiter.SetWaiting(ia, false);
  limiter.SetWaiting(ib, false);
  EXPECT_EQ(limiter.Admit(c.server(), nullptr), 0u);
  EXPECT_FALSE(a.ShutDown());
  EXPECT_FALSE(b.ShutDown());
  limiter.Release(ib);
  EXPECT_NE(limiter.Admit(c.server(), nullptr), 0u);
}

TEST(ConnectionLimiterTest, ProbeFindsTheConnectionByDescriptor) {
  ConnectionLimiter limiter(4);
  Pair a, b;
  int probed = 0;
  uint64_t ia = limiter.Admit(a.server(), [&] {
    ++probed;
    return true;
  });
  limiter.Admit(b.server(), [] { return false; });
  EXPECT_TRUE(limiter.ProbeHalfClosed(a.server()));
  EXPECT_FALSE(limiter.ProbeHalfClosed(b.server()));
  EXPECT_EQ(probed, 1);
  limiter.Release(ia);
  EXPECT_FALSE(limiter.ProbeHalfClosed(a.server()));
  EXPECT_EQ(probed, 1);
}

TEST(ConnectionLimiterTest, ShutdownAllWakesEveryone) {
  ConnectionLimiter limiter(4);
  Pair a, b;
  limiter.Admit(a.server(), nullptr);
  limiter.SetWaiting(limiter.Admit(b.server(), nullptr), false);
  limiter.ShutdownAll();
  EXPECT_TRUE(a.ShutDown());
  EXPECT_TRUE(b.ShutDown());
}

}  // namespace
}  // namespace tpserve::gateway
