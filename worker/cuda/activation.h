// SiLU(gate) * up for Qwen2's MLP (the unfused path of prefill steps).
#ifndef TPSERVE_WORKER_CUDA_ACTIVATION_H_
#define TPSERVE_WORKER_CUDA_ACTIVATION_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// `gate_up` has `rows` rows of [gate (inter) | up (inter)];
// out[r, i] = bf16(bf16(silu(gate)) * up), HF's rounding. `inter` must be a
// multiple of 8.
absl::Status SiluAndMul(const __nv_bfloat16* gate_up, __nv_bfloat16* out, int rows, int inter,
                        cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ACTIVATION_H_
