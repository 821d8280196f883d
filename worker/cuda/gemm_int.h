// The fused int4 / int8 GEMM (gemm_int.cu): packed AWQ / GPTQ codes times
// many rows of x on the tensor cores, dequantized in registers, for the row
// counts above the decode GEMV's (batched decode, short prefill chunks) --
// where the fallback dequantizes each weight into a bf16 scratch every call
// and runs cuBLASLt on it. Internal to the gemm library: callers go through
// Gemm::LinearInt / LinearIntSiluMul.
#ifndef TPSERVE_WORKER_CUDA_GEMM_INT_H_
#define TPSERVE_WORKER_CUDA_GEMM_INT_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "absl/status/status.h"
#include "worker/cuda/gemv_int.h"

namespace tpserve::worker::cuda {

// Row counts of x the fused GEMM takes by default, inclusive: from above the
// decode GEMV's one-pass rows (32 on its tensor-core kernels: the GEMM beats
// int4's two GEMV passes at 48 rows, 5.7 against 9.5 ms a 7B step) up to
// where dequantize + cuBLASLt is faster: int4 128 rows (7B AWQ on one H200,
// ms a step, fused / dequantize: 96 rows 9.5 / 11.4, 128 10.0 / 11.9, 160
// 13.5 / 12.2), int8 64 (40 rows 6.5 / 10.1, 64 6.9 / 10.6, 80 11.1 / 10.7);
// 2026-12-01, docs/performance.md. TPSERVE_GEMM_INT_ROWS_MIN / _MAX (read
// once) move the bounds for A/B runs; TPSERVE_GEMM_INT=0 turns the kernel off.
constexpr int GemmIntDefaultMaxRows(int bits) { return bits == 4 ? 128 : 64; }
int GemmIntMinRows(const IntWeightView& w);
int GemmIntMaxRows(const IntWeightView& w);

// Whether the fused GEMM can multiply this weight: int4 with groups a
// multiple of 128 inputs or int8 with groups a multiple of 64 (a k tile
// shares one scale group), inputs in canonical order already (no act-order
// permutation: those weights keep the dequantize path, whose bf16 weight is
// in the original order), and TPSERVE_GEMM_INT not 0.
bool GemmIntFits(const IntWeightView& w);
// GemmIntFits and m within the bounds above: what Gemm::LinearInt sends here.
bool GemmIntTakes(const IntWeightView& w, int m);

// out[m, n] = x[m, k] · W[n, k]ᵀ + bias[n] (bias may be null), bf16 or fp32
// output, any m >= 1, for the weights GemmIntFits accepts (INVALID_ARGUMENT
// otherwise). The products (q - zero) * x are exact in fp32 and each k tile's
// sums are scaled by its group's scale, as the GEMV's tensor-core kernel
// does; results differ from it only in the fp32 summation order.
// `workspace` (may be null) holds `workspace_floats` floats for split-k
// partial sums: grids under one resident wave split k over up to 8 blocks
// when m x n (2 n for SiLU·mul) floats a split fit, and a second kernel
// adds the splits up in a fixed order.
// The split-k workspace Gemm::ReserveInt allocates (32 MB): eight splits of
// the 7B down at 256 rows, three of the 72B one.
inline constexpr size_t kGemmIntWorkspaceFloats = size_t{8} << 20;

absl::Status GemmInt(const __nv_bfloat16* x, const IntWeightView& w, const __nv_bfloat16* bias, void* out,
                     bool out_fp32, int m, int n, int k, float* workspace, size_t workspace_floats,
                     cudaStream_t stream);

// Qwen2's MLP input side with W = [gate; up] ([2 * inter, k]):
// out[m, i] = bf16(silu(bf16(x·gate_i)) * bf16(x·up_i)), as GemvIntSiluMul.
absl::Status GemmIntSiluMul(const __nv_bfloat16* x, const IntWeightView& w, __nv_bfloat16* out, int m, int inter,
                            int k, float* workspace, size_t workspace_floats, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMM_INT_H_
