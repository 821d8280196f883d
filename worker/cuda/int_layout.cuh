// Where a 16-byte chunk of a packed int4/int8 weight lies in either of its
// layouts (gemv_int.h), for every kernel that reads the codes, and the bit
// operation that turns a code into a float's or bf16's mantissa (nvcc only).
#ifndef TPSERVE_WORKER_CUDA_INT_LAYOUT_CUH_
#define TPSERVE_WORKER_CUDA_INT_LAYOUT_CUH_

#include <cstddef>
#include <cstdint>

#include "worker/cuda/gemv_int.h"

namespace tpserve::worker::cuda {

// Rows and 16-byte chunks of a row that one tile of the tiled layout holds.
inline constexpr int kIntTileRows = 16;
inline constexpr int kIntTileChunks = 4;

// Index, in 16-byte chunks from w.codes, of chunk c of row `row` of a weight
// with `chunks` chunks a row. Tiled: tile (row / 16, c / 4) is 64 chunks,
// row-major inside (row % 16, c % 4).
__device__ __forceinline__ size_t IntChunkIndex(bool tiled, int row, int c, int chunks) {
  if (!tiled) return static_cast<size_t>(row) * chunks + c;
  return (static_cast<size_t>(row / kIntTileRows) * chunks + (c & ~(kIntTileChunks - 1))) * kIntTileRows +
         (row % kIntTileRows) * kIntTileChunks + (c & (kIntTileChunks - 1));
}

// How far apart, in chunks, chunk c and chunk c + 4 of one row lie.
__device__ __forceinline__ int IntTileStride(bool tiled) {
  return tiled ? kIntTileRows * kIntTileChunks : kIntTileChunks;
}

// 2^23 as a float: OR-ing an integer v < 2^23 into its mantissa gives 2^23 + v.
inline constexpr uint32_t kMagicBits = 0x4B000000u;

// (a & mask) | bits in one LOP3: written as C++, the two constants do not
// fit one instruction's single immediate and nvcc emits two LOP3s, a quarter
// of the dequantizing work (seen in the SASS of both int GEMVs, H200,
// 2026-12-01).
__device__ __forceinline__ uint32_t AndOr(uint32_t a, uint32_t mask, uint32_t bits) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "r"(mask), "r"(bits));
  return d;
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_INT_LAYOUT_CUH_
