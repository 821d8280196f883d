#include "gateway/disconnect_watcher.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace tpserve::gateway {
namespace {

// A connected loopback TCP pair: server side (accepted) and client side.
struct TcpPair {
  int server = -1;
  int client = -1;
  int listen_port = 0;
  int client_port = 0;
};

TcpPair Connect() {
  TcpPair p;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(ls, 1);
  socklen_t len = sizeof(addr);
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  p.listen_port = ntohs(addr.sin_port);
  p.client = socket(AF_INET, SOCK_STREAM, 0);
  connect(p.client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  p.server = accept(ls, nullptr, nullptr);
  close(ls);
  sockaddr_in caddr{};
  len = sizeof(caddr);
  getsockname(p.client, reinterpret_cast<sockaddr*>(&caddr), &len);
  p.client_port = ntohs(caddr.sin_port);
  return p;
}

TEST(DisconnectWatcherTest, FindsTheServerSideSocket) {
  TcpPair p = Connect();
  EXPECT_EQ(DisconnectWatcher::FindConnectionFd("127.0.0.1", p.client_port, p.listen_port),
            p.server);
  EXPECT_EQ(DisconnectWatcher::FindConnectionFd("127.0.0.1", p.client_port + 1, p.listen_port),
            -1);
  close(p.client);
  close(p.server);
}

TEST(DisconnectWatcherTest, CallsBackOnHangupOnly) {
  DisconnectWatcher watcher;
  TcpPair p = Connect();
  std::atomic<int> calls{0};
  watcher.Watch(p.server, [&] { ++calls; });
  // Data from the client is not a hang-up.
  ASSERT_EQ(write(p.client, "GET", 3), 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  close(p.client);
  for (int i = 0; i < 100 && calls.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(calls.load(), 1);
  close(p.server);
}

bool WaitFor(const std::atomic<int>& value, int want) {
  for (int i = 0; i < 100 && value.load() < want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return value.load() >= want;
}

// A FIN may be a half-close: when the callback says the client may still be
// reading, only a reset counts as a hang-up.
TEST(DisconnectWatcherTest, HalfCloseWaitsForAReset) {
  std::atomic<int> asked{0};
  DisconnectWatcher watcher([&](int) {
    ++asked;
    return true;
  });
  TcpPair p = Connect();
  std::atomic<int> calls{0};
  watcher.Watch(p.server, [&] { ++calls; });
  shutdown(p.client, SHUT_WR);
  ASSERT_TRUE(WaitFor(asked, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(asked.load(), 1);  // asked once, not on every poll
  EXPECT_EQ(calls.load(), 0);
  // The client is gone for good: what the server sends meets a reset.
  close(p.client);
  ASSERT_EQ(write(p.server, "x", 1), 1);
  EXPECT_TRUE(WaitFor(calls, 1));
  close(p.server);
}

TEST(DisconnectWatcherTest, HalfCloseOfAClientThatCannotReadIsAHangup) {
  DisconnectWatcher watcher([](int) { return false; });
  TcpPair p = Connect();
  std::atomic<int> calls{0};
  watcher.Watch(p.server, [&] { ++calls; });
  shutdown(p.client, SHUT_WR);
  EXPECT_TRUE(WaitFor(calls, 1));
  close(p.client);
  close(p.server);
}

TEST(DisconnectWatcherTest, UnwatchedSocketIsIgnored) {
  DisconnectWatcher watcher;
  TcpPair p = Connect();
  std::atomic<int> calls{0};
  uint64_t id = watcher.Watch(p.server, [&] { ++calls; });
  watcher.Unwatch(id);
  close(p.client);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  close(p.server);
}

}  // namespace
}  // namespace tpserve::gateway
