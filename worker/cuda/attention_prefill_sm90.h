// The wgmma prefill kernel's launcher, for attention_prefill.cu's dispatch
// (nvcc only: it takes the kernels' shared Params).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_H_
#define TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "worker/cuda/attention_prefill.cuh"

namespace tpserve::worker::cuda {

// Runs the wgmma kernel (head_dim 64 or 128; PrefillWgmmaAvailable() true).
absl::Status LaunchWgmmaPrefill(const prefill::Params& p, int head_dim, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_SM90_H_
