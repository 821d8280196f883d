#include "worker/cuda/sampling.h"

#include <algorithm>

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
  WarpArgmax(v, i);
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
  WarpArgmax(v, i);
}

// SamplePrepare splits every row's vocabulary into `parts` slices, one block
// each, so that a small batch does not leave the work of three passes over
// ~150k logits to one SM per row (90 us per step at batch 1 on an H200).
// Stage A: per slice, the raw maximum and sum of exp(x - max) (for lse), the
// edits that fall in the slice, and the argmax of the edited logits.
constexpr int kPrepThreads = 256;
constexpr int kMaxPrepParts = 64;

struct PrepPartial {
  float max;   // of the raw logits in the slice (-inf if none)
  float sum;   // of exp(x - max) over the slice
  float best;  // largest edited logit (-inf if none)
  int best_i;  // its lowest id; 0x7fffffff if none
};

__device__ __forceinline__ void SliceOf(int vocab, int parts, int part, int* b, int* e) {
  const int per = (vocab + parts - 1) / parts;
  *b = min(vocab, part * per);
  *e = min(vocab, *b + per);
}

__global__ void __launch_bounds__(kPrepThreads)
    PrepareSliceKernel(const float* __restrict__ logits, const SampleRowParams* __restrict__ params,
                       const LogitEdit* __restrict__ edits, int vocab, float* __restrict__ processed,
                       PrepPartial* __restrict__ partials) {
  __shared__ float scratch[32];
  __shared__ int iscratch[32];
  const SampleRowParams p = params[blockIdx.x];
  const int parts = gridDim.y;
  int b, e;
  SliceOf(vocab, parts, blockIdx.y, &b, &e);
  const float* x = logits + static_cast<size_t>(p.row) * vocab;
  float* y = processed + static_cast<size_t>(p.row) * vocab;
  float mx = -INFINITY;
  for (int i = b + threadIdx.x; i < e; i += blockDim.x) {
    const float v = x[i];
    if (!p.premasked) y[i] = v;
    mx = fmaxf(mx, v);
  }
  mx = BlockMax(mx, scratch);
  float sum = 0.0f;
  if (mx != -INFINITY) {
    for (int i = b + threadIdx.x; i < e; i += blockDim.x) sum += __expf(x[i] - mx);
  }
  sum = BlockSum(sum, scratch);
  __syncthreads();
  // Edits name distinct tokens, so threads never collide; each slice applies
  // the ones inside it.
  for (int k = p.edit_begin + threadIdx.x; k < p.edit_end; k += blockDim.x) {
    const LogitEdit ed = edits[k];
    if (ed.token < b || ed.token >= e) continue;
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
  for (int i = b + threadIdx.x; i < e; i += blockDim.x) {
    const float v = y[i];
    if (v > best) {  // strided ascending walk: first max per thread is its lowest id
      best = v;
      best_i = i;
    }
  }
  BlockArgmax(best, best_i, scratch, iscratch);
  if (threadIdx.x == 0) partials[blockIdx.x * parts + blockIdx.y] = PrepPartial{mx, sum, best, best_i};
}

// Stage B: every slice block combines its row's partials (a few dozen: cheap
// to repeat); slice 0 writes lse and, for greedy rows, the token; sampling
// rows get keys = exp((y - best) / T) and values = ids over each slice.
__global__ void __launch_bounds__(kPrepThreads)
    PrepareFinishKernel(const SampleRowParams* __restrict__ params, int vocab,
                        const float* __restrict__ processed, const PrepPartial* __restrict__ partials,
                        float* __restrict__ lse, int* __restrict__ tokens, float* __restrict__ keys,
                        int* __restrict__ values) {
  const SampleRowParams p = params[blockIdx.x];
  const int parts = gridDim.y;
  if (p.temperature <= 0.0f && blockIdx.y != 0) return;
  __shared__ float s_best;
  if (threadIdx.x < 32) {
    // One warp combines: the raw maximum and the rescaled sums (lse), and
    // the argmax with ties to the lower id.
    float mx = -INFINITY, best = -INFINITY;
    int best_i = 0x7fffffff;
    for (int j = threadIdx.x; j < parts; j += 32) {
      const PrepPartial q = partials[blockIdx.x * parts + j];
      mx = fmaxf(mx, q.max);
      KeepArgmax(q.best, q.best_i, best, best_i);
    }
    mx = WarpMax(mx);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < parts; j += 32) {
      const PrepPartial q = partials[blockIdx.x * parts + j];
      if (q.max != -INFINITY) sum += q.sum * __expf(q.max - mx);
    }
    sum = WarpSum(sum);
    WarpArgmax(best, best_i);
    if (threadIdx.x == 0) {
      if (blockIdx.y == 0) {
        lse[p.row] = mx + logf(sum);
        if (p.temperature <= 0.0f) tokens[p.row] = best_i == 0x7fffffff ? 0 : best_i;  // all masked or NaN: 0
      }
      s_best = best;
    }
  }
  if (p.temperature <= 0.0f) return;
  __syncthreads();
  const float best = s_best, inv_t = 1.0f / p.temperature;
  int b, e;
  SliceOf(vocab, parts, blockIdx.y, &b, &e);
  const float* y = processed + static_cast<size_t>(p.row) * vocab;
  float* k = keys + static_cast<size_t>(p.row) * vocab;
  int* val = values + static_cast<size_t>(p.row) * vocab;
  for (int i = b + threadIdx.x; i < e; i += blockDim.x) {
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

int SamplePrepareParts(int num_rows, int vocab) {
  // Enough slices for ~512 blocks over the chunk's rows, each of at least a
  // few thousand logits.
  const int by_blocks = (512 + std::max(1, num_rows) - 1) / std::max(1, num_rows);
  const int by_size = std::max(1, vocab / 2048);
  return std::clamp(std::min(by_blocks, by_size), 1, kMaxPrepParts);
}

size_t SamplePrepareWorkspaceBytes(int max_rows) {
  return static_cast<size_t>(std::max(1, max_rows)) * kMaxPrepParts * sizeof(PrepPartial);
}

absl::Status SamplePrepare(const float* logits, const SampleRowParams* params, int num_rows,
                           const LogitEdit* edits, int vocab, float* processed, float* lse,
                           int* tokens, float* keys, int* values, void* workspace, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  const dim3 grid(num_rows, SamplePrepareParts(num_rows, vocab));
  auto* partials = static_cast<PrepPartial*>(workspace);
  PrepareSliceKernel<<<grid, kPrepThreads, 0, stream>>>(logits, params, edits, vocab, processed, partials);
  TP_CUDA_CHECK_LAUNCH("PrepareSliceKernel");
  PrepareFinishKernel<<<grid, kPrepThreads, 0, stream>>>(params, vocab, processed, partials, lse, tokens,
                                                         keys, values);
  TP_CUDA_CHECK_LAUNCH("PrepareFinishKernel");
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
