// The dequantization of int4 / int8 weights into bf16 for prefill and for
// decode batches above the GEMVs' row counts, and the gather of x's columns
// into an act-order weight's canonical order.
#include <algorithm>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/int_layout.cuh"

namespace tpserve::worker::cuda {
namespace {

__global__ void GatherColumnsKernel(const bf16* __restrict__ x, const int32_t* __restrict__ perm,
                                    bf16* __restrict__ out, int m, int k) {
  const int64_t total = static_cast<int64_t>(m) * k;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / k, j = i % k;
    out[i] = x[r * k + perm[j]];
  }
}

// One thread per kDequantCodes codes of a row (a 32-bit word of int4, a
// 16-byte chunk of int8; block y: rows, striding by the grid's height), so
// that a warp loads 128 or 512 contiguous bytes and stores 512 or 1,024, in
// the input order, or scattered through perm. A code q becomes the float
// 2^23 + q with one LOP3 (its bits are the mantissa's low bits), less 2^23 +
// zero it is q - zero exactly; times the scale that is the float product
// common/quant computes, rounded once more to bf16 (two to a conversion).
// Int-to-float conversions, a 64-bit division and 32 codes a thread held the
// int4 kernel this replaces near 2 TB/s (7B gate_up 165 us, now 119; H200).
template <int BITS>
constexpr int kDequantCodes = BITS == 4 ? 8 : 16;

template <int BITS>
__global__ void __launch_bounds__(128) DequantizeIntKernel(IntWeightView w, int n, int k, bf16* __restrict__ out) {
  constexpr int kCodes = kDequantCodes<BITS>, kPerWord = 32 / BITS, kWords = kCodes / kPerWord;
  constexpr uint32_t kMask = (1u << BITS) - 1;
  using Load = std::conditional_t<kWords == 1, uint32_t, uint4>;
  static_assert(sizeof(Load) == 4 * kWords);
  const int units = k / kCodes, chunks = k / (128 / BITS), groups = k / w.group;
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= units) return;
  const int j0 = i * kCodes, gi = j0 / w.group, per_chunk = 4 / kWords;  // units a 16-byte chunk
  for (int o = static_cast<int>(blockIdx.y); o < n; o += static_cast<int>(gridDim.y)) {
    const size_t g = static_cast<size_t>(o) * groups + gi;
    const float s = w.scale[g];
    const float bias = __uint_as_float(kMagicBits | w.zero[g]);  // 2^23 + zero
    const size_t at = IntChunkIndex(w.tiled, o, i / per_chunk, chunks) * 4 + (i % per_chunk) * kWords;
    const Load bits = __ldcs(reinterpret_cast<const Load*>(reinterpret_cast<const uint32_t*>(w.codes) + at));
    const uint32_t* word = reinterpret_cast<const uint32_t*>(&bits);
    Pack8 v[kCodes / 8];
#pragma unroll
    for (int j = 0; j < kCodes; j += 2) {
      const uint32_t wd = word[j / kPerWord];
      const float a = (__uint_as_float(AndOr(wd >> (BITS * (j % kPerWord)), kMask, kMagicBits)) - bias) * s;
      const float b = (__uint_as_float(AndOr(wd >> (BITS * (j % kPerWord + 1)), kMask, kMagicBits)) - bias) * s;
      v[j / 8].h2[(j % 8) / 2] = __floats2bfloat162_rn(a, b);
    }
    bf16* row = out + static_cast<size_t>(o) * k;
    if (w.perm == nullptr) {
#pragma unroll
      for (int u = 0; u < kCodes / 8; ++u) reinterpret_cast<uint4*>(row + j0)[u] = v[u].u;
    } else {
#pragma unroll
      for (int j = 0; j < kCodes; ++j) {
        row[w.perm[j0 + j]] = j % 2 == 0 ? v[j / 8].h2[(j % 8) / 2].x : v[j / 8].h2[(j % 8) / 2].y;
      }
    }
  }
}

int GridFor(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

absl::Status GatherColumns(const bf16* x, const int32_t* perm, bf16* out, int m, int k, cudaStream_t stream) {
  if (m <= 0 || k <= 0 || perm == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("GatherColumns: m ", m, ", k ", k));
  }
  GatherColumnsKernel<<<GridFor(int64_t{m} * k, 256), 256, 0, stream>>>(x, perm, out, m, k);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status DequantizeInt(const IntWeightView& w, int n, int k, bf16* out, cudaStream_t stream) {
  if (absl::Status s = CheckIntShape(w, n, k); !s.ok()) return s;
  auto launch = [&](auto kernel, int codes) {  // a thread per `codes` codes of a row, rows on y
    kernel<<<dim3((k / codes + 127) / 128, std::min(n, 65535)), 128, 0, stream>>>(w, n, k, out);
  };
  if (w.bits == 4) {
    launch(DequantizeIntKernel<4>, kDequantCodes<4>);
  } else {
    launch(DequantizeIntKernel<8>, kDequantCodes<8>);
  }
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
