// The split-KV decode kernel on tensor cores (nvcc only; attention_decode_mma.cu
// launches it for head dimensions 64 and 128 when DecodePartition::tensor_cores
// is set). Same blocks as DecodeKernel
// (attention_decode.cuh): one (sequence, KV head, split) a block, four warps,
// 32 keys a warp a round, the same partition, prefetch and combine; what
// differs is a warp's round. DecodeKernel gives each lane one key and the
// whole head dimension, so a round is ~900 dependent FMAs for the scores and
// as many again, behind a shuffle a key and head, for P.V: at short contexts
// a step's attention is that chain (ncu, H200, 7B, batch 1, 512 keys: 11.7
// us, 0.13 instructions issued a cycle a scheduler). Here the query group is
// the M side of mma.sync.m16n8k16 (G <= 8 heads in rows 0-7, rows 8-15
// zero), so a round of 32 keys is 32 mma for S = Q K^T and 32 for O += P V.
//
// Fragments come straight from global memory, without shared memory, by
// choosing which head-dim element sits at which k position (a dot product
// does not care about order, as long as q and k agree): lane (g = lane / 4,
// t = lane % 4) loads the 16 bytes at dims [32 b + 8 t, 32 b + 8 t + 8) of its
// rows -- q's row g, and the K and V rows of keys 8 j + g (j = 0..3) -- and the
// four words of such a chunk are the A / B registers of two k-steps. Scores
// come out as S[g][8 j + 2 t + {0, 1}], which is P's A fragment for P.V as
// it stands; V's B fragment (two keys, one dim) is the transpose of what a
// lane loaded, which movmatrix.trans makes in registers. The output a lane
// ends with is O[g][32 b + 8 t .. + 8], contiguous.
//
// Numerics: products of bf16 values are exact in fp32 either way and the sums
// are fp32, in another order than DecodeKernel's; P is rounded to bf16 for
// the P.V mma (as FlashAttention and FlashInfer do), so the output differs
// from DecodeKernel's in the last bits (tests: within the reference's 1e-2).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_DECODE_MMA_CUH_
#define TPSERVE_WORKER_CUDA_ATTENTION_DECODE_MMA_CUH_

#include "worker/cuda/attention_decode_common.cuh"

namespace tpserve::worker::cuda {

// c0, c1 += rows 0-7 of A (16 x 16; a0: k 2t..2t+1, a2: k 8+2t..) times B
// (16 x 8): rows 8-15 of A are zero, so c2, c3 are zero and dropped.
__device__ __forceinline__ void MmaTopRows(float& c0, float& c1, uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
  [[maybe_unused]] float d2, d3;  // rows 8-15: zero
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%12};"
      : "=f"(c0), "=f"(c1), "=f"(d2), "=f"(d3)
      : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1), "f"(c0), "f"(c1), "f"(0.0f));
}

// The 8 x 8 matrix of b16 pairs whose row lane / 4, columns 2 (lane % 4) and
// + 1, this lane holds, transposed (same distribution).
__device__ __forceinline__ uint32_t MovTrans(uint32_t v) {
  uint32_t r;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(v));
  return r;
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 b = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&b);
}

// Eight consecutive cache elements as four words of bf16 pairs.
__device__ __forceinline__ uint4 LoadChunk8(const bf16* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ uint4 LoadChunk8(const fp8* p) {
  return Fp8x8ToBf16x8(*reinterpret_cast<const uint2*>(p));
}

template <int D, int G, typename KV>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    DecodeMmaKernel(const bf16* __restrict__ q, int q_stride, bf16* __restrict__ out, float* __restrict__ part_o,
                    float* __restrict__ part_lse, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache,
                    PagedAttnBatch b, int nh, int nkv, int bs, float scale_log2, float v_scale, int num_splits,
                    int prefetch_keys) {
  static_assert(G <= 8 && D % 32 == 0);
  constexpr int kBlocks = D / 32;  // 16-byte chunks of a row a lane holds
  __shared__ float sm[kDecodeWarps][G], sl[kDecodeWarps][G];
  __shared__ float so[kDecodeWarps][G][D];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const DecodeBlock blk(b, G, num_splits);
  const int s = blk.s, kvh = blk.kvh, split = blk.split, h0 = blk.h0, start = blk.start, end = blk.end;
  const int* bt = blk.bt;
  const int prefetch_end = min(end, start + prefetch_keys);
  if (start < prefetch_end) PrefetchRows<D>(k_cache, v_cache, bt, start, prefetch_end, bs, nkv, kvh);
  // The cache rows (slot * nkv + kvh) of this lane's keys k0 + 8 j + g (-1:
  // past the split; an int: 2^31 rows of even 64 FP8 values are 128 GiB of
  // one layer's keys, beyond any GPU's memory). The first round's before the wait (block tables are
  // copied before the step), each next round's while this one computes.
  int rows[4];
  auto locate = [&](int k0) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int key = k0 + 8 * j + g;
      rows[j] = key < end ? (bt[key / bs] * bs + key % bs) * nkv + kvh : -1;
    }
  };
  if (start + warp * 32 < end) locate(start + warp * 32);
  PdlWait();
  PdlTrigger();
  if (start >= end && num_splits > 1) {  // an empty split: only its lse, which the merge skips
    if (threadIdx.x < G) part_lse[(static_cast<size_t>(s) * nh + h0 + threadIdx.x) * num_splits + split] = -INFINITY;
    return;
  }
  // Query head g's A registers: word 2h and 2h + 1 of chunk c are a0 and a2
  // of k-step 2c + h. Rows g >= G are zero.
  uint4 qa[kBlocks];
  const bf16* qrow = q + static_cast<size_t>(s) * q_stride + (h0 + min(g, G - 1)) * D + 8 * t;
#pragma unroll
  for (int c = 0; c < kBlocks; ++c) qa[c] = g < G ? *reinterpret_cast<const uint4*>(qrow + 32 * c) : uint4{0, 0, 0, 0};

  float m = -INFINITY, l = 0.0f;  // head g's running max (log2 units) and this lane's part of its sum
  float o[kBlocks][4][2];         // O[g][32 c + 8 t + 2 i + e]
#pragma unroll
  for (int c = 0; c < kBlocks; ++c) {
#pragma unroll
    for (int i = 0; i < 4; ++i) o[c][i][0] = o[c][i][1] = 0.0f;
  }
  for (int k0 = start + warp * 32; k0 < end; k0 += kDecodeWarps * 32) {
    // This lane's K and V rows: keys k0 + 8 j + g, all requested at once.
    uint4 kw[4][kBlocks], vw[4][kBlocks];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (rows[j] >= 0) {
        const size_t at = static_cast<size_t>(rows[j]) * D + 8 * t;
#pragma unroll
        for (int c = 0; c < kBlocks; ++c) {
          kw[j][c] = LoadChunk8(k_cache + at + 32 * c);
          vw[j][c] = LoadChunk8(v_cache + at + 32 * c);
        }
      } else {  // zero, so that P = 0 times it stays 0
#pragma unroll
        for (int c = 0; c < kBlocks; ++c) kw[j][c] = vw[j][c] = uint4{0, 0, 0, 0};
      }
    }
    if (k0 + kDecodeWarps * 32 < end) locate(k0 + kDecodeWarps * 32);
    // S = Q K^T: p[j][e] = score of key k0 + 8 j + 2 t + e for head g.
    float p[4][2];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      p[j][0] = p[j][1] = 0.0f;
#pragma unroll
      for (int c = 0; c < kBlocks; ++c) {
        MmaTopRows(p[j][0], p[j][1], qa[c].x, qa[c].y, kw[j][c].x, kw[j][c].y);
        MmaTopRows(p[j][0], p[j][1], qa[c].z, qa[c].w, kw[j][c].z, kw[j][c].w);
      }
    }
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        p[j][e] = k0 + 8 * j + 2 * t + e < end ? p[j][e] * scale_log2 : -INFINITY;
        mx = fmaxf(mx, p[j][e]);
      }
    }
    // Key k0 (j = 0, t = 0, e = 0) is in every quad's range, so mnew is finite.
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mnew = fmaxf(m, mx), corr = exp2f(m - mnew);
    m = mnew;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        p[j][e] = exp2f(p[j][e] - mnew);
        sum += p[j][e];
      }
    }
    l = l * corr + sum;
#pragma unroll
    for (int c = 0; c < kBlocks; ++c) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        o[c][i][0] *= corr;
        o[c][i][1] *= corr;
      }
    }
    // O += P V, k-step h over keys k0 + 16 h + [0, 16): P's a0 / a2 are the
    // scores of n-tiles 2h / 2h + 1; V's b0 / b1 the transposed words of the
    // rows this lane loaded for j = 2h / 2h + 1.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t a0 = PackBf16(p[2 * h][0], p[2 * h][1]), a2 = PackBf16(p[2 * h + 1][0], p[2 * h + 1][1]);
#pragma unroll
      for (int c = 0; c < kBlocks; ++c) {
        const uint32_t v0[4] = {vw[2 * h][c].x, vw[2 * h][c].y, vw[2 * h][c].z, vw[2 * h][c].w};
        const uint32_t v1[4] = {vw[2 * h + 1][c].x, vw[2 * h + 1][c].y, vw[2 * h + 1][c].z, vw[2 * h + 1][c].w};
#pragma unroll
        for (int i = 0; i < 4; ++i) MmaTopRows(o[c][i][0], o[c][i][1], a0, a2, MovTrans(v0[i]), MovTrans(v1[i]));
      }
    }
  }
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  if (g < G) {
    if (t == 0) {
      sm[warp][g] = m;
      sl[warp][g] = l;
    }
#pragma unroll
    for (int c = 0; c < kBlocks; ++c) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        so[warp][g][32 * c + 8 * t + 2 * i] = o[c][i][0];
        so[warp][g][32 * c + 8 * t + 2 * i + 1] = o[c][i][1];
      }
    }
  }
  __syncthreads();
  StoreBlockResult<D, G, KV>(sm, sl, so, out, part_o, part_lse, s, h0, nh, split, num_splits, v_scale);
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_DECODE_MMA_CUH_
