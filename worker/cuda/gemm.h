// Linear layers through cuBLASLt: out = x · Wᵀ (+ bias in the epilogue), bf16
// inputs, fp32 accumulation, bf16 or fp32 output. Weights stay in HF's
// [out_features, in_features] row-major layout.
#ifndef TPSERVE_WORKER_CUDA_GEMM_H_
#define TPSERVE_WORKER_CUDA_GEMM_H_

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "absl/status/statusor.h"
#include "worker/cuda/device_buffer.h"

namespace tpserve::worker::cuda {

// One cuBLASLt handle with its workspace and a cache of matmul plans (the
// heuristic query costs more than a small GEMM, so it runs once per shape).
// Not thread-safe; one per stream.
class Gemm {
 public:
  // Creates the handle and a workspace of `workspace_bytes`.
  static absl::StatusOr<std::unique_ptr<Gemm>> Create(size_t workspace_bytes = 32 << 20);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // out[m, n] = x[m, k] · w[n, k]ᵀ + bias[n] (bias may be null). `out` is
  // bf16, or float when `out_fp32`. Rows are dense (leading dimension k for x
  // and w, n for out).
  // Rows up to kGemvMaxRows go to the streaming Gemv kernel, the rest to
  // cuBLASLt.
  absl::Status Linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                      void* out, bool out_fp32, int m, int n, int k, cudaStream_t stream);
  // Test hook: send every shape to cuBLASLt.
  void set_force_cublas(bool force) { force_cublas_ = force; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo;
  };
  Gemm() = default;
  absl::StatusOr<Plan*> GetPlan(int m, int n, int k, bool bias, bool out_fp32);

  cublasLtHandle_t handle_ = nullptr;
  bool force_cublas_ = false;
  DeviceBuffer workspace_;
  std::map<std::tuple<int, int, int, bool, bool>, Plan> plans_;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMM_H_
