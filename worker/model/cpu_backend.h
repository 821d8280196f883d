// The float32 CPU backend: the reference every other backend is tested
// against, and the engine that runs when there is no GPU.
#ifndef TPSERVE_WORKER_MODEL_CPU_BACKEND_H_
#define TPSERVE_WORKER_MODEL_CPU_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/backend/backend.h"

namespace tpserve::worker {

// A new, unloaded CPU backend (call Load, ProfileMemory, InitCache, Step).
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend();

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_CPU_BACKEND_H_
