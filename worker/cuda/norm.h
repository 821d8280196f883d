// Fused residual-add + RMSNorm (Qwen2's input_layernorm and
// post_attention_layernorm).
#ifndef TPSERVE_WORKER_CUDA_NORM_H_
#define TPSERVE_WORKER_CUDA_NORM_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// For each of `rows` rows of `hidden` values: if `add` is not null,
// residual <- bf16(residual + add); then
// out <- bf16(weight * bf16(residual * rsqrt(mean(residual^2) + eps))),
// the same two roundings as the HF reference. `hidden` must be a multiple
// of 8. `out` must not alias `residual`.
absl::Status AddRmsNorm(const __nv_bfloat16* add, __nv_bfloat16* residual,
                        const __nv_bfloat16* weight, __nv_bfloat16* out, int rows,
                        int hidden, float eps, cudaStream_t stream);
// The same with float32 `add` rows (a tensor-parallel all-reduce's sums),
// each value rounded to bf16 before the add: exactly Float32ToBf16 followed
// by the bf16 version, in one kernel.
absl::Status AddRmsNorm(const float* add, __nv_bfloat16* residual, const __nv_bfloat16* weight,
                        __nv_bfloat16* out, int rows, int hidden, float eps, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_NORM_H_
