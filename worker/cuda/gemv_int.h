// Weight-only int4 / int8 linear layers (AWQ, GPTQ) kept quantized on the
// GPU: the decode GEMV that streams the packed codes and dequantizes them in
// registers, its fused gate_up + SiLU·mul variant, and the dequantization to
// bf16 that the prefill path feeds to cuBLASLt.
//
// The canonical layout (worker/cuda/int_repack.h builds it from the
// checkpoints' layouts): a weight W[n, k] is stored row by row, each output
// row's codes in input order, int4 as 8 codes per little-endian 32-bit word
// (input 8t + j at bits 4j of word t), int8 as 4 per word (input 4t + j at
// bits 8j); per (row, group) a float scale and an integer zero point, so
//   W[o, i] = (q[o, i] - zero[o, g]) * scale[o, g],  g = i / group,
// which is common/quant's float32 value exactly. Act-order (GPTQ desc_act)
// weights have their inputs permuted so that groups are contiguous: `perm`
// names the original input of each canonical position, and x is gathered
// through it before the GEMV.
//
// The tiled layout (`tiled`, made from the row-major one by TileIntCodes for
// the weights IntTilesPay names): the same 16-byte chunks, with every 16 rows
// by 64 bytes of codes (one tensor-core tile of the int4 GEMV) stored as one
// contiguous kilobyte, row by row, tiles in input order, row tiles one after
// another -- so that a warp's loads of a tile are one 1 KB span of memory,
// not 16 rows' 64-byte pieces. Scales, zero points and perm are unchanged.
#ifndef TPSERVE_WORKER_CUDA_GEMV_INT_H_
#define TPSERVE_WORKER_CUDA_GEMV_INT_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// Device pointers of one packed weight W[n, k].
struct IntWeightView {
  const uint32_t* codes = nullptr;  // [n, k * bits / 32] words
  const float* scale = nullptr;     // [n, k / group]
  const uint16_t* zero = nullptr;   // [n, k / group]; int8 zero points reach 256 (GPTQ v1's +1)
  const int32_t* perm = nullptr;    // [k] original input of canonical input j; null = identity
  int bits = 4;                     // 4 or 8
  int group = 128;                  // inputs per group: a multiple of 32 dividing k
  bool tiled = false;               // codes in the tiled layout (above), not row by row
};

// Row counts GemvInt and GemvIntSiluMul take: up to 2 on the scalar kernels;
// on the tensor-core kernels -- int4 with groups a multiple of 128, and int8
// with groups a multiple of 64 above two rows -- up to 32 in one pass (x's
// rows are the columns of up to four 8-column mma tiles, so the weights are
// read and dequantized once for all rows), and for int4 up to 64 in two even
// passes, each streaming the weights again: at 40-64 rows faster than
// dequantize + cuBLASLt for int4 and mostly slower for int8 (one H200,
// 2026-12-01; gemv_int_mma.cu's Dispatch has the numbers). GemvIntRows(w) says which
// bound applies; larger row counts dequantize and use cuBLASLt.
inline constexpr int kGemvIntMaxRows = 2;
inline constexpr int kGemvIntMmaMaxRows = 32;  // one tensor-core pass; int8's bound
inline constexpr int kGemvInt4MmaMaxRows = 64;  // int4: two passes; the most of any format
constexpr int GemvIntMmaMaxRows(int bits) { return bits == 4 ? kGemvInt4MmaMaxRows : kGemvIntMmaMaxRows; }
int GemvIntRows(const IntWeightView& w);

// Checks bits, group and that k is a multiple of 32 and of the group;
// INVALID_ARGUMENT naming the value otherwise.
absl::Status CheckIntShape(const IntWeightView& w, int n, int k);

// out[m, n] = x[m, k] · W[n, k]ᵀ + bias[n] (bias may be null), bf16 or float
// output, 1 <= m <= GemvIntRows(w) (larger row counts dequantize and use
// cuBLASLt). x is in canonical input order (GatherColumns first when w.perm
// is set).
absl::Status GemvInt(const __nv_bfloat16* x, const IntWeightView& w, const __nv_bfloat16* bias, void* out,
                     bool out_fp32, int m, int n, int k, cudaStream_t stream);

// Qwen2's MLP input side for decode with w = [gate; up] ([2 * inter, k]):
// out[m, i] = bf16(silu(bf16(x·gate_i)) * bf16(x·up_i)) (the roundings of the
// unfused path), 1 <= m <= GemvIntRows(w), x in canonical order.
absl::Status GemvIntSiluMul(const __nv_bfloat16* x, const IntWeightView& w, __nv_bfloat16* out, int m,
                            int inter, int k, cudaStream_t stream);

// Whether W[n, k] is to be stored tiled: the int4 weights the tensor-core
// GEMV streams (GemvIntMma's groups), with n a multiple of 16 and k of 128.
// TPSERVE_GEMV_INT_TILES=0 (read once) keeps every weight row by row, for
// A/B runs.
bool IntTilesPay(const IntWeightView& w, int n, int k);

// dst (as many words as w.codes) = w's row-major codes in the tiled layout;
// INVALID_ARGUMENT unless n is a multiple of 16 and a row a multiple of 64
// bytes, or when w is already tiled.
absl::Status TileIntCodes(const IntWeightView& w, int n, int k, uint32_t* dst, cudaStream_t stream);

// out[r, j] = x[r, perm[j]] for r < m, j < k (the canonical order of an
// act-order weight's inputs).
absl::Status GatherColumns(const __nv_bfloat16* x, const int32_t* perm, __nv_bfloat16* out, int m, int k,
                           cudaStream_t stream);

// The bf16 weight [n, k] in the original input order (out[o, perm[j]] gets
// canonical input j): each value is the float32 (q - zero) * scale rounded
// to bf16 once, as common/quant computes it.
absl::Status DequantizeInt(const IntWeightView& w, int n, int k, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMV_INT_H_
