// The split-KV decode kernel (nvcc only; attention_decode.cu launches it). A
// block owns one (sequence, KV head, split): it reads each key and value of
// its range once and scores it against the whole query group of that KV
// head (GQA), with one lane per key.
//
// Under programmatic dependent launch the code before PdlWait() runs while
// the kernel before it (RopeAndCacheWrite's, or with kRope the qkv GEMV) is
// still finishing. Everything a block needs except
// this step's q, k and v is ready by then -- context lengths, positions,
// slots and block tables are copied before the step's graph, and the cached
// keys and values of earlier positions were written by earlier steps -- so
// the block reads its metadata, computes its RoPE angles and asks L2 for its
// first keys' K/V rows before it waits (H200, 7B shape: 4.00 against 4.16 ms
// a batch-1 step at 512-token contexts, 5.21 against 5.53 at 32k).
//
// kRope (decode steps): RoPE and the KV write are folded in. Every block
// rotates its own query group's q; the block whose split holds the new token
// (position context_len - 1) rotates that token's k for its KV head and
// stores k and v at the token's slot exactly as RopeAndCacheWrite would (FP8
// through the same ToKv) before its __syncthreads; its loops then read the
// row like any other, through coherent loads (LoadWord). (Scoring the new
// row from shared memory instead put a branch in both loops, likely breaking
// the batching of the value loads: 6.66 against 5.26 ms a token at 32k.)
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_DECODE_CUH_
#define TPSERVE_WORKER_CUDA_ATTENTION_DECODE_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "worker/cuda/attention_decode_common.cuh"
#include "worker/cuda/rope.cuh"

namespace tpserve::worker::cuda {

// Value rows a lane loads together, and key chunks (8 elements) a lane loads
// together, in the narrow form; the wide form (DecodePartition::wide_loads)
// requests the whole key row and twice the value rows at once, for steps
// that are a chain of memory round trips (few blocks, short contexts), at
// the cost of registers that large batches need for occupancy.
template <bool kWide>
inline constexpr int kValueBatch = kWide ? 16 : 8;
template <bool kWide, int D>
inline constexpr int kKeyChunksAhead = kWide ? D / 8 : 4;

// What a kRope launch adds: the step's positions and slots (one per
// sequence), the rotary table, and the caches again for the new token's
// store. The kernel's own (const, __restrict__) cache pointers only read rows
// that no block of the launch writes, which keeps their loads as they were.
struct DecodeRopeArgs {
  const int* positions = nullptr;
  const int* slot_mapping = nullptr;
  void* k_write = nullptr;
  void* v_write = nullptr;
  RopeParams rope;
  float k_inv_scale = 1.0f, v_inv_scale = 1.0f;
};

// A word of the cache. kCoherent (the kRope kernel): a plain ld.global.ca,
// which sees the new token's row that the block itself stored before a
// __syncthreads (the read-only path the compiler may pick for a const
// __restrict__ pointer need not). ld.global.cg measured about the same
// (5.74 against 5.68 ms a token at 32k context, where the separate kernels
// took 5.21-5.28: that gap is not in the load instruction).
template <bool kCoherent, typename T>
__device__ __forceinline__ T LoadWord(const void* p) {
  if constexpr (kCoherent) {
    return __ldca(static_cast<const T*>(p));
  } else {
    return *static_cast<const T*>(p);
  }
}

// Lane `lane` owns elements [lane * DPL, lane * DPL + DPL) of a D-wide row.
template <int DPL, bool kCoherent>
__device__ __forceinline__ void LoadLaneSlice(const fp8* __restrict__ p, float (&v)[DPL]) {
  if constexpr (DPL == 4) {
    const uint32_t raw = LoadWord<kCoherent, uint32_t>(p);
    const float2 a = Fp8x2ToFloat2(static_cast<uint16_t>(raw)), b = Fp8x2ToFloat2(static_cast<uint16_t>(raw >> 16));
    v[0] = a.x;
    v[1] = a.y;
    v[2] = b.x;
    v[3] = b.y;
  } else if constexpr (DPL == 2) {
    const float2 a = Fp8x2ToFloat2(LoadWord<kCoherent, uint16_t>(p));
    v[0] = a.x;
    v[1] = a.y;
  } else {
#pragma unroll
    for (int k = 0; k < DPL; ++k) {
      fp8 x;
      x.__x = LoadWord<kCoherent, uint8_t>(p + k);
      v[k] = static_cast<float>(x);
    }
  }
}
template <int DPL, bool kCoherent>
__device__ __forceinline__ void LoadLaneSlice(const bf16* __restrict__ p, float (&v)[DPL]) {
  if constexpr (DPL == 4) {
    const uint2 raw = LoadWord<kCoherent, uint2>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    v[0] = a.x;
    v[1] = a.y;
    v[2] = b.x;
    v[3] = b.y;
  } else if constexpr (DPL == 2) {
    const uint32_t raw = LoadWord<kCoherent, uint32_t>(p);
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw));
    v[0] = a.x;
    v[1] = a.y;
  } else {
#pragma unroll
    for (int k = 0; k < DPL; ++k) {
      v[k] = __bfloat162float(__ushort_as_bfloat16(LoadWord<kCoherent, unsigned short>(p + k)));
    }
  }
}

// Eight elements (c * 8 .. c * 8 + 7) of a cache row: loaded as raw bits
// (KeyChunk), turned into floats when used, so a whole row can be in flight
// in few registers.
template <typename KV>
struct KeyChunk;
template <>
struct KeyChunk<bf16> {
  using Bits = uint4;
};
template <>
struct KeyChunk<fp8> {
  using Bits = uint2;
};
template <bool kCoherent, typename KV>
__device__ __forceinline__ typename KeyChunk<KV>::Bits LoadKeyChunk(const KV* __restrict__ row, int c) {
  using Bits = typename KeyChunk<KV>::Bits;
  return LoadWord<kCoherent, Bits>(reinterpret_cast<const Bits*>(row) + c);
}
__device__ __forceinline__ void UnpackKey8(const uint4& bits, float (&k)[8]) {
  Pack8 kk;
  kk.u = bits;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(kk.h2[j]);
    k[2 * j] = f.x;
    k[2 * j + 1] = f.y;
  }
}
__device__ __forceinline__ void UnpackKey8(const uint2& raw, float (&k)[8]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = Fp8x2ToFloat2(static_cast<uint16_t>((j < 2 ? raw.x : raw.y) >> (16 * (j & 1))));
    k[2 * j] = f.x;
    k[2 * j + 1] = f.y;
  }
}

// The unscaled scores of one key row against the query group: kAhead
// chunks of the row are requested before any of them is used (the whole row
// in the wide form). The products are summed in the same order either way.
template <int D, int G, bool kCoherent, int kAhead, typename KV>
__device__ __forceinline__ void KeyScores(const KV* __restrict__ krow, const float (&sq)[G][D], float (&sc)[G]) {
  static_assert((D / 8) % kAhead == 0);
#pragma unroll
  for (int c0 = 0; c0 < D / 8; c0 += kAhead) {
    typename KeyChunk<KV>::Bits bits[kAhead];
#pragma unroll
    for (int i = 0; i < kAhead; ++i) bits[i] = LoadKeyChunk<kCoherent>(krow, c0 + i);
#pragma unroll
    for (int i = 0; i < kAhead; ++i) {
      const int c = c0 + i;
      float kf[8];
      UnpackKey8(bits[i], kf);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int g = 0; g < G; ++g) {
          sc[g] = fmaf(sq[g][c * 8 + 2 * j], kf[2 * j], fmaf(sq[g][c * 8 + 2 * j + 1], kf[2 * j + 1], sc[g]));
        }
      }
    }
  }
}

// KV: the cache's element type. An FP8 cache's k scale is folded into
// scale_log2 and its v scale multiplies the output (v_scale, 1 for bf16).
// `q` is row s of the qkv buffer (stride q_stride); with kRope unrotated.
template <int D, int G, typename KV, bool kRope, bool kWide>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    DecodeKernel(const bf16* __restrict__ q, int q_stride, bf16* __restrict__ out, float* __restrict__ part_o,
                 float* __restrict__ part_lse, const KV* __restrict__ k_cache, const KV* __restrict__ v_cache,
                 PagedAttnBatch b, int nh, int nkv, int bs, float scale_log2, float v_scale, int num_splits,
                 int prefetch_keys, DecodeRopeArgs r) {
  constexpr int DPL = D / 32, kHalf = D / 2;
  __shared__ float sq[G][D];
  __shared__ float sm[kDecodeWarps][G], sl[kDecodeWarps][G];
  __shared__ float so[kDecodeWarps][G][D];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const DecodeBlock blk(b, G, num_splits);
  const int s = blk.s, kvh = blk.kvh, split = blk.split, h0 = blk.h0, ctx = blk.ctx, start = blk.start,
            end = blk.end;
  const int* bt = blk.bt;
  const int fresh = kRope ? ctx - 1 : -1;  // the new token's position (kRope)
  const bool has_fresh = kRope && start <= fresh && fresh < end;
  float rs = 0.0f, rc = 0.0f;
  int slot = -1;
  if constexpr (kRope) {
    if (threadIdx.x < kHalf) RopeAngle(r.positions[s], r.rope.inv_freq[threadIdx.x], r.rope.attention_factor, rs, rc);
    slot = r.slot_mapping[s];
  }
  // The new token's row is excluded: with kRope this block writes it.
  const int prefetch_end = min(kRope ? min(end, fresh) : end, start + prefetch_keys);
  if (start < prefetch_end) PrefetchRows<D>(k_cache, v_cache, bt, start, prefetch_end, bs, nkv, kvh);
  PdlWait();
  PdlTrigger();
  if (start >= end && num_splits > 1) {  // an empty split (short context): only its lse, which the merge skips
    if (threadIdx.x < G) part_lse[(static_cast<size_t>(s) * nh + h0 + threadIdx.x) * num_splits + split] = -INFINITY;
    return;
  }
  const bf16* qrow = q + static_cast<size_t>(s) * q_stride;
  if constexpr (kRope) {
    if (threadIdx.x < kHalf) {
      const int i = threadIdx.x;
#pragma unroll
      for (int g = 0; g < G; ++g) {
        bf16 o1, o2;
        RotatePair(qrow[(h0 + g) * D + i], qrow[(h0 + g) * D + i + kHalf], rs, rc, o1, o2);
        sq[g][i] = __bfloat162float(o1);
        sq[g][i + kHalf] = __bfloat162float(o2);
      }
      if (has_fresh && slot >= 0) {
        const bf16* k = qrow + (nh + kvh) * D;
        bf16 o1, o2;
        RotatePair(k[i], k[i + kHalf], rs, rc, o1, o2);
        KV* kc = static_cast<KV*>(r.k_write) + (static_cast<size_t>(slot) * nkv + kvh) * D;
        kc[i] = ToKv<KV>(o1, r.k_inv_scale);
        kc[i + kHalf] = ToKv<KV>(o2, r.k_inv_scale);
      }
    }
    if (has_fresh && slot >= 0) {
      const bf16* v = qrow + (nh + nkv + kvh) * D;
      KV* vc = static_cast<KV*>(r.v_write) + (static_cast<size_t>(slot) * nkv + kvh) * D;
      for (int e = threadIdx.x; e < D; e += blockDim.x) vc[e] = ToKv<KV>(v[e], r.v_inv_scale);
    }
  } else {  // the group's G * D query values in 16-byte loads, all in flight at once
    constexpr int kVecs = G * D / 8, kRounds = (kVecs + kDecodeWarps * 32 - 1) / (kDecodeWarps * 32);
    const uint4* q4 = reinterpret_cast<const uint4*>(qrow + h0 * D);
    Pack8 qv[kRounds];
#pragma unroll
    for (int i = 0; i < kRounds; ++i) {
      const int v = threadIdx.x + i * kDecodeWarps * 32;
      if (v < kVecs) qv[i].u = q4[v];
    }
#pragma unroll
    for (int i = 0; i < kRounds; ++i) {
      const int v = threadIdx.x + i * kDecodeWarps * 32;
      if (v < kVecs) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 f = __bfloat1622float2(qv[i].h2[j]);
          sq[(8 * v) / D][(8 * v) % D + 2 * j] = f.x;
          sq[(8 * v) / D][(8 * v) % D + 2 * j + 1] = f.y;
        }
      }
    }
  }
  __syncthreads();

  float m[G], l[G], acc[G][DPL];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int k = 0; k < DPL; ++k) acc[g][k] = 0.0f;
  }
  for (int k0 = start + warp * 32; k0 < end; k0 += kDecodeWarps * 32) {
    const int t = k0 + lane;
    const bool valid = t < end;
    size_t row = 0;
    float sc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) sc[g] = 0.0f;
    if (valid) {
      row = (static_cast<size_t>(bt[t / bs]) * bs + t % bs) * nkv + kvh;
      KeyScores<D, G, kRope, kKeyChunksAhead<kWide, D>>(k_cache + row * D, sq, sc);
    }
    float p[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float x = valid ? sc[g] * scale_log2 : -INFINITY;
      const float mnew = fmaxf(m[g], WarpMax(x));  // lane 0 is always valid here
      p[g] = exp2f(x - mnew);
      const float corr = exp2f(m[g] - mnew);
      l[g] = l[g] * corr + WarpSum(p[g]);
      m[g] = mnew;
#pragma unroll
      for (int k = 0; k < DPL; ++k) acc[g][k] *= corr;
    }
    // P·V: the value rows of kValueBatch<kWide> keys are requested together, so
    // their latencies overlap instead of adding up key by key.
    const int nvalid = min(32, end - k0);
    for (int j0 = 0; j0 < nvalid; j0 += kValueBatch<kWide>) {
      float vv[kValueBatch<kWide>][DPL];
#pragma unroll
      for (int jj = 0; jj < kValueBatch<kWide>; ++jj) {
        const int j = j0 + jj;
        const size_t rj = __shfl_sync(0xffffffffu, row, j & 31);
        if (j < nvalid) {
          LoadLaneSlice<DPL, kRope>(v_cache + rj * D + lane * DPL, vv[jj]);
        } else {
#pragma unroll
          for (int k = 0; k < DPL; ++k) vv[jj][k] = 0.0f;
        }
      }
#pragma unroll
      for (int jj = 0; jj < kValueBatch<kWide>; ++jj) {
        const int j = j0 + jj;
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float pj = __shfl_sync(0xffffffffu, p[g], j & 31);
          if (j >= nvalid) pj = 0.0f;
#pragma unroll
          for (int k = 0; k < DPL; ++k) acc[g][k] = fmaf(pj, vv[jj][k], acc[g][k]);
        }
      }
    }
  }

#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (lane == 0) {
      sm[warp][g] = m[g];
      sl[warp][g] = l[g];
    }
#pragma unroll
    for (int k = 0; k < DPL; ++k) so[warp][g][lane * DPL + k] = acc[g][k];
  }
  __syncthreads();
  StoreBlockResult<D, G, KV>(sm, sl, so, out, part_o, part_lse, s, h0, nh, split, num_splits, v_scale);
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_DECODE_CUH_
