#include "worker/model/cpu_parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/env.h"

namespace tpserve::worker::cpu {
namespace {

// One ParallelFor call: chunks are claimed with an atomic counter by pool
// threads and the caller alike.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, grain = 1, chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable finished;

  // Runs chunks until none is left unclaimed.
  void Work() {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t begin = c * grain;
      (*fn)(begin, std::min(n, begin + grain));
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(mu);
        finished.notify_all();
      }
    }
  }
};

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }

  void Run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(job);
    }
    cv_.notify_all();
    job->Work();
    std::unique_lock<std::mutex> lock(job->mu);
    job->finished.wait(lock, [&] { return job->done.load() == job->chunks; });
  }

 private:
  void Loop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !jobs_.empty(); });
        job = jobs_.front();
        // Every chunk claimed: later arrivals need not see this job.
        if (job->next.load() >= job->chunks) {
          jobs_.pop_front();
          continue;
        }
      }
      job->Work();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> jobs_;
  std::vector<std::thread> threads_;
};

Pool* GetPool() {
  // Leaked on purpose: pool threads block forever and must not be joined at
  // exit.
  static Pool* pool = new Pool(NumThreads() - 1);
  return pool;
}

}  // namespace

int NumThreads() {
  static const int n = [] {
    const int v = EnvIntInRange("TPSERVE_CPU_THREADS", 1, std::numeric_limits<int>::max(), 0);
    if (v >= 1) return std::min(v, 256);
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(hw, 1, 16);
  }();
  return n;
}

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (NumThreads() == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->grain = grain;
  job->chunks = (n + grain - 1) / grain;
  GetPool()->Run(job);
}

}  // namespace tpserve::worker::cpu
