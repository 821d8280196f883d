// Linear layers through cuBLASLt: out = x · Wᵀ (+ bias in the epilogue), bf16
// inputs, fp32 accumulation, bf16 or fp32 output. Weights stay in HF's
// [out_features, in_features] row-major layout.
#ifndef TPSERVE_WORKER_CUDA_GEMM_H_
#define TPSERVE_WORKER_CUDA_GEMM_H_

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>

#include "absl/status/statusor.h"
#include "worker/cuda/device_buffer.h"
#include "worker/cuda/gemv_int.h"

namespace tpserve::worker::cuda {

// Whether Gemm::LinearIntSiluMul takes m rows of x for this weight (else
// the caller runs LinearInt and SiluAndMul).
bool IntSiluMulFused(const IntWeightView& w, int m);

// One cuBLASLt handle with its workspace and a cache of matmul plans (the
// heuristic query costs more than a small GEMM, so it runs once per shape).
// Algorithm search: the first time a shape class -- (rows rounded up to a
// power of two, n, k, bias, output type) -- runs outside CUDA graph capture,
// up to kSearchCandidates of cuBLASLt's heuristic candidates are timed on the
// call's own buffers and the fastest is kept for every row count of the class
// (prefill steps bring a new row count almost every time, so per-shape search
// would never pay off). Not thread-safe; one per stream.
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
  // The same with FP8 (E4M3) weights and one float scale per weight row
  // (`--quantization fp8`). Decode-sized row counts stream the weights
  // through GemvFp8; larger ones quantize x per row (token) into the FP8
  // scratch, multiply in FP8 on cuBLASLt (sm_89+) and apply both scales and
  // the bias in ScaleFp8Product. Needs ReserveFp8(>= m, >= k) first.
  absl::Status LinearFp8(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                         const __nv_bfloat16* bias, void* out, bool out_fp32, int m, int n, int k,
                         cudaStream_t stream);
  // Allocates LinearFp8's activation scratch for up to `rows` x `k` inputs
  // (before any graph capture: allocation cannot be captured).
  absl::Status ReserveFp8(int rows, int k);
  // The same with packed int4/int8 weights (AWQ, GPTQ; gemv_int.h). Rows up
  // to GemvIntRows(w) (2 on the scalar kernels; on the tensor-core ones 64
  // for int4, 32 for int8: gemv_int.h) stream the codes through GemvInt
  // (act-order inputs gathered into the weight's order first); from there
  // up to GemmIntMaxRows the fused GEMM multiplies the codes on the tensor
  // cores (gemm_int.h; not act-order weights); more rows dequantize the
  // weight into a bf16 scratch and run cuBLASLt on it (bf16 speed, plus the
  // dequantization pass). Needs ReserveInt first.
  absl::Status LinearInt(const __nv_bfloat16* x, const IntWeightView& w, const __nv_bfloat16* bias, void* out,
                         bool out_fp32, int m, int n, int k, cudaStream_t stream);
  // gate_up + SiLU·mul on packed [gate; up] rows ([2 * inter, k]):
  // GemvIntSiluMul up to GemvIntRows(w) rows, GemmIntSiluMul where
  // GemmIntTakes; IntSiluMulFused(w, m) says whether m is either.
  absl::Status LinearIntSiluMul(const __nv_bfloat16* x, const IntWeightView& w, __nv_bfloat16* out, int m,
                                int inter, int k, cudaStream_t stream);
  // Allocates LinearInt's scratch: the largest weight's `weight_elems` bf16
  // values, kGemvInt4MmaMaxRows x `k` gathered inputs (the most rows
  // GemvIntRows gives any format) and the fused GEMM's split-k workspace
  // (kGemmIntWorkspaceFloats), before any graph capture.
  absl::Status ReserveInt(int64_t weight_elems, int k);
  // Test hook: send every shape to cuBLASLt.
  void set_force_cublas(bool force) { force_cublas_ = force; }
  // Turns the algorithm search off (cuBLASLt's first heuristic choice only)
  // or on (the default; TPSERVE_GEMM_SEARCH=0 in the environment turns it off).
  void set_algo_search(bool on) { search_ = on; }

  // Candidates timed per shape class.
  static constexpr int kSearchCandidates = 8;

 private:
  // m (or its class), n, k, bias, fp32 out, FP8 operands.
  using Key = std::tuple<int, int, int, bool, bool, bool>;
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo;
    bool searched = false;  // algo comes from the shape class's search
  };
  Gemm() = default;
  absl::StatusOr<Plan*> GetPlan(int m, int n, int k, bool bias, bool out_fp32, bool fp8);
  // Plan lookup, search and run shared by Linear and LinearFp8.
  absl::Status RunPlanned(const void* x, const void* w, const __nv_bfloat16* bias, void* out, bool out_fp32,
                          int m, int n, int k, bool fp8, cudaStream_t stream);
  // Gives `p` its class's searched algorithm, searching first if the class
  // has none; leaves the heuristic one while `stream` is capturing a graph.
  absl::Status Search(Plan& p, const Key& cls, const void* x, const void* w, void* out, cudaStream_t stream);
  cublasStatus_t Run(const Plan& p, const cublasLtMatmulAlgo_t& algo, const void* x, const void* w, void* out,
                     cudaStream_t stream);

  cublasLtHandle_t handle_ = nullptr;
  bool force_cublas_ = false;
  bool search_ = true;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  DeviceBuffer workspace_;
  DeviceBuffer fp8_x_, fp8_x_scale_;  // LinearFp8's quantized activations
  int fp8_rows_ = 0, fp8_k_ = 0;
  DeviceBuffer int_w_, int_x_;  // LinearInt's dequantized weight and gathered inputs
  DeviceBuffer int_split_;      // the fused int GEMM's split-k sums
  size_t int_split_floats_ = 0;
  int64_t int_w_elems_ = 0;
  int int_k_ = 0;
  std::map<Key, Plan> plans_;
  std::map<Key, cublasLtMatmulAlgo_t> searched_;
};

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_GEMM_H_
