#include "bench/serve/runner.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace tpserve::bench {
namespace {

// Longest wait in the loop, so the progress display keeps moving.
constexpr int kMaxWaitMs = 100;

// One request in flight: feeds the response to its reader and stores the
// result when the transfer ends.
class Slot : public StreamHandler {
 public:
  Slot(ApiKind kind, int prompt_len, double start, double t0, RequestOutput* out, int* done,
       int* failed)
      : reader_(kind, prompt_len, start), t0_(t0), out_(out), done_(done), failed_(failed) {}

  void OnBody(std::string_view bytes, double now, long http_status) override {
    reader_.OnData(bytes, now, http_status);
  }
  void OnDone(const std::string& error, long http_status, double now) override {
    *out_ = reader_.Finish(error, http_status, now);
    // Reader times are absolute; outputs count from the start of the run.
    out_->start_time -= t0_;
    ++*done_;
    if (!out_->success) ++*failed_;
  }

 private:
  StreamReader reader_;
  double t0_;
  RequestOutput* out_;
  int* done_;
  int* failed_;
};

}  // namespace

RunResult RunRequests(HttpClient& client, const RunInput& in, Progress* progress) {
  const int n = static_cast<int>(in.requests.size());
  RunResult result;
  result.outputs.resize(n);
  std::vector<std::unique_ptr<Slot>> slots(n);
  int next = 0, done = 0, failed = 0;
  const double t0 = MonotonicSeconds();
  while (done < n) {
    double now = MonotonicSeconds();
    auto may_start = [&] {
      return in.max_concurrency == 0 || client.active() < in.max_concurrency;
    };
    while (next < n && in.arrivals[next] <= now - t0 && may_start()) {
      const int i = next++;
      slots[i] = std::make_unique<Slot>(in.kind, in.prompt_lens[i], now, t0, &result.outputs[i],
                                        &done, &failed);
      if (absl::Status s = client.Start(in.requests[i], slots[i].get()); !s.ok()) {
        slots[i]->OnDone(std::string(s.message()), 0, now);
      }
      now = MonotonicSeconds();
    }
    int wait_ms = kMaxWaitMs;
    if (next < n && may_start()) {
      const double until = (in.arrivals[next] - (now - t0)) * 1000.0;
      wait_ms = std::clamp(static_cast<int>(std::ceil(until)), 0, kMaxWaitMs);
    }
    if (client.active() > 0 || wait_ms > 0) client.Poll(wait_ms);
    if (progress != nullptr) progress->Update(done, failed, MonotonicSeconds() - t0);
  }
  result.duration_s = MonotonicSeconds() - t0;
  if (progress != nullptr) progress->Finish(done, failed, result.duration_s);
  return result;
}

}  // namespace tpserve::bench
