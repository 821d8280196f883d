#include "worker/cuda/gemm.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/fp8_quant.h"
#include "worker/cuda/gemm_int.h"
#include "worker/cuda/gemv.h"

namespace tpserve::worker::cuda {
namespace {

// Row counts share a searched algorithm up to the next power of two.
int RowClass(int m) {
  int c = 1;
  while (c < m) c <<= 1;
  return c;
}

// Timed runs per candidate, after one untimed run.
constexpr int kSearchReps = 3;

}  // namespace

absl::StatusOr<std::unique_ptr<Gemm>> Gemm::Create(size_t workspace_bytes) {
  std::unique_ptr<Gemm> g(new Gemm());
  TP_CUDA_CHECK(cublasLtCreate(&g->handle_));
  TP_ASSIGN_OR_RETURN(g->workspace_, DeviceBuffer::Allocate(workspace_bytes));
  TP_CUDA_CHECK(cudaEventCreate(&g->start_));
  TP_CUDA_CHECK(cudaEventCreate(&g->stop_));
  g->search_ = EnvSwitch("TPSERVE_GEMM_SEARCH", true);
  return g;
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (handle_ != nullptr) cublasLtDestroy(handle_);
  if (start_ != nullptr) cudaEventDestroy(start_);
  if (stop_ != nullptr) cudaEventDestroy(stop_);
}

// Column-major view: outᵀ[n, m] = W[n, k] (stored as a k x n column-major
// matrix, hence op T) times xᵀ (k x m column-major, op N). The bias is then
// a per-row vector of outᵀ, which is what the BIAS epilogue adds.
// FP8 operands (both E4M3) use the same "TN" layout, which is the one
// cuBLASLt's FP8 kernels require; their scales stay at the default 1.
absl::StatusOr<Gemm::Plan*> Gemm::GetPlan(int m, int n, int k, bool bias, bool out_fp32, bool fp8) {
  auto key = std::make_tuple(m, n, k, bias, out_fp32, fp8);
  auto it = plans_.find(key);
  if (it != plans_.end()) return &it->second;
  Plan p;
  TP_CUDA_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  TP_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  TP_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    TP_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    const cudaDataType_t bt = CUDA_R_16BF;
    TP_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  const cudaDataType_t ct = out_fp32 ? CUDA_R_32F : CUDA_R_16BF;
  const cudaDataType_t in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  TP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.a, in, k, n, k));
  TP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.b, in, k, m, k));
  TP_CUDA_CHECK(cublasLtMatrixLayoutCreate(&p.c, ct, n, m, n));
  cublasLtMatmulPreference_t pref;
  TP_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_.bytes();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
    return absl::InternalError(absl::StrCat("cuBLASLt has no algorithm for GEMM m=", m, " n=", n,
                                            " k=", k, " bias=", bias, " fp32_out=", out_fp32, " fp8=", fp8));
  }
  p.algo = result.algo;
  return &plans_.emplace(key, p).first->second;
}

cublasStatus_t Gemm::Run(const Plan& p, const cublasLtMatmulAlgo_t& algo, const void* x, const void* w, void* out,
                         cudaStream_t stream) {
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(handle_, p.desc, &alpha, w, p.a, x, p.b, &beta, out, p.c, out, p.c, &algo,
                        workspace_.data(), workspace_.bytes(), stream);
}

absl::Status Gemm::Search(Plan& p, const Key& cls, const void* x, const void* w, void* out, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  TP_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) return absl::OkStatus();  // no timing inside a graph
  p.searched = true;
  if (auto it = searched_.find(cls); it != searched_.end()) {
    // The class's winner, unless it cannot run this exact shape.
    cublasLtMatmulHeuristicResult_t check;
    if (cublasLtMatmulAlgoCheck(handle_, p.desc, p.a, p.b, p.c, p.c, &it->second, &check) ==
            CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= workspace_.bytes()) {
      p.algo = it->second;
    }
    return absl::OkStatus();
  }
  cublasLtMatmulPreference_t pref;
  TP_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_.bytes();
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulHeuristicResult_t results[kSearchCandidates];
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref,
                                                          kSearchCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS) found = 0;
  float best_ms = 0.0f;
  bool have_best = false;
  for (int i = 0; i < found; ++i) {
    if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
    // The untimed run warms up and weeds out a candidate that cannot launch.
    if (Run(p, results[i].algo, x, w, out, stream) != CUBLAS_STATUS_SUCCESS) continue;
    TP_CUDA_CHECK(cudaEventRecord(start_, stream));
    for (int r = 0; r < kSearchReps; ++r) TP_CUDA_CHECK(Run(p, results[i].algo, x, w, out, stream));
    TP_CUDA_CHECK(cudaEventRecord(stop_, stream));
    TP_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    TP_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    if (!have_best || ms < best_ms) {
      best_ms = ms;
      p.algo = results[i].algo;
      have_best = true;
    }
  }
  searched_[cls] = p.algo;
  return absl::OkStatus();
}

absl::Status Gemm::Linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias,
                          void* out, bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (m < 0 || n <= 0 || k <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("GEMM shape m=", m, " n=", n, " k=", k));
  }
  if (m == 0) return absl::OkStatus();
  // One or two rows are purely bandwidth bound and the streaming GEMV beats
  // the library there (H200, 7B: 5.1 vs 5.6 ms per batch-1 step); from about
  // four rows on, its per-row bf16 conversions make it ALU bound (8 rows:
  // 10.8 vs 5.8 ms), so cuBLASLt takes over.
  if (m <= kGemvFastRows && k % 8 == 0 && !force_cublas_) return Gemv(x, w, bias, out, out_fp32, m, n, k, stream);
  return RunPlanned(x, w, bias, out, out_fp32, m, n, k, false, stream);
}

absl::Status Gemm::RunPlanned(const void* x, const void* w, const __nv_bfloat16* bias, void* out, bool out_fp32,
                              int m, int n, int k, bool fp8, cudaStream_t stream) {
  TP_ASSIGN_OR_RETURN(Plan * p, GetPlan(m, n, k, bias != nullptr, out_fp32, fp8));
  if (bias != nullptr) {
    TP_CUDA_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  if (search_ && !p->searched) {
    TP_RETURN_IF_ERROR(Search(*p, Key(RowClass(m), n, k, bias != nullptr, out_fp32, fp8), x, w, out, stream));
  }
  TP_CUDA_CHECK(Run(*p, p->algo, x, w, out, stream));
  return absl::OkStatus();
}

absl::Status Gemm::ReserveFp8(int rows, int k) {
  if (rows <= fp8_rows_ && k <= fp8_k_) return absl::OkStatus();
  rows = std::max(rows, fp8_rows_);
  k = std::max(k, fp8_k_);
  TP_ASSIGN_OR_RETURN(fp8_x_, DeviceBuffer::Allocate(static_cast<size_t>(rows) * k));
  TP_ASSIGN_OR_RETURN(fp8_x_scale_, DeviceBuffer::Allocate(static_cast<size_t>(rows) * sizeof(float)));
  fp8_rows_ = rows;
  fp8_k_ = k;
  return absl::OkStatus();
}

absl::Status Gemm::LinearFp8(const __nv_bfloat16* x, const __nv_fp8_e4m3* w, const float* w_scale,
                             const __nv_bfloat16* bias, void* out, bool out_fp32, int m, int n, int k,
                             cudaStream_t stream) {
  if (m < 0 || n <= 0 || k <= 0 || k % 16 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("FP8 GEMM shape m=", m, " n=", n, " k=", k,
                                                   " (k must be a multiple of 16)"));
  }
  if (m == 0) return absl::OkStatus();
  if (m <= kGemvFastRows && !force_cublas_) return GemvFp8(x, w, w_scale, bias, out, out_fp32, m, n, k, stream);
  if (m > fp8_rows_ || k > fp8_k_) {
    return absl::FailedPreconditionError(absl::StrCat("FP8 GEMM of ", m, " x ", k, " inputs over the reserved ",
                                                      fp8_rows_, " x ", fp8_k_));
  }
  auto* xq = fp8_x_.as<__nv_fp8_e4m3>();
  float* x_scale = fp8_x_scale_.as<float>();
  TP_RETURN_IF_ERROR(QuantizeRowsFp8(x, m, k, xq, x_scale, stream));
  TP_RETURN_IF_ERROR(RunPlanned(xq, w, nullptr, out, out_fp32, m, n, k, true, stream));
  return ScaleFp8Product(out, out_fp32, x_scale, w_scale, bias, m, n, stream);
}

absl::Status Gemm::ReserveInt(int64_t weight_elems, int k) {
  if (weight_elems > int_w_elems_) {
    TP_ASSIGN_OR_RETURN(int_w_, DeviceBuffer::Allocate(static_cast<size_t>(weight_elems) * 2));
    int_w_elems_ = weight_elems;
  }
  if (k > int_k_) {
    TP_ASSIGN_OR_RETURN(int_x_, DeviceBuffer::Allocate(static_cast<size_t>(kGemvInt4MmaMaxRows) * k * 2));
    int_k_ = k;
  }
  if (int_split_floats_ == 0) {
    TP_ASSIGN_OR_RETURN(int_split_, DeviceBuffer::Allocate(kGemmIntWorkspaceFloats * sizeof(float)));
    int_split_floats_ = kGemmIntWorkspaceFloats;
  }
  return absl::OkStatus();
}

absl::Status Gemm::LinearInt(const __nv_bfloat16* x, const IntWeightView& w, const __nv_bfloat16* bias, void* out,
                             bool out_fp32, int m, int n, int k, cudaStream_t stream) {
  if (m < 0) return absl::InvalidArgumentError(absl::StrCat("int GEMM rows ", m));
  if (m == 0) return absl::OkStatus();
  if (!force_cublas_ && GemmIntTakes(w, m)) {
    return GemmInt(x, w, bias, out, out_fp32, m, n, k, int_split_.as<float>(), int_split_floats_, stream);
  }
  if (m <= GemvIntRows(w) && !force_cublas_) {
    if (w.perm == nullptr) return GemvInt(x, w, bias, out, out_fp32, m, n, k, stream);
    if (k > int_k_) {
      return absl::FailedPreconditionError(absl::StrCat("int GEMV of ", k, " inputs over the reserved ", int_k_));
    }
    TP_RETURN_IF_ERROR(GatherColumns(x, w.perm, int_x_.as<__nv_bfloat16>(), m, k, stream));
    return GemvInt(int_x_.as<__nv_bfloat16>(), w, bias, out, out_fp32, m, n, k, stream);
  }
  if (static_cast<int64_t>(n) * k > int_w_elems_) {
    return absl::FailedPreconditionError(absl::StrCat("int weight [", n, ", ", k, "] over the reserved ",
                                                      int_w_elems_, " elements"));
  }
  TP_RETURN_IF_ERROR(DequantizeInt(w, n, k, int_w_.as<__nv_bfloat16>(), stream));
  return RunPlanned(x, int_w_.data(), bias, out, out_fp32, m, n, k, false, stream);
}

bool IntSiluMulFused(const IntWeightView& w, int m) { return m <= GemvIntRows(w) || GemmIntTakes(w, m); }

absl::Status Gemm::LinearIntSiluMul(const __nv_bfloat16* x, const IntWeightView& w, __nv_bfloat16* out, int m,
                                    int inter, int k, cudaStream_t stream) {
  if (m < 1 || !IntSiluMulFused(w, m)) {
    return absl::InvalidArgumentError(absl::StrCat("int gate_up + SiLU: 1 to ", GemvIntRows(w), " rows",
                                                   GemmIntFits(w) ? absl::StrCat(", or ", GemmIntMinRows(w), " to ",
                                                                                 GemmIntMaxRows(w))
                                                                  : "",
                                                   ", not ", m));
  }
  if (GemmIntTakes(w, m)) {
    return GemmIntSiluMul(x, w, out, m, inter, k, int_split_.as<float>(), int_split_floats_, stream);
  }
  if (w.perm == nullptr) return GemvIntSiluMul(x, w, out, m, inter, k, stream);
  if (k > int_k_) {
    return absl::FailedPreconditionError(absl::StrCat("int GEMV of ", k, " inputs over the reserved ", int_k_));
  }
  TP_RETURN_IF_ERROR(GatherColumns(x, w.perm, int_x_.as<__nv_bfloat16>(), m, k, stream));
  return GemvIntSiluMul(int_x_.as<__nv_bfloat16>(), w, out, m, inter, k, stream);
}

}  // namespace tpserve::worker::cuda
