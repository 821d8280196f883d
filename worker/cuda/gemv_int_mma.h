// The tensor-core form of the int4 / int8 decode GEMV (gemv_int_mma.cu), which
// GemvInt and GemvIntSiluMul use when the shape allows it. Internal to the
// gemv_int library: callers go through gemv_int.h.
#ifndef TPSERVE_WORKER_CUDA_GEMV_INT_MMA_H_
#define TPSERVE_WORKER_CUDA_GEMV_INT_MMA_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "worker/cuda/gemv_int.h"

namespace tpserve::worker::cuda {

// Whether the tensor-core kernels take this weight at m rows of x: int4 with
// groups a multiple of 128 inputs (a tile of one warp's quad spans 128
// inputs, which must share one scale group) at any row count; int8 with
// groups a multiple of 64 above kGemvIntMaxRows rows (at one or two the
// scalar kernels are faster); never with TPSERVE_GEMV_INT_MMA=0 (read once,
// for A/B runs). The shape itself is checked by the caller (CheckIntShape).
bool GemvIntMmaTakes(const IntWeightView& w, int m);

// GemvInt / GemvIntSiluMul on the tensor cores; same contracts (m up to
// GemvIntMmaMaxRows(w.bits): 64 for int4 in two passes, 32 for int8; x in
// canonical order) for the weights and row counts GemvIntMmaTakes accepts.
absl::Status GemvIntMma(const __nv_bfloat16* x, const IntWeightView& w, const __nv_bfloat16* bias, void* out,
                        bool out_fp32, int m, int n, int k, cudaStream_t stream);
absl::Status GemvIntMmaSiluMul(const __nv_bfloat16* x, const IntWeightView& w, __nv_bfloat16* out, int m,
                               int inter, int k, cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMV_INT_MMA_H_
