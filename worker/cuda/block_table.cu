#include "worker/cuda/block_table.h"

#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {
namespace {

__global__ void ApplyEditsKernel(const int2* __restrict__ edits, int num_edits, int* __restrict__ table) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < num_edits) table[edits[i].x] = edits[i].y;
}

}  // namespace

absl::Status ApplyBlockTableEdits(const int* edits, int num_edits, int* table, cudaStream_t stream) {
  if (num_edits <= 0) return absl::OkStatus();
  constexpr int kThreads = 256;
  ApplyEditsKernel<<<(num_edits + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      reinterpret_cast<const int2*>(edits), num_edits, table);
  TP_CUDA_CHECK(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace tpserve::worker::cuda
