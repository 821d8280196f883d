// What the two tensor-core prefill kernels share (attention_prefill.cu:
// mma.sync, sm_80 and newer; attention_prefill_sm90.cu: wgmma, sm_90a): the
// tile a block owns, the swizzled shared-memory layout both read, the
// cp.async loaders that gather packed Q rows and paged K/V rows into it, and
// the online-softmax step on accumulator fragments (both kernels' fragments
// put rows lane/4 and lane/4 + 8 of a warp's 16 rows in each thread).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_CUH_
#define TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_CUH_

#include <cuda_bf16.h>

#include <cstdint>

#include "worker/cuda/attention.h"
#include "worker/cuda/cp_async.cuh"
#include "worker/cuda/device_util.cuh"
#include "worker/cuda/kv_cache.cuh"

namespace tpserve::worker::cuda::prefill {

// Everything a launch passes to either kernel.
struct Params {
  const bf16* q;
  int q_stride;
  bf16* out;
  const bf16* k_cache;  // bf16 cache (the wgmma kernel's TMA descriptors are made from these)
  const bf16* v_cache;
  const fp8* k_cache8;  // FP8 cache (IssueKV<..., fp8>), else null
  const fp8* v_cache8;
  float v_scale;        // multiplies the output (FP8 cache's v scale; 1 for bf16)
  PagedAttnBatch batch;
  const int* tiles;
  int num_tiles;
  int num_heads, num_kv_heads, group, block_size, tile_positions;
  int block_shift;   // log2(block_size), or -1 when it is not a power of two
  float scale_log2;  // log2(e) / sqrt(head_dim)
};

// The block's tile: packed rows [0, rows) are (position q0 + r / group, head
// kv_head * group + r % group).
struct Tile {
  int seq, q0, rows, first_pos, kend, q_row0, kv_head;
  const int* block_table;
};

__device__ __forceinline__ Tile GetTile(const Params& p) {
  Tile t;
  // Tiles run last-first: within a sequence the last tiles see the most keys,
  // so the long blocks start early and the short ones fill the tail.
  const int idx = p.num_tiles - 1 - static_cast<int>(blockIdx.x);
  t.seq = p.tiles[2 * idx];
  t.q0 = p.tiles[2 * idx + 1];
  const int qlen = p.batch.q_len[t.seq], ctx = p.batch.context_len[t.seq];
  const int npos = min(p.tile_positions, qlen - t.q0);
  t.rows = npos * p.group;
  t.first_pos = ctx - qlen + t.q0;
  t.kend = t.first_pos + npos;  // keys [0, kend) are visible to some row
  t.q_row0 = p.batch.q_start[t.seq] + t.q0;
  t.kv_head = blockIdx.y;
  t.block_table = p.batch.block_tables + static_cast<size_t>(t.seq) * p.batch.max_blocks_per_seq;
  return t;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile of `Rows` rows
// of D bf16. D >= 64: D/64 column blocks [Rows][64] of 128-byte rows, the
// chunk index XOR row % 8 -- wgmma's 128-byte swizzle, and 8 rows read by one
// ldmatrix hit 8 different bank groups. D == 32: 64-byte rows, chunk XOR
// (row / 2) % 4, conflict-free for ldmatrix as well.
template <int D, int Rows>
__device__ __forceinline__ uint32_t SwizzledOffset(int row, int chunk) {
  if constexpr (D >= 64) {
    return (chunk >> 3) * (Rows * 128) + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
  } else {
    return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4);
  }
}

// Gathers the tile's kPrefillTileRows packed query rows into `sq`
// (swizzled); rows past t.rows are zero.
template <int D, int Threads>
__device__ __forceinline__ void LoadQ(const Params& p, const Tile& t, uint32_t sq) {
  constexpr int kChunks = D / 8;
  for (int e = threadIdx.x; e < kPrefillTileRows * kChunks; e += Threads) {
    const int r = e / kChunks, c = e % kChunks;
    const bool valid = r < t.rows;
    const int pos = valid ? r / p.group : 0, head = t.kv_head * p.group + (valid ? r % p.group : 0);
    const bf16* src = p.q + static_cast<size_t>(t.q_row0 + pos) * p.q_stride + head * D + c * 8;
    CpAsync16(sq + SwizzledOffset<D, kPrefillTileRows>(r, c), src, valid);
  }
}

// K/V tile loads in two phases, so that the block-table lookups (a dependent
// global load per row) never stall the warps that also do the math: the
// cache slots of a tile's rows are fetched into shared memory a tile ahead,
// and that tile's cp.async copies are issued from them later.
template <int D, int BN, int Threads>
struct KVRows {
  static constexpr int kChunks = D / 8;                   // 16-byte chunks per row
  static constexpr int kRowsPerPass = Threads / kChunks;  // each thread keeps one chunk column
  static constexpr int kPasses = BN / kRowsPerPass;
  static_assert(Threads % kChunks == 0 && BN % kRowsPerPass == 0, "tile rows split evenly over threads");
  static_assert(Threads % BN == 0, "every thread fetches one row's slot");
};

// slots[i] = cache slot of key k0 + i, i < BN; -1 at or past t.kend (also for
// a tile past the last one). Every thread takes row threadIdx.x % BN (rows
// are written with equal values several times): no branch on the thread
// index, which next to the wgmma kernel's MMAs in flight would make the
// compiler serialize them.
// Cache slot of key `key` of the tile's sequence, -1 at or past t.kend.
__device__ __forceinline__ int KeySlot(const Params& p, const Tile& t, int key) {
  const int blk = min(p.block_shift >= 0 ? key >> p.block_shift : key / p.block_size,
                      p.batch.max_blocks_per_seq - 1);  // stays inside the table; unused past kend
  const int id = t.block_table[blk];
  return key < t.kend ? id * p.block_size + (key - blk * p.block_size) : -1;
}

template <int BN, int Threads>
__device__ __forceinline__ void FetchSlots(const Params& p, const Tile& t, int k0, int* slots) {
  const int i = threadIdx.x % BN;
  slots[i] = KeySlot(p, t, k0 + i);
}

// 16 bytes into shared memory.
__device__ __forceinline__ void StShared16(uint32_t dst, uint4 v) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};\n" ::"r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

// Copies the rows of `slots` (shared memory, from FetchSlots) into `sk` / `sv`
// (swizzled); rows with slot -1 are zero (their scores are masked, and zero
// values keep 0 * garbage out of P·V). KV fp8: the E4M3 rows are read into
// registers (8 bytes per 16-byte bf16 chunk; all of a thread's loads issued
// before the first store, so their latencies overlap), converted and stored,
// so shared memory holds the same bf16 tile layout (the caller's barrier
// before the tile is read orders these stores as it does the cp.async ones).
template <int D, int BN, int Threads, typename KV = bf16>
__device__ __forceinline__ void IssueKV(const Params& p, const Tile& t, const int* slots, uint32_t sk, uint32_t sv) {
  using R = KVRows<D, BN, Threads>;
  const int c = threadIdx.x % R::kChunks;
  if constexpr (kIsFp8<KV>) {
    uint2 kr[R::kPasses], vr[R::kPasses];
#pragma unroll
    for (int i = 0; i < R::kPasses; ++i) {
      const int slot = slots[threadIdx.x / R::kChunks + i * R::kRowsPerPass];
      kr[i] = vr[i] = make_uint2(0, 0);  // E4M3 zeros: rows past the keys become bf16 zeros
      if (slot >= 0) {
        const size_t off = (static_cast<size_t>(slot) * p.num_kv_heads + t.kv_head) * D + c * 8;
        kr[i] = *reinterpret_cast<const uint2*>(p.k_cache8 + off);
        vr[i] = *reinterpret_cast<const uint2*>(p.v_cache8 + off);
      }
    }
#pragma unroll
    for (int i = 0; i < R::kPasses; ++i) {
      const uint32_t dst = SwizzledOffset<D, BN>(threadIdx.x / R::kChunks + i * R::kRowsPerPass, c);
      StShared16(sk + dst, Fp8x8ToBf16x8(kr[i]));
      StShared16(sv + dst, Fp8x8ToBf16x8(vr[i]));
    }
  } else {
    // (Written with a thread-dependent start: the same loop over a fixed pass
    // count made ptxas serialize the wgmma kernel's MMAs around it.)
#pragma unroll 4
    for (int r = threadIdx.x / R::kChunks; r < BN; r += R::kRowsPerPass) {
      const int slot = slots[r];
      const bool valid = slot >= 0;
      const size_t off = valid ? (static_cast<size_t>(slot) * p.num_kv_heads + t.kv_head) * D + c * 8 : 0;
      const uint32_t dst = SwizzledOffset<D, BN>(r, c);
      CpAsync16(sk + dst, p.k_cache + off, valid);
      CpAsync16(sv + dst, p.v_cache + off, valid);
    }
  }
}

// Starts a block's loads: Q and key tile 0 (one cp.async group, into sq and
// sk / sv) and the slots of tile 1 (into slot_buf + BN; slot_buf holds two
// buffers of BN).
template <int D, int BN, int Threads, typename KV = bf16>
__device__ __forceinline__ void StartLoads(const Params& p, const Tile& t, uint32_t sq, int* slot_buf, uint32_t sk,
                                           uint32_t sv) {
  LoadQ<D, Threads>(p, t, sq);
  FetchSlots<BN, Threads>(p, t, 0, slot_buf);
  FetchSlots<BN, Threads>(p, t, BN, slot_buf + BN);
  __syncthreads();
  IssueKV<D, BN, Threads, KV>(p, t, slot_buf, sk, sv);
  CpAsyncCommit();
}

// Position of packed row `r` (-1 for padding rows: they see no key).
__device__ __forceinline__ int RowPosition(const Params& p, const Tile& t, int r) {
  return r < t.rows ? t.first_pos + r / p.group : -1;
}

// 2^x in one instruction (MUFU.EX2; 2^-inf = 0). exp2f adds range handling
// the scores do not need.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Online softmax state of the two rows a thread holds.
struct RowState {
  float m[2] = {-INFINITY, -INFINITY};  // running max of raw scores
  float l[2] = {0.0f, 0.0f};            // this thread's share of the row sums
};

// One key tile's softmax step on accumulator fragments s[N8][4] (chunk n:
// keys k0 + 8n + 2*(lane%4) + {0,1}; elements 0,1 row A, 2,3 row B). Masks
// keys after each row's position when `mask`, updates the running max and
// sums, turns s into probabilities and returns through corr the factors the
// output rows must be scaled by.
template <int N8>
__device__ __forceinline__ void SoftmaxStep(float (&s)[N8][4], RowState& st, int k0, const int (&pos)[2],
                                            bool mask, float scale_log2, float (&corr)[2]) {
  const int lane = threadIdx.x & 31;
  if (mask) {
#pragma unroll
    for (int n = 0; n < N8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + 8 * n + 2 * (lane & 3) + (e & 1);
        if (key > pos[e >> 1]) s[n][e] = -INFINITY;
      }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = st.m[h];
#pragma unroll
    for (int n = 0; n < N8; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    // A row that has seen no key yet keeps max -inf: use 0 so exp2 gives 0, not NaN.
    const float ms = mx == -INFINITY ? 0.0f : mx * scale_log2;
    corr[h] = st.m[h] == -INFINITY ? 0.0f : Exp2(st.m[h] * scale_log2 - ms);
    st.m[h] = mx;
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < N8; ++n) {
      s[n][2 * h] = Exp2(fmaf(s[n][2 * h], scale_log2, -ms));
      s[n][2 * h + 1] = Exp2(fmaf(s[n][2 * h + 1], scale_log2, -ms));
      sum += s[n][2 * h] + s[n][2 * h + 1];
    }
    st.l[h] = st.l[h] * corr[h] + sum;
  }
}

// Scales a thread's output fragments' two rows by corr (the softmax step's
// factors).
template <int N>
__device__ __forceinline__ void RescaleRows(float (&o)[N][4], const float (&corr)[2]) {
#pragma unroll
  for (int n = 0; n < N; ++n) {
    o[n][0] *= corr[0];
    o[n][1] *= corr[0];
    o[n][2] *= corr[1];
    o[n][3] *= corr[1];
  }
}

// Two floats as a bf16x2 register (x in the low half).
__device__ __forceinline__ uint32_t PackBf16(float x, float y) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Writes a thread's output fragments o[D/8][4] (rows rA = row_a, rB = row_a +
// 8 of the tile) divided by the row sums.
template <int D>
__device__ __forceinline__ void StoreOutput(const Params& p, const Tile& t, int row_a, const float (&o)[D / 8][4],
                                            RowState& st) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = st.l[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int r = row_a + 8 * h;
    if (r >= t.rows) continue;
    const float inv = l > 0.0f ? p.v_scale / l : 0.0f;  // v_scale 1: exactly 1 / l
    const int pos = r / p.group, head = t.kv_head * p.group + r % p.group;
    bf16* dst = p.out + static_cast<size_t>(t.q_row0 + pos) * p.num_heads * D + head * D + 2 * (lane & 3);
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<uint32_t*>(dst + 8 * n) = PackBf16(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
    }
  }
}

}  // namespace tpserve::worker::cuda::prefill

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_PREFILL_CUH_
