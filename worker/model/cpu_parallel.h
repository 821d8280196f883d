// A process-wide thread pool for the CPU backend's loops. Work is split into
// index ranges whose results do not depend on the split, so outputs are
// bit-identical for any thread count.
#ifndef TPSERVE_WORKER_MODEL_CPU_PARALLEL_H_
#define TPSERVE_WORKER_MODEL_CPU_PARALLEL_H_

#include <cstdint>
#include <functional>

namespace tpserve::worker::cpu {

// Threads used by ParallelFor (the caller included): hardware threads, at
// most 16, overridable once with TPSERVE_CPU_THREADS before first use.
int NumThreads();

// Runs fn(begin, end) over [0, n) in chunks of `grain` indices (the last one
// shorter) on the pool and the calling thread; returns when all are done.
// Safe to call from several threads at once (tensor-parallel ranks).
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tpserve::worker::cpu

#endif  // TPSERVE_WORKER_MODEL_CPU_PARALLEL_H_
