// Split-KV ("flash-decoding") attention for decode steps. A block owns one
// (sequence, KV head, split): it reads each key and value of its range once
// and scores it against the whole query group of that KV head (GQA), with one
// lane per key. Splits are merged by a second small kernel through their
// log-sum-exp.
#include <algorithm>

#include "worker/cuda/attention.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"

namespace tpserve::worker::cuda {
namespace {

constexpr int kWarps = 4;

template <int D, int G>
__global__ void __launch_bounds__(kWarps * 32)
    DecodeKernel(const bf16* __restrict__ q, int q_stride, bf16* __restrict__ out,
                 float* __restrict__ part_o, float* __restrict__ part_lse,
                 const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
                 PagedAttnBatch b, int nh, int nkv, int bs, float scale_log2, int partition,
                 int num_splits) {
  constexpr int DPL = D / 32;
  __shared__ float sq[G][D];
  __shared__ float sm[kWarps][G], sl[kWarps][G];
  __shared__ float so[kWarps][G][D];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int s = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
  const int h0 = kvh * G;
  const int ctx = b.context_len[s];
  const int start = split * partition, end = min(ctx, start + partition);
  const int* bt = b.block_tables + static_cast<size_t>(s) * b.max_blocks_per_seq;
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    sq[e / D][e % D] = __bfloat162float(q[static_cast<size_t>(s) * q_stride + h0 * D + e]);
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
  for (int k0 = start + warp * 32; k0 < end; k0 += kWarps * 32) {
    const int t = k0 + lane;
    const bool valid = t < end;
    size_t row = 0;
    float sc[G];
#pragma unroll
    for (int g = 0; g < G; ++g) sc[g] = 0.0f;
    if (valid) {
      row = (static_cast<size_t>(bt[t / bs]) * bs + t % bs) * nkv + kvh;
      const uint4* krow = reinterpret_cast<const uint4*>(k_cache + row * D);
#pragma unroll 4
      for (int c = 0; c < D / 8; ++c) {
        Pack8 kk;
        kk.u = krow[c];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 kf = __bfloat1622float2(kk.h2[j]);
#pragma unroll
          for (int g = 0; g < G; ++g) {
            sc[g] = fmaf(sq[g][c * 8 + 2 * j], kf.x, fmaf(sq[g][c * 8 + 2 * j + 1], kf.y, sc[g]));
          }
        }
      }
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
    const int nvalid = min(32, end - k0);
    for (int j = 0; j < nvalid; ++j) {
      const size_t rj = __shfl_sync(0xffffffffu, row, j);
      const bf16* vrow = v_cache + rj * D;
      float vv[DPL];
#pragma unroll
      for (int k = 0; k < DPL; ++k) vv[k] = __bfloat162float(vrow[lane + 32 * k]);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float pj = __shfl_sync(0xffffffffu, p[g], j);
#pragma unroll
        for (int k = 0; k < DPL; ++k) acc[g][k] = fmaf(pj, vv[k], acc[g][k]);
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
    for (int k = 0; k < DPL; ++k) so[warp][g][lane + 32 * k] = acc[g][k];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    const int g = e / D, d = e % D;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm[w][g]);
    float lsum = 0.0f, o = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(sm[w][g] - mx);
        lsum += sl[w][g] * f;
        o += so[w][g][d] * f;
      }
    }
    const int h = h0 + g;
    if (num_splits == 1) {
      out[static_cast<size_t>(s) * nh * D + h * D + d] = __float2bfloat16(lsum > 0.0f ? o / lsum : 0.0f);
    } else {
      const size_t idx = (static_cast<size_t>(s) * nh + h) * num_splits + split;
      part_o[idx * D + d] = lsum > 0.0f ? o / lsum : 0.0f;
      if (d == 0) part_lse[idx] = lsum > 0.0f ? mx + log2f(lsum) : -INFINITY;
    }
  }
}

// Merges the splits of one (sequence, head): weights 2^(lse - max).
__global__ void MergeSplitsKernel(const float* __restrict__ part_o, const float* __restrict__ part_lse,
                                  bf16* __restrict__ out, int nh, int d, int num_splits) {
  const int s = blockIdx.x, h = blockIdx.y;
  const size_t base = (static_cast<size_t>(s) * nh + h) * num_splits;
  float mx = -INFINITY;
  for (int i = 0; i < num_splits; ++i) mx = fmaxf(mx, part_lse[base + i]);
  for (int e = threadIdx.x; e < d; e += blockDim.x) {
    float o = 0.0f, w = 0.0f;
    if (mx != -INFINITY) {
      for (int i = 0; i < num_splits; ++i) {
        const float f = exp2f(part_lse[base + i] - mx);
        w += f;
        o += f * part_o[(base + i) * d + e];
      }
    }
    out[static_cast<size_t>(s) * nh * d + h * d + e] = __float2bfloat16(w > 0.0f ? o / w : 0.0f);
  }
}

template <int D, int G>
absl::Status Launch(const bf16* q, int q_stride, bf16* out, const bf16* kc, const bf16* vc,
                    const PagedAttnBatch& b, const DecodePartition& p, void* ws,
                    const AttnDims& d, cudaStream_t stream) {
  const float scale_log2 = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)) * M_LOG2E);
  float* part_o = static_cast<float*>(ws);
  float* part_lse = part_o + static_cast<size_t>(b.num_seqs) * d.num_heads * p.num_splits * D;
  dim3 grid(b.num_seqs, d.num_kv_heads, p.num_splits);
  DecodeKernel<D, G><<<grid, kWarps * 32, 0, stream>>>(q, q_stride, out, part_o, part_lse, kc, vc, b,
                                                       d.num_heads, d.num_kv_heads, d.block_size,
                                                       scale_log2, p.partition_size, p.num_splits);
  TP_CUDA_CHECK_LAUNCH("DecodeKernel");
  if (p.num_splits > 1) {
    MergeSplitsKernel<<<dim3(b.num_seqs, d.num_heads), D, 0, stream>>>(part_o, part_lse, out,
                                                                       d.num_heads, D, p.num_splits);
    TP_CUDA_CHECK_LAUNCH("MergeSplitsKernel");
  }
  return absl::OkStatus();
}

template <int D>
absl::Status DispatchGroup(int group, const bf16* q, int q_stride, bf16* out, const bf16* kc,
                           const bf16* vc, const PagedAttnBatch& b, const DecodePartition& p,
                           void* ws, const AttnDims& d, cudaStream_t stream) {
  switch (group) {
    case 1: return Launch<D, 1>(q, q_stride, out, kc, vc, b, p, ws, d, stream);
    case 2: return Launch<D, 2>(q, q_stride, out, kc, vc, b, p, ws, d, stream);
    case 4: return Launch<D, 4>(q, q_stride, out, kc, vc, b, p, ws, d, stream);
    case 7: return Launch<D, 7>(q, q_stride, out, kc, vc, b, p, ws, d, stream);
    case 8: return Launch<D, 8>(q, q_stride, out, kc, vc, b, p, ws, d, stream);
    default: return absl::UnimplementedError("decode attention: query heads per KV head must be 1, 2, 4, 7 or 8");
  }
}

}  // namespace

DecodePartition ChooseDecodePartition(int max_context) {
  DecodePartition p;
  const int per_split = (std::max(1, max_context) + 31) / 32;
  p.partition_size = std::max(256, (per_split + 31) / 32 * 32);
  p.num_splits = std::max(1, (max_context + p.partition_size - 1) / p.partition_size);
  return p;
}

size_t DecodeWorkspaceBytes(int num_seqs, int num_heads, int head_dim, const DecodePartition& p) {
  if (p.num_splits <= 1) return 0;
  return static_cast<size_t>(num_seqs) * num_heads * p.num_splits * (head_dim + 1) * sizeof(float);
}

absl::Status PagedDecodeAttention(const bf16* q, int q_stride, bf16* out, const bf16* k_cache,
                                  const bf16* v_cache, const PagedAttnBatch& batch,
                                  const DecodePartition& partition, void* workspace,
                                  const AttnDims& dims, cudaStream_t stream) {
  if (dims.num_kv_heads <= 0 || dims.num_heads % dims.num_kv_heads != 0) {
    return absl::InvalidArgumentError("attention: num_heads must be a multiple of num_kv_heads");
  }
  if (batch.num_seqs == 0) return absl::OkStatus();
  const int group = dims.num_heads / dims.num_kv_heads;
  switch (dims.head_dim) {
    case 32: return DispatchGroup<32>(group, q, q_stride, out, k_cache, v_cache, batch, partition, workspace, dims, stream);
    case 64: return DispatchGroup<64>(group, q, q_stride, out, k_cache, v_cache, batch, partition, workspace, dims, stream);
    case 128: return DispatchGroup<128>(group, q, q_stride, out, k_cache, v_cache, batch, partition, workspace, dims, stream);
    default: return absl::UnimplementedError("attention: head_dim must be 32, 64 or 128");
  }
}

}  // namespace tpserve::worker::cuda
