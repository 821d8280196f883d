// The tiled layout of packed int weights (gemv_int.h): which weights take it
// and the kernel that lays row-major codes out in it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/gemv_int_mma.h"
#include "worker/cuda/int_layout.cuh"

namespace tpserve::worker::cuda {
namespace {

// One thread per 16-byte chunk: read in row-major order, written to its tile.
__global__ void TileIntCodesKernel(const uint4* __restrict__ src, uint4* __restrict__ dst, int n, int chunks) {
  const int64_t total = static_cast<int64_t>(n) * chunks;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int row = static_cast<int>(i / chunks), c = static_cast<int>(i % chunks);
    dst[IntChunkIndex(true, row, c, chunks)] = src[i];
  }
}

bool TilesEnabled() {
  static const bool on = EnvSwitch("TPSERVE_GEMV_INT_TILES", true);
  return on;
}

bool Tileable(int bits, int n, int k) {
  return n > 0 && k > 0 && n % kIntTileRows == 0 && (static_cast<int64_t>(k) * bits / 128) % kIntTileChunks == 0;
}

}  // namespace

bool IntTilesPay(const IntWeightView& w, int n, int k) {
  // int8 stays row by row: its one- and two-row scalar kernel reads whole rows.
  return TilesEnabled() && !w.tiled && w.bits == 4 && GemvIntMmaTakes(w, 1) && Tileable(w.bits, n, k);
}

absl::Status TileIntCodes(const IntWeightView& w, int n, int k, uint32_t* dst, cudaStream_t stream) {
  if (absl::Status s = CheckIntShape(w, n, k); !s.ok()) return s;
  const char* why = w.tiled                    ? "is already tiled"
                    : !Tileable(w.bits, n, k) ? "does not fill whole tiles of 16 rows x 64 bytes"
                    : dst == nullptr          ? "has a null destination"
                                              : nullptr;
  if (why != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("TileIntCodes: [", n, ", ", k, "] int", w.bits, " ", why));
  }
  const int chunks = k * w.bits / 128;
  const int64_t total = static_cast<int64_t>(n) * chunks;
  const int blocks = static_cast<int>(std::min<int64_t>((total + 255) / 256, 65536));
  TileIntCodesKernel<<<blocks, 256, 0, stream>>>(reinterpret_cast<const uint4*>(w.codes),
                                                  reinterpret_cast<uint4*>(dst), n, chunks);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
