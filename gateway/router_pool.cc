#include "gateway/router_pool.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <limits>

#include "common/hash.h"
#include "common/logging.h"

namespace tpserve::gateway {
namespace {

// Per-stream HTTP/2 receive window towards routers (see Create).
constexpr int kStreamWindowBytes = 256;

}  // namespace

absl::StatusOr<std::unique_ptr<RouterPool>> RouterPool::Create(
    const std::vector<std::string>& addresses, RouterPoolOptions options) {
  if (addresses.empty()) {
    return absl::InvalidArgumentError("the gateway needs at least one --router host:port");
  }
  std::unique_ptr<RouterPool> pool(new RouterPool(options));
  for (const std::string& address : addresses) {
    if (address.find(':') == std::string::npos) {
      return absl::InvalidArgumentError("--router must be host:port, got '" + address + "'");
    }
    auto router = std::make_unique<Router>();
    router->address = address;
    grpc::ChannelArguments args = InternalChannelArguments(options.tls.get());
    // Token streams are long-lived; keep idle connections open and notice
    // dead routers quickly.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    // Stats and Health polls on a connection of their own, with the default
    // flow control: a Stats answer (Prometheus text) is kilobytes.
    router->control_stub = tpserve::v1::Router::NewStub(
        grpc::CreateCustomChannel(address, InternalChannelCredentials(options.tls.get()), args));
    // Backpressure for token streams: a Generation stops reading a call its
    // HTTP thread is behind on, and a small fixed per-stream window (no BDP
    // growth) then stops the router's write, so the router coalesces the
    // tokens into its next message instead of queueing thousands of small
    // ones in transport buffers (which the gateway would then have to
    // receive one by one: with 1,024 streams it never caught up). 256 bytes
    // is ~10 token messages in flight per stream (a few with logprobs); a
    // larger message just takes a few window updates.
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
    router->stub = tpserve::v1::Router::NewStub(
        grpc::CreateCustomChannel(address, InternalChannelCredentials(options.tls.get()), args));
    pool->routers_.push_back(std::move(router));
  }
  pool->poller_ = std::thread([p = pool.get()] { p->PollLoop(); });
  return pool;
}

RouterPool::~RouterPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void RouterPool::PollLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    PollOnce();
    lock.lock();
    stop_cv_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
}

std::vector<std::pair<std::string, std::string>> RouterPool::FetchMetricsTexts() const {
  std::vector<std::pair<std::string, std::string>> texts;
  tpserve::v1::StatsRequest request;
  request.set_include_metrics_text(true);
  for (const auto& router : routers_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
    tpserve::v1::StatsResponse stats;
    if (router->control_stub->Stats(&ctx, request, &stats).ok()) {
      texts.emplace_back(router->address, std::move(*stats.mutable_prometheus_text()));
    }
  }
  return texts;
}

void RouterPool::PollOnce() {
  for (auto& router : routers_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
    tpserve::v1::StatsResponse stats;
    grpc::Status status = router->control_stub->Stats(&ctx, tpserve::v1::StatsRequest(), &stats);
    bool ready = status.ok() && stats.state() == tpserve::v1::SERVING_STATE_READY;
    bool need_info = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ready != router->ready) {
        spdlog::info("router {} is {}", router->address, ready ? "ready" : "not ready");
      }
      router->ready = ready;
      if (status.ok()) {
        router->stats = stats;
        router->started_since_poll.store(0);
      }
      need_info = ready && !model_info_.has_value();
    }
    if (need_info) {
      grpc::ClientContext hctx;
      hctx.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
      tpserve::v1::HealthResponse health;
      if (router->control_stub->Health(&hctx, tpserve::v1::HealthRequest(), &health).ok() &&
          health.state() == tpserve::v1::SERVING_STATE_READY) {
        std::lock_guard<std::mutex> lock(mu_);
        model_info_ = health.model();
      }
    }
  }
}

uint64_t RouterPool::AffinityHash(std::span<const int> prompt) const {
  uint64_t h = 0x5bd1e995;
  size_t n = std::min<size_t>(prompt.size(), options_.affinity_prefix_tokens);
  for (size_t i = 0; i < n; ++i) h = SplitMix64(h ^ static_cast<uint32_t>(prompt[i]));
  return h;
}

std::optional<int> RouterPool::Pick(std::span<const int> prompt,
                                    const std::vector<int>& exclude) const {
  std::vector<int> candidates;
  std::vector<int64_t> loads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int pass = 0; pass < 2 && candidates.empty(); ++pass) {
      for (int i = 0; i < size(); ++i) {
        if (std::find(exclude.begin(), exclude.end(), i) != exclude.end()) continue;
        // First pass: ready routers only; second: anything left (a router
        // may be fine even if its last poll failed).
        if (pass == 0 && !routers_[i]->ready) continue;
        const Router& r = *routers_[i];
        int64_t load = int64_t{r.stats.num_requests_running()} + r.stats.num_requests_waiting() +
                       r.started_since_poll.load();
        candidates.push_back(i);
        loads.push_back(load);
      }
    }
  }
  if (candidates.empty()) return std::nullopt;
  int64_t min_load = *std::min_element(loads.begin(), loads.end());
  // Among the routers whose load is close to the least, rendezvous-hash the
  // prompt prefix so one prefix keeps landing on one replica.
  uint64_t key = AffinityHash(prompt);
  int best = -1;
  uint64_t best_weight = 0;
  for (size_t c = 0; c < candidates.size(); ++c) {
    if (loads[c] > min_load + options_.affinity_slack) continue;
    uint64_t weight = SplitMix64(key ^ SplitMix64(static_cast<uint64_t>(candidates[c]) + 1));
    if (best < 0 || weight > best_weight) {
      best = candidates[c];
      best_weight = weight;
    }
  }
  return best;
}

void RouterPool::OnRequestStart(int index) {
  routers_[index]->in_flight.fetch_add(1);
  routers_[index]->started_since_poll.fetch_add(1);
}

void RouterPool::OnRequestEnd(int index) { routers_[index]->in_flight.fetch_sub(1); }

void RouterPool::MarkUnavailable(int index) {
  std::lock_guard<std::mutex> lock(mu_);
  routers_[index]->ready = false;
}

std::optional<tpserve::v1::ModelInfo> RouterPool::model_info() const {
  std::lock_guard<std::mutex> lock(mu_);
  return model_info_;
}

bool RouterPool::AnyReady() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : routers_) {
    if (r->ready) return true;
  }
  return false;
}

std::vector<RouterSnapshot> RouterPool::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RouterSnapshot> out;
  for (const auto& r : routers_) {
    out.push_back({r->address, r->ready, r->stats, r->in_flight.load()});
  }
  return out;
}

}  // namespace tpserve::gateway
