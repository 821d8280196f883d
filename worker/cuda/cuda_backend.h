// The CUDA backend: bf16 Qwen2 on one GPU (this rank's tensor-parallel
// slice), paged KV cache, decode steps replayed from CUDA graphs.
#ifndef TPSERVE_WORKER_CUDA_CUDA_BACKEND_H_
#define TPSERVE_WORKER_CUDA_CUDA_BACKEND_H_

#include <memory>

#include "absl/status/statusor.h"
#include "worker/backend/backend.h"

namespace tpserve::worker {

// A backend on CUDA device `device`. Fails (FAILED_PRECONDITION) when the
// device does not exist.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(int device);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_CUDA_CUDA_BACKEND_H_
