// Paged prefill attention on tensor cores with mma.sync (sm_80 and newer),
// FlashAttention-2 style: a block of 8 warps owns 128 packed query rows (a
// tile of positions x the query heads of one KV head, so each K/V tile loaded
// serves the whole GQA group), streams 64-key tiles of the paged K/V cache
// through shared memory with cp.async (double-buffered), and each warp keeps
// its 16 rows' Q fragments, scores and output in registers with an online
// softmax. Key tiles after a warp's last position are skipped; only tiles
// that cross a row's position are masked. Also the launcher that picks this
// kernel or the wgmma one (attention_prefill_sm90.cu).
#include <cmath>

#include "worker/cuda/attention.h"
#include "worker/cuda/attention_prefill.cuh"
#include "worker/cuda/attention_prefill_sm90.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {
namespace {

using prefill::Params;
using prefill::Tile;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kKeyTile = 64;
static_assert(kWarps * 16 == kPrefillTileRows, "one 16-row mma tile per warp");

template <int D>
constexpr int SmemBytes() {
  return (kPrefillTileRows + 4 * kKeyTile) * D * 2 + 2 * kKeyTile * 4;  // Q, K and V of two stages, slots
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// c += a (16x16, row) * b (16x8, col), bf16 in, fp32 accumulate.
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  MmaM16N8K16<bf16>(c, a[0], a[1], a[2], a[3], b0, b1);
}

// KV: the cache's element type (fp8 rows reach shared memory as bf16, see
// IssueKV).
template <int D, typename KV>
__global__ void __launch_bounds__(kThreads, 1) MmaPrefillKernel(const Params p) {
  constexpr int kN8 = kKeyTile / 8;
  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sq = SmemAddress(smem);
  const uint32_t sk0 = sq + kPrefillTileRows * D * 2;
  const uint32_t sv0 = sk0 + 2 * kKeyTile * D * 2;
  constexpr uint32_t kStage = kKeyTile * D * 2;
  const Tile t = prefill::GetTile(p);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  const int num_tiles = (t.kend + kKeyTile - 1) / kKeyTile;
  // Slot buffers after the K/V stages: tile j + 1's slots are fetched during
  // iteration j - 1 (the lookups run a tile ahead of the copies).
  int* slot_buf = reinterpret_cast<int*>(smem + (kPrefillTileRows + 4 * kKeyTile) * D * 2);
  prefill::StartLoads<D, kKeyTile, kThreads, KV>(p, t, sq, slot_buf, sk0, sv0);

  // This thread's rows (lane/4 and lane/4 + 8 of the warp's 16) and the
  // warp's position range (warp-uniform skip and mask decisions).
  const int row_a = warp * 16 + (lane >> 2);
  const int pos[2] = {prefill::RowPosition(p, t, row_a), prefill::RowPosition(p, t, row_a + 8)};
  const int warp_first = prefill::RowPosition(p, t, warp * 16);
  const int warp_last = prefill::RowPosition(p, t, min(warp * 16 + 15, t.rows - 1));

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  prefill::RowState st;

  for (int j = 0; j < num_tiles; ++j) {
    CpAsyncWait<0>();
    __syncthreads();
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        LdMatrixX4(qf[kk], sq + prefill::SwizzledOffset<D, kPrefillTileRows>(warp * 16 + (lane & 15),
                                                                              2 * kk + (lane >> 4)));
      }
    }
    // Prefetch the next tile into the other stage (its readers finished
    // before the barrier above), and the slots of the one after.
    const int k0 = j * kKeyTile;
    if (j + 1 < num_tiles) {
      const uint32_t next = ((j + 1) & 1) * kStage;
      prefill::IssueKV<D, kKeyTile, kThreads, KV>(p, t, slot_buf + ((j + 1) & 1) * kKeyTile, sk0 + next,
                                                  sv0 + next);
    }
    CpAsyncCommit();
    // Tile j + 2's slots go to the buffer tile j's copies were issued from
    // (last iteration, before this iteration's barrier).
    prefill::FetchSlots<kKeyTile, kThreads>(p, t, k0 + 2 * kKeyTile, slot_buf + (j & 1) * kKeyTile);
    if (warp_first < 0 || k0 > warp_last) continue;  // no row of this warp sees these keys

    const uint32_t sk = sk0 + (j & 1) * kStage, sv = sv0 + (j & 1) * kStage;
    float s[kN8][4];
#pragma unroll
    for (int n = 0; n < kN8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nn = 0; nn < kKeyTile / 16; ++nn) {
        uint32_t b[4];
        LdMatrixX4(b, sk + prefill::SwizzledOffset<D, kKeyTile>(nn * 16 + (lane & 7) + ((lane >> 4) << 3),
                                                                2 * kk + ((lane >> 3) & 1)));
        Mma(s[2 * nn], qf[kk], b[0], b[1]);
        Mma(s[2 * nn + 1], qf[kk], b[2], b[3]);
      }
    }
    float corr[2];
    prefill::SoftmaxStep<kN8>(s, st, k0, pos, k0 + kKeyTile - 1 > warp_first, p.scale_log2, corr);
    prefill::RescaleRows(o, corr);
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; ++kk) {
      const uint32_t a[4] = {prefill::PackBf16(s[2 * kk][0], s[2 * kk][1]),
                             prefill::PackBf16(s[2 * kk][2], s[2 * kk][3]),
                             prefill::PackBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             prefill::PackBf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t b[4];
        LdMatrixX4Trans(b, sv + prefill::SwizzledOffset<D, kKeyTile>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                                     2 * dn + (lane >> 4)));
        Mma(o[2 * dn], a, b[0], b[1]);
        Mma(o[2 * dn + 1], a, b[2], b[3]);
      }
    }
  }
  prefill::StoreOutput<D>(p, t, row_a, o, st);
}

template <int D, typename KV>
absl::Status LaunchMma(const Params& p, cudaStream_t stream) {
  constexpr int smem = SmemBytes<D>();
  // Per call: the attribute belongs to the current device's context.
  TP_CUDA_CHECK(cudaFuncSetAttribute(MmaPrefillKernel<D, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  MmaPrefillKernel<D, KV><<<dim3(p.num_tiles, p.num_kv_heads), kThreads, smem, stream>>>(p);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace

int PrefillTilePositions(const AttnDims& dims) {
  const int group = dims.num_kv_heads > 0 ? dims.num_heads / dims.num_kv_heads : 1;
  return std::max(1, kPrefillTileRows / std::max(1, group));
}

int MaxPrefillTiles(int max_tokens, int max_seqs, const AttnDims& dims) {
  // Each sequence adds at most one partial tile.
  return max_tokens / PrefillTilePositions(dims) + max_seqs + 1;
}

void AppendPrefillTiles(int seq_index, int q_len, int tile_positions, std::vector<int>& tiles) {
  for (int q0 = 0; q0 < q_len; q0 += tile_positions) {
    tiles.push_back(seq_index);
    tiles.push_back(q0);
  }
}

absl::Status PagedPrefillAttention(const bf16* q, int q_stride, bf16* out, const bf16* k_cache,
                                   const bf16* v_cache, const PagedAttnBatch& batch,
                                   const int* tiles, int num_tiles, const AttnDims& dims,
                                   cudaStream_t stream, PrefillKernel kernel) {
  return PagedPrefillAttention(q, q_stride, out, Bf16Kv(k_cache, v_cache), batch, tiles, num_tiles, dims, stream,
                               kernel);
}

absl::Status PagedPrefillAttention(const bf16* q, int q_stride, bf16* out, const KvCacheRef& kv,
                                   const PagedAttnBatch& batch, const int* tiles, int num_tiles,
                                   const AttnDims& dims, cudaStream_t stream, PrefillKernel kernel) {
  if (dims.num_kv_heads <= 0 || dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError("attention: num_heads must be a multiple of num_kv_heads");
  }
  const int group = dims.num_heads / dims.num_kv_heads;
  if (group > kPrefillTileRows) {
    return absl::UnimplementedError("prefill attention: more than 128 query heads per KV head");
  }
  if (dims.head_dim != 32 && dims.head_dim != 64 && dims.head_dim != 128) {
    return absl::UnimplementedError("attention: head_dim must be 32, 64 or 128");
  }
  if (dims.block_size <= 0) return absl::InvalidArgumentError("attention: block_size must be positive");
  const bool fp8_kv = kv.dtype == KvCacheDtype::kFp8E4m3;
  const bool wgmma_fits = dims.head_dim != 32 && !fp8_kv && PrefillWgmmaAvailable();
  if (kernel == PrefillKernel::kWgmma && !wgmma_fits) {
    return absl::FailedPreconditionError("prefill attention: the wgmma kernel needs sm_90a code on a Hopper GPU, "
                                         "head_dim 64 or 128 and a bf16 KV cache");
  }
  if (!(kv.k_scale > 0.0f && kv.v_scale > 0.0f)) {
    return absl::InvalidArgumentError("KV cache scales must be positive");
  }
  if (num_tiles == 0) return absl::OkStatus();
  Params p;
  p.q = q;
  p.q_stride = q_stride;
  p.out = out;
  p.k_cache = fp8_kv ? nullptr : static_cast<const bf16*>(kv.k);
  p.v_cache = fp8_kv ? nullptr : static_cast<const bf16*>(kv.v);
  p.k_cache8 = fp8_kv ? static_cast<const fp8*>(kv.k) : nullptr;
  p.v_cache8 = fp8_kv ? static_cast<const fp8*>(kv.v) : nullptr;
  p.v_scale = fp8_kv ? kv.v_scale : 1.0f;
  p.batch = batch;
  p.tiles = tiles;
  p.num_tiles = num_tiles;
  p.num_heads = dims.num_heads;
  p.num_kv_heads = dims.num_kv_heads;
  p.group = group;
  p.block_size = dims.block_size;
  p.tile_positions = PrefillTilePositions(dims);
  p.block_shift = (dims.block_size & (dims.block_size - 1)) == 0 ? __builtin_ctz(dims.block_size) : -1;
  p.scale_log2 = static_cast<float>(M_LOG2E / std::sqrt(static_cast<double>(dims.head_dim)));
  if (fp8_kv) p.scale_log2 *= kv.k_scale;
  if (kernel != PrefillKernel::kMma && wgmma_fits) return LaunchWgmmaPrefill(p, dims.head_dim, stream);
  return WithKvElement(kv.dtype, [&](auto tag) -> absl::Status {
    using KV = decltype(tag);
    switch (dims.head_dim) {
      case 32: return LaunchMma<32, KV>(p, stream);
      case 64: return LaunchMma<64, KV>(p, stream);
      default: return LaunchMma<128, KV>(p, stream);
    }
  });
}

}  // namespace tpserve::worker::cuda
