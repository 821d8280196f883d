// The tensor-core form of the FP8 decode GEMV (gemv_fp8_mma.cu), which
// GemvFp8 and GemvFp8SiluMul use when the shape allows it. Internal to the
// gemv library: callers go through gemv.h (tests call it directly).
#ifndef TPSERVE_WORKER_CUDA_GEMV_FP8_MMA_H_
#define TPSERVE_WORKER_CUDA_GEMV_FP8_MMA_H_

#include <cstddef>

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// Largest row count of x the tensor-core FP8 GEMV takes. (Up to 8, the mma's
// n, it ran; at 4 and 8 rows of the 7B shape it was 10-55% slower than
// quantizing x for cuBLASLt's FP8 GEMM: 2026-12-01 20:59 UTC, H200.)
inline constexpr int kGemvFp8MmaMaxRows = 2;

// Shared memory a block of the kernel takes at m rows of k inputs: its
// weight stages (48 KB) and x as f16 (m * k * 2 bytes).
size_t GemvFp8MmaSmemBytes(int m, int k);

// Whether GemvFp8 / GemvFp8SiluMul run m rows of x with k inputs on the
// tensor cores: m == 2 (TPSERVE_GEMV_FP8_MMA=2: one row too; =0: never;
// read once, for A/B runs), k a multiple of 64 (a tile of one warp's quad),
// and GemvFp8MmaSmemBytes(m, k) within the shared memory the device lets a
// block have (the 7B down at two rows takes 124 KB: fine on an H200 or an
// A100, not on an L40S's 99 KB, where it stays on gemv.cu's kernel).
bool GemvFp8MmaTakes(int m, int k);

// The tensor-core kernel itself (1 <= m <= kGemvFp8MmaMaxRows, k a multiple
// of 64, its shared memory within the device's; an error otherwise),
// whatever TPSERVE_GEMV_FP8_MMA says; same contracts as GemvFp8 /
// GemvFp8SiluMul.
absl::Status GemvFp8Mma(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                        const __nv_bfloat16* bias, void* out, bool out_fp32, int m, int n, int k,
                        cudaStream_t stream);
absl::Status GemvFp8MmaSiluMul(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                               __nv_bfloat16* out, int m, int inter, int k, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMV_FP8_MMA_H_
