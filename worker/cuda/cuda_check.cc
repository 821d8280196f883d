#include "worker/cuda/cuda_check.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/env.h"

namespace tpserve::worker::cuda {
namespace {

// Out-of-memory is something the caller can act on (smaller batch, fewer
// blocks); everything else is an internal failure of the device.
absl::Status Make(bool oom, const std::string& msg) {
  return oom ? absl::ResourceExhaustedError(msg) : absl::InternalError(msg);
}

}  // namespace

absl::Status CudaErrorToStatus(cudaError_t err, const char* expr, const char* file, int line) {
  return Make(err == cudaErrorMemoryAllocation,
              absl::StrCat("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err),
                           ") in ", expr, " at ", file, ":", line));
}

absl::Status CudaErrorToStatus(cublasStatus_t err, const char* expr, const char* file, int line) {
  return Make(err == CUBLAS_STATUS_ALLOC_FAILED,
              absl::StrCat("cuBLAS error ", cublasLtGetStatusName(err), " (",
                           cublasLtGetStatusString(err), ") in ", expr, " at ", file, ":", line));
}

absl::Status CheckLaunch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return absl::OkStatus();
  return CudaErrorToStatus(err, kernel, file, line);
}

namespace {
thread_local bool pdl_step = false;
}  // namespace

bool PdlEnabled() {
  static const bool enabled = EnvSwitch("TPSERVE_PDL", true);
  return enabled;
}

bool PdlActive() { return pdl_step && PdlEnabled(); }

PdlStepScope::PdlStepScope(bool on) : previous_(pdl_step) { pdl_step = on; }
PdlStepScope::~PdlStepScope() { pdl_step = previous_; }

}  // namespace tpserve::worker::cuda
