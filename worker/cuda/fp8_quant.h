// FP8 (E4M3) quantization for `--quantization fp8`: per-row symmetric scales
// for weights (once, at load) and for activations (per token, every prefill
// GEMM), and the epilogue that applies both scales to an unscaled FP8 GEMM.
#ifndef TPSERVE_WORKER_CUDA_FP8_QUANT_H_
#define TPSERVE_WORKER_CUDA_FP8_QUANT_H_

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// Largest finite E4M3 value.
inline constexpr float kFp8E4m3Max = 448.0f;

// For each row r of x[rows, k]: scale[r] = max|x[r, :]| / 448 (1 for an
// all-zero row) and q[r, :] = E4M3(x[r, :] / scale[r]), rounded to nearest
// and saturated. k a multiple of 8 (16-byte rows).
absl::Status QuantizeRowsFp8(const __nv_bfloat16* x, int rows, int k, __nv_fp8_e4m3* q, float* scale,
                             cudaStream_t stream);

// In place on out[m, n] (bf16, or float when `out_fp32`), the raw product of
// two FP8 operands: out[i, j] = out[i, j] * row_scale[i] * col_scale[j]
// + bias[j] (bias may be null).
absl::Status ScaleFp8Product(void* out, bool out_fp32, const float* row_scale, const float* col_scale,
                             const __nv_bfloat16* bias, int m, int n, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_FP8_QUANT_H_
