#include "worker/cuda/sampling.h"

#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "worker/cuda/cuda_check.h"
#include "worker/cuda/device_util.cuh"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker::cuda {
namespace {

constexpr int kThreads = 1024;

// Block argmax with ties to the lower index; every thread gets the result.
__device__ void BlockArgmax(float& v, int& i, float* sv, int* si) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) {
      v = ov;
      i = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? sv[lane] : -INFINITY;
  i = lane < nw ? si[lane] : 0x7fffffff;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) {
      v = ov;
      i = oi;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    PrepareKernel(const float* __restrict__ logits, const SampleRowParams* __restrict__ params,
                  const LogitEdit* __restrict__ edits, int vocab, float* __restrict__ processed,
                  float* __restrict__ lse, int* __restrict__ tokens, float* __restrict__ keys,
                  int* __restrict__ values) {
  __shared__ float scratch[32];
  __shared__ int iscratch[32];
  const SampleRowParams p = params[blockIdx.x];
  const float* x = logits + static_cast<size_t>(p.row) * vocab;
  float* y = processed + static_cast<size_t>(p.row) * vocab;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = x[i];
    if (!p.premasked) y[i] = v;
    mx = fmaxf(mx, v);
  }
  mx = BlockMax(mx, scratch);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += __expf(x[i] - mx);
  sum = BlockSum(sum, scratch);
  if (threadIdx.x == 0) lse[p.row] = mx + logf(sum);
  __syncthreads();
  // Edits name distinct tokens, so threads never collide.
  for (int e = p.edit_begin + threadIdx.x; e < p.edit_end; e += blockDim.x) {
    const LogitEdit ed = edits[e];
    float v = y[ed.token];
    if (ed.mask) {
      v = -INFINITY;
    } else {
      v += ed.bias;  // -inf (masked) stays -inf
      if (ed.seen) {
        if (p.repetition_penalty != 1.0f) v = v > 0.0f ? v / p.repetition_penalty : v * p.repetition_penalty;
        v -= p.frequency_penalty * ed.output_count + (ed.output_count > 0 ? p.presence_penalty : 0.0f);
      }
    }
    y[ed.token] = v;
  }
  __syncthreads();
  float best = -INFINITY;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = y[i];
    if (v > best) {  // strided ascending walk: first max per thread is its lowest id
      best = v;
      best_i = i;
    }
  }
  BlockArgmax(best, best_i, scratch, iscratch);
  if (best_i == 0x7fffffff) best_i = 0;  // every logit masked or NaN
  if (p.temperature <= 0.0f) {
    if (threadIdx.x == 0) tokens[p.row] = best_i;
    return;
  }
  const float inv_t = 1.0f / p.temperature;
  float* k = keys + static_cast<size_t>(p.row) * vocab;
  int* val = values + static_cast<size_t>(p.row) * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    k[i] = __expf((y[i] - best) * inv_t);
    val[i] = i;
  }
}

// Sum of keys[0, n) and the first index i < n whose inclusive prefix sum
// exceeds (strict) or reaches `threshold`; n if none. Each thread owns a
// contiguous chunk; a block scan gives the chunk offsets.
using Scan = cub::BlockScan<float, kThreads>;

__device__ int FirstCrossing(const float* keys, int n, float threshold, bool strict,
                             Scan::TempStorage& ts, int* found) {
  const int chunk = (n + kThreads - 1) / kThreads;
  const int b = min(n, threadIdx.x * chunk), e = min(n, b + chunk);
  float local = 0.0f;
  for (int i = b; i < e; ++i) local += keys[i];
  float prefix;
  __syncthreads();
  if (threadIdx.x == 0) *found = n;
  Scan(ts).ExclusiveSum(local, prefix);
  __syncthreads();
  float c = prefix;
  for (int i = b; i < e; ++i) {
    c += keys[i];
    if (strict ? c > threshold : c >= threshold) {
      atomicMin(found, i);
      break;
    }
  }
  __syncthreads();
  return *found;
}

__global__ void __launch_bounds__(kThreads)
    ChooseKernel(const float* __restrict__ sorted_keys, const int* __restrict__ sorted_ids,
                 const SampleRowParams* __restrict__ params, const int* __restrict__ rows, int vocab,
                 int* __restrict__ tokens) {
  __shared__ Scan::TempStorage ts;
  __shared__ float scratch[32];
  __shared__ int found;
  const SampleRowParams p = params[rows[blockIdx.x]];
  const float* k = sorted_keys + static_cast<size_t>(p.row) * vocab;
  const int* ids = sorted_ids + static_cast<size_t>(p.row) * vocab;
  int n = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
  // Masked tokens have key 0 and sort last; never draw them.
  int nonzero = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) nonzero += k[i] > 0.0f;
  n = max(1, static_cast<int>(BlockSum(static_cast<float>(nonzero), scratch)));
  if (p.top_p > 0.0f && p.top_p < 1.0f) {
    float mass = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) mass += k[i];
    mass = BlockSum(mass, scratch);
    n = min(n, FirstCrossing(k, n, p.top_p * mass, false, ts, &found) + 1);
  }
  if (p.min_p > 0.0f) {
    const float thr = p.min_p * k[0];
    int keep = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) keep += k[i] >= thr;
    n = max(1, static_cast<int>(BlockSum(static_cast<float>(keep), scratch)));
  }
  float total = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) total += k[i];
  total = BlockSum(total, scratch);
  const float u = static_cast<float>(SampleUniform(p.seed, p.output_index));
  const int j = min(n - 1, FirstCrossing(k, n, u * total, true, ts, &found));
  if (threadIdx.x == 0) tokens[p.row] = ids[j];
}

__global__ void LogprobKernel(const float* __restrict__ logits, const float* __restrict__ lse,
                              const int* __restrict__ tokens, int num_rows, int vocab,
                              float* __restrict__ out) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < num_rows) out[r] = logits[static_cast<size_t>(r) * vocab + tokens[r]] - lse[r];
}

__global__ void RawSortPrepKernel(const float* __restrict__ logits, const int* __restrict__ rows,
                                  int vocab, float* __restrict__ keys, int* __restrict__ values) {
  const size_t base = static_cast<size_t>(rows[blockIdx.x]) * vocab;
  const float* x = logits + base;
  float* k = keys + base;
  int* v = values + base;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    k[i] = x[i];
    v[i] = i;
  }
}

}  // namespace

absl::Status SamplePrepare(const float* logits, const SampleRowParams* params, int num_rows,
                           const LogitEdit* edits, int vocab, float* processed, float* lse,
                           int* tokens, float* keys, int* values, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  PrepareKernel<<<num_rows, kThreads, 0, stream>>>(logits, params, edits, vocab, processed, lse,
                                                   tokens, keys, values);
  TP_CUDA_CHECK_LAUNCH("SamplePrepareKernel");
  return absl::OkStatus();
}

absl::Status SortTempBytes(int max_segments, int num_items, size_t* bytes) {
  *bytes = 0;
  TP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, *bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), num_items, max_segments,
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr)));
  return absl::OkStatus();
}

absl::Status SortRowsDescending(const float* keys_in, float* keys_out, const int* values_in,
                                int* values_out, int num_segments, int num_items, const int* begin,
                                const int* end, void* temp, size_t temp_bytes, cudaStream_t stream) {
  if (num_segments == 0) return absl::OkStatus();
  TP_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, temp_bytes, keys_in, keys_out, values_in, values_out, num_items, num_segments, begin,
      end, 0, 32, stream));
  return absl::OkStatus();
}

absl::Status SampleFromSorted(const float* sorted_keys, const int* sorted_ids,
                              const SampleRowParams* params, const int* rows, int num_rows,
                              int vocab, int* tokens, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  ChooseKernel<<<num_rows, kThreads, 0, stream>>>(sorted_keys, sorted_ids, params, rows, vocab, tokens);
  TP_CUDA_CHECK_LAUNCH("ChooseKernel");
  return absl::OkStatus();
}

absl::Status GatherLogprobs(const float* logits, const float* lse, const int* tokens, int num_rows,
                            int vocab, float* logprobs, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  LogprobKernel<<<(num_rows + 127) / 128, 128, 0, stream>>>(logits, lse, tokens, num_rows, vocab, logprobs);
  TP_CUDA_CHECK_LAUNCH("LogprobKernel");
  return absl::OkStatus();
}

absl::Status PrepareRawSort(const float* logits, const int* rows, int num_rows, int vocab,
                            float* keys, int* values, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  RawSortPrepKernel<<<num_rows, 256, 0, stream>>>(logits, rows, vocab, keys, values);
  TP_CUDA_CHECK_LAUNCH("RawSortPrepKernel");
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
