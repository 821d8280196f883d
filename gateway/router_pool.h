// The routers (model replicas) a gateway balances across. A background thread
// polls each router's Stats (and Health, for the served ModelInfo); Pick()
// chooses the least-loaded ready router, preferring the one a prompt prefix
// hashes to when loads are close, so that repeated system prompts hit the
// same replica's prefix cache.
#ifndef TPSERVE_GATEWAY_ROUTER_POOL_H_
#define TPSERVE_GATEWAY_ROUTER_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/security/grpc_credentials.h"
#include "proto/router.grpc.pb.h"

namespace tpserve::gateway {

// What the pool knows about one router (a copy, for metrics and tests).
struct RouterSnapshot {
  std::string address;
  // The last Stats call succeeded and said READY.
  bool ready = false;
  tpserve::v1::StatsResponse stats;
  // Requests this gateway has in flight on the router.
  int in_flight = 0;
};

// Tuning knobs; defaults suit production, tests shorten the interval.
struct RouterPoolOptions {
  std::chrono::milliseconds poll_interval{250};
  std::chrono::milliseconds rpc_timeout{2000};
  // Loads within this many requests of the least loaded count as "close".
  int affinity_slack = 4;
  // Prompt tokens hashed for affinity (a system prompt plus a little).
  int affinity_prefix_tokens = 64;
  // Internal mutual TLS material for the router channels (null: plaintext).
  std::shared_ptr<const InternalTls> tls;
};

// Thread-safe set of router connections with load tracking.
class RouterPool {
 public:
  // Connects (lazily, with options.tls's credentials) to every address; polling starts at
  // once. Empty `addresses` is INVALID_ARGUMENT.
  static absl::StatusOr<std::unique_ptr<RouterPool>> Create(
      const std::vector<std::string>& addresses, RouterPoolOptions options = {});
  ~RouterPool();
  RouterPool(const RouterPool&) = delete;
  RouterPool& operator=(const RouterPool&) = delete;

  // Index of the router to send `prompt` to, skipping `exclude` (routers
  // already tried). Routers not known ready are used only when no ready one
  // is left; nullopt when every router is excluded.
  std::optional<int> Pick(std::span<const int> prompt, const std::vector<int>& exclude) const;

  // The stub for router `index`'s Generate calls (a connection with small
  // per-stream flow-control windows, see router_pool.cc).
  tpserve::v1::Router::Stub* stub(int index) const { return routers_[index]->stub.get(); }
  // Number of routers.
  int size() const { return static_cast<int>(routers_.size()); }
  // Address of router `index`.
  const std::string& address(int index) const { return routers_[index]->address; }

  // Bracket a Generate call so that loads between polls stay current.
  void OnRequestStart(int index);
  void OnRequestEnd(int index);
  // A call found the router UNAVAILABLE: treat it as not ready until a poll
  // says otherwise.
  void MarkUnavailable(int index);

  // The model served, from the first router whose Health said READY.
  std::optional<tpserve::v1::ModelInfo> model_info() const;
  // True when at least one router is ready.
  bool AnyReady() const;
  // Copies of every router's state, in address order.
  std::vector<RouterSnapshot> Snapshot() const;
  // Each reachable router's Prometheus text, asked for now (a /metrics
  // scrape; the poll leaves the text out), as (address, text) in address
  // order; routers that do not answer within the RPC timeout are left out.
  std::vector<std::pair<std::string, std::string>> FetchMetricsTexts() const;
  // Polls every router once now (the background thread does this too).
  void PollOnce();

 private:
  struct Router {
    std::string address;
    std::unique_ptr<tpserve::v1::Router::Stub> stub;
    // For the Stats and Health polls.
    std::unique_ptr<tpserve::v1::Router::Stub> control_stub;
    std::atomic<int> in_flight{0};
    // Requests started since the last successful poll (not yet in stats).
    std::atomic<int> started_since_poll{0};
    // Guarded by RouterPool::mu_.
    bool ready = false;
    tpserve::v1::StatsResponse stats;
  };

  explicit RouterPool(RouterPoolOptions options) : options_(options) {}
  void PollLoop();
  uint64_t AffinityHash(std::span<const int> prompt) const;

  const RouterPoolOptions options_;
  std::vector<std::unique_ptr<Router>> routers_;
  mutable std::mutex mu_;
  std::optional<tpserve::v1::ModelInfo> model_info_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread poller_;
};

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_ROUTER_POOL_H_
