// The one way CUDA runtime and cuBLAS return codes become absl::Status in
// tpserve: every call goes through TP_CUDA_CHECK, which returns from the
// enclosing function (returning absl::Status or absl::StatusOr) on failure.
#ifndef TPSERVE_WORKER_CUDA_CUDA_CHECK_H_
#define TPSERVE_WORKER_CUDA_CUDA_CHECK_H_

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// Converts a CUDA runtime error; `expr`, `file` and `line` name the call.
absl::Status CudaErrorToStatus(cudaError_t err, const char* expr, const char* file, int line);
// Converts a cuBLAS / cuBLASLt error.
absl::Status CudaErrorToStatus(cublasStatus_t err, const char* expr, const char* file, int line);

// The launch check of every kernel launcher: reports a bad launch
// configuration at once (asynchronous faults surface at the next sync).
absl::Status CheckLaunch(const char* kernel, const char* file, int line);

// Programmatic dependent launch (worker/cuda/pdl.cuh) for the kernels of a
// decode step. PdlEnabled(): allowed at all (unless the environment sets
// TPSERVE_PDL=0). PdlActive(): allowed and inside a PdlStepScope(true) on
// this thread, which CudaModel::Forward opens for decode steps only: on the
// H200, prefill steps (cuBLAS GEMMs between our kernels) ran 20% slower with
// it, while decode gained (docs/performance.md). LaunchPdl also needs the
// device to run sm_90+ code of the kernel (pdl.cuh); elsewhere it launches
// the ordinary way.
bool PdlEnabled();
bool PdlActive();

class PdlStepScope {
 public:
  explicit PdlStepScope(bool on);
  ~PdlStepScope();
  PdlStepScope(const PdlStepScope&) = delete;
  PdlStepScope& operator=(const PdlStepScope&) = delete;

 private:
  bool previous_;
};

}  // namespace tpserve::worker::cuda

// Evaluates a cudaError_t / cublasStatus_t expression and returns a Status
// from the current function unless it succeeded.
#define TP_CUDA_CHECK(expr)                                                        \
  do {                                                                             \
    auto tp_cuda_err_ = (expr);                                                    \
    if (tp_cuda_err_ != decltype(tp_cuda_err_){}) {                                \
      return ::tpserve::worker::cuda::CudaErrorToStatus(tp_cuda_err_, #expr,       \
                                                        __FILE__, __LINE__);       \
    }                                                                              \
  } while (0)

// Returns the launch error of the kernel just launched, if any.
#define TP_CUDA_CHECK_LAUNCH(kernel_name)                                               \
  do {                                                                                  \
    ::absl::Status tp_launch_st_ =                                                      \
        ::tpserve::worker::cuda::CheckLaunch(kernel_name, __FILE__, __LINE__);          \
    if (!tp_launch_st_.ok()) return tp_launch_st_;                                      \
  } while (0)

#endif  // TPSERVE_WORKER_CUDA_CUDA_CHECK_H_
