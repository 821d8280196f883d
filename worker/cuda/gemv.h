// Skinny GEMM for decode steps (a few rows): cuBLASLt reaches well under the
// memory roofline there, so this streams each weight row once with 16-byte
// loads and dots it with every input row.
#ifndef TPSERVE_WORKER_CUDA_GEMV_H_
#define TPSERVE_WORKER_CUDA_GEMV_H_

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// Largest row count Gemv handles.
inline constexpr int kGemvMaxRows = 8;
// Row counts up to which Gemm::Linear prefers Gemv over cuBLASLt.
inline constexpr int kGemvFastRows = 2;

// out[m, n] = x[m, k] · w[n, k]ᵀ + bias[n] (bias may be null), bf16 or float
// output, for 1 <= m <= kGemvMaxRows; k a multiple of 8 and 16-byte aligned
// rows.
absl::Status Gemv(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                  void* out, bool out_fp32, int m, int n, int k, cudaStream_t stream);

// Qwen2's MLP input side in one pass for decode: with w = [gate; up]
// ([2 * inter, k]), out[m, i] = bf16(silu(bf16(x·gate_i)) * bf16(x·up_i)),
// the roundings of the unfused GEMM + SiluAndMul. 1 <= m <= 4.
absl::Status GemvSiluMul(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* out, int m,
                         int inter, int k, cudaStream_t stream);

// FP8 (E4M3) weights with one float scale per weight row (output column):
// out[m, n] = (x[m, k] · w[n, k]ᵀ) * w_scale[n] + bias[n]; k a multiple of
// 16. Half the bytes of bf16 per weight, so decode streams twice as many.
absl::Status GemvFp8(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                     const __nv_bfloat16* bias, void* out, bool out_fp32, int m, int n, int k,
                     cudaStream_t stream);

// GemvSiluMul with FP8 [gate; up] rows and their scales ([2 * inter]).
absl::Status GemvFp8SiluMul(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                            __nv_bfloat16* out, int m, int inter, int k, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMV_H_
