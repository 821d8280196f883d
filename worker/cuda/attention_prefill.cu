// Tiled prefill attention, FlashAttention-2 style: a block owns 32 query
// rows of one head, streams 32-key tiles of the paged K/V through shared
// memory once for all of them, and keeps an online softmax per row. Each
// lane scores one key of the tile; the padded K rows keep those reads free of
// bank conflicts.
#include <cmath>

#include "worker/cuda/attention.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kKeyTile = 32;

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    PrefillKernel(const bf16* __restrict__ q, int q_stride, bf16* __restrict__ out,
                  const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                  PagedAttnBatch b, const int* __restrict__ tiles, int nh, int nkv, int bs,
                  float scale_log2) {
  constexpr int BQ = kPrefillQueryTile, QPW = BQ / kWarps, DPL = D / 32, KS = D + 2;
  __shared__ __align__(16) bf16 sq[BQ][D];
  __shared__ __align__(16) bf16 sk[kKeyTile][KS];
  __shared__ __align__(16) bf16 sv[kKeyTile][D];
  PdlWait();
  PdlTrigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int s = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y, kvh = h / (nh / nkv);
  const int qlen = b.q_len[s], ctx = b.context_len[s], qs = b.q_start[s];
  const int nq = min(BQ, qlen - q0);
  const int first_pos = ctx - qlen + q0;
  const int kend = min(ctx, first_pos + nq);
  const int* bt = b.block_tables + static_cast<size_t>(s) * b.max_blocks_per_seq;

  for (int e = threadIdx.x; e < BQ * D / 8; e += blockDim.x) {
    const int r = e / (D / 8), c = e % (D / 8);
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < nq) {
      val = *reinterpret_cast<const uint4*>(q + static_cast<size_t>(qs + q0 + r) * q_stride + h * D + c * 8);
    }
    *reinterpret_cast<uint4*>(&sq[r][c * 8]) = val;
  }

  float m[QPW], l[QPW], acc[QPW][DPL];
#pragma unroll
  for (int i = 0; i < QPW; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < DPL; ++k) acc[i][k] = 0.0f;
  }

  for (int k0 = 0; k0 < kend; k0 += kKeyTile) {
    __syncthreads();
    for (int e = threadIdx.x; e < kKeyTile * D / 8; e += blockDim.x) {
      const int r = e / (D / 8), c = e % (D / 8), t = k0 + r;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (t < kend) {
        const size_t slot = static_cast<size_t>(bt[t / bs]) * bs + t % bs;
        const size_t off = (slot * nkv + kvh) * D + c * 8;
        kv = *reinterpret_cast<const uint4*>(k_cache + off);
        vv = *reinterpret_cast<const uint4*>(v_cache + off);
      }
      uint32_t* kd = reinterpret_cast<uint32_t*>(&sk[r][c * 8]);
      kd[0] = kv.x;
      kd[1] = kv.y;
      kd[2] = kv.z;
      kd[3] = kv.w;
      *reinterpret_cast<uint4*>(&sv[r][c * 8]) = vv;
    }
    __syncthreads();
    const int key = k0 + lane;
#pragma unroll
    for (int i = 0; i < QPW; ++i) {
      const int qi = i * kWarps + warp;  // interleaved: causal work stays balanced
      const int qpos = first_pos + qi;
      if (qi < nq && k0 <= qpos) {  // warp-uniform
        float sc = 0.0f;
#pragma unroll 16
        for (int c = 0; c < D; c += 2) {
          const float2 qf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&sq[qi][c]));
          const float2 kf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&sk[lane][c]));
          sc = fmaf(qf.x, kf.x, fmaf(qf.y, kf.y, sc));
        }
        sc = (key <= qpos && key < kend) ? sc * scale_log2 : -INFINITY;
        const float mnew = fmaxf(m[i], WarpMax(sc));
        const float p = exp2f(sc - mnew);
        const float corr = exp2f(m[i] - mnew);
        l[i] = l[i] * corr + WarpSum(p);
        m[i] = mnew;
#pragma unroll
        for (int k = 0; k < DPL; ++k) acc[i][k] *= corr;
#pragma unroll 8
        for (int j = 0; j < kKeyTile; ++j) {
          const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
          for (int k = 0; k < DPL; ++k) acc[i][k] = fmaf(pj, __bfloat162float(sv[j][lane + 32 * k]), acc[i][k]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < QPW; ++i) {
    const int qi = i * kWarps + warp;
    if (qi < nq) {
      bf16* o = out + static_cast<size_t>(qs + q0 + qi) * nh * D + h * D;
      const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
#pragma unroll
      for (int k = 0; k < DPL; ++k) o[lane + 32 * k] = __float2bfloat16(acc[i][k] * inv);
    }
  }
}

template <int D>
absl::Status Launch(const bf16* q, int q_stride, bf16* out, const bf16* kc, const bf16* vc,
                    const PagedAttnBatch& b, const int* tiles, int num_tiles, const AttnDims& d,
                    cudaStream_t stream) {
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)) * M_LOG2E);
  dim3 grid(num_tiles, d.num_heads);
  TP_CUDA_CHECK(LaunchPdl(PrefillKernel<D>, grid, dim3(kWarps * 32), 0, stream, q, q_stride, out, kc, vc, b, tiles,
                          d.num_heads, d.num_kv_heads, d.block_size, scale_log2));
  return absl::OkStatus();
}

}  // namespace

void AppendPrefillTiles(int seq_index, int q_len, std::vector<int>& tiles) {
  for (int q0 = 0; q0 < q_len; q0 += kPrefillQueryTile) {
    tiles.push_back(seq_index);
    tiles.push_back(q0);
  }
}

absl::Status PagedPrefillAttention(const bf16* q, int q_stride, bf16* out, const bf16* k_cache,
                                   const bf16* v_cache, const PagedAttnBatch& batch,
                                   const int* tiles, int num_tiles, const AttnDims& dims,
                                   cudaStream_t stream) {
  if (dims.num_kv_heads <= 0 || dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError("attention: num_heads must be a multiple of num_kv_heads");
  }
  if (num_tiles == 0) return absl::OkStatus();
  switch (dims.head_dim) {
    case 32: return Launch<32>(q, q_stride, out, k_cache, v_cache, batch, tiles, num_tiles, dims, stream);
    case 64: return Launch<64>(q, q_stride, out, k_cache, v_cache, batch, tiles, num_tiles, dims, stream);
    case 128: return Launch<128>(q, q_stride, out, k_cache, v_cache, batch, tiles, num_tiles, dims, stream);
    default: return absl::UnimplementedError("attention: head_dim must be 32, 64 or 128");
  }
}

}  // namespace tpserve::worker::cuda
