#include "worker/cuda/gemm.h"

#include <cmath>
#include <deque>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/gemv.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;

// CPU reference of x[m, k] · w[n, k]ᵀ in double.
std::vector<float> ReferenceGemm(const std::vector<bf16>& x, const std::vector<bf16>& w, int m, int n, int k) {
  auto fx = testing::ToFloat(x), fw = testing::ToFloat(w);
  std::vector<float> want(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double acc = 0.0;
      const float* xr = &fx[static_cast<size_t>(i) * k];
      const float* wr = &fw[static_cast<size_t>(j) * k];
      for (int t = 0; t < k; ++t) acc += static_cast<double>(xr[t]) * wr[t];
      want[static_cast<size_t>(i) * n + j] = static_cast<float>(acc);
    }
  }
  return want;
}

class GemmTest : public ::testing::TestWithParam<std::tuple<int, int, int, bool, bool, bool>> {};

TEST_P(GemmTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [m, n, k, with_bias, fp32, force_cublas] = GetParam();
  std::mt19937 rng(m * 7 + n * 3 + k);
  auto x = testing::RandomBf16(m * k, rng), w = testing::RandomBf16(n * k, rng, 0.1f),
       b = testing::RandomBf16(n, rng);
  DevArray<bf16> dx(x), dw(w), db(b);
  DevArray<char> dout(static_cast<size_t>(m) * n * (fp32 ? 4 : 2));
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  (*gemm)->set_force_cublas(force_cublas);
  ASSERT_TRUE((*gemm)->Linear(dx.get(), dw.get(), with_bias ? db.get() : nullptr, dout.get(), fp32, m,
                              n, k, nullptr).ok());
  auto raw = dout.Download();
  std::vector<float> got(static_cast<size_t>(m) * n), want(got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    got[i] = fp32 ? reinterpret_cast<float*>(raw.data())[i]
                  : __bfloat162float(reinterpret_cast<bf16*>(raw.data())[i]);
  }
  want = ReferenceGemm(x, w, m, n, k);
  if (with_bias) {
    for (size_t i = 0; i < want.size(); ++i) want[i] += __bfloat162float(b[i % n]);
  }
  EXPECT_LT(testing::MaxRelError(got, want), fp32 ? 1e-4 : 8e-3);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmTest,
                         // Rows <= 8 take the Gemv path unless forced to cuBLASLt.
                         ::testing::Values(std::make_tuple(1, 384, 256, true, false, false),
                                           std::make_tuple(1, 384, 256, true, false, true),
                                           std::make_tuple(17, 512, 256, false, false, false),
                                           std::make_tuple(3, 4096, 256, false, true, false),
                                           std::make_tuple(3, 4096, 256, false, true, true),
                                           std::make_tuple(8, 1000, 1048, true, false, false),
                                           std::make_tuple(9, 1000, 1048, true, false, false),
                                           std::make_tuple(64, 1152, 896, true, false, false),
                                           std::make_tuple(5, 3584, 1024, false, false, false),
                                           std::make_tuple(2, 513, 18944, false, false, false)));

// Gemv directly for every row count it accepts (Linear only routes the
// smallest ones to it).
TEST(GemvTest, AllRowCountsMatchCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  const int n = 333, k = 1040;
  std::mt19937 rng(21);
  for (int m = 1; m <= kGemvMaxRows; ++m) {
    auto x = testing::RandomBf16(m * k, rng), w = testing::RandomBf16(n * k, rng, 0.1f), b = testing::RandomBf16(n, rng);
    DevArray<bf16> dx(x), dw(w), db(b);
    DevArray<float> dout(m * n);
    ASSERT_TRUE(Gemv(dx.get(), dw.get(), db.get(), dout.get(), true, m, n, k, nullptr).ok());
    auto got = dout.Download();
    auto fx = testing::ToFloat(x), fw = testing::ToFloat(w), fb = testing::ToFloat(b);
    std::vector<float> want(m * n);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        double acc = fb[j];
        for (int t = 0; t < k; ++t) acc += static_cast<double>(fx[i * k + t]) * fw[j * k + t];
        want[i * n + j] = static_cast<float>(acc);
      }
    }
    EXPECT_LT(testing::MaxRelError(got, want), 1e-4) << "m=" << m;
  }
  EXPECT_FALSE(Gemv(nullptr, nullptr, nullptr, nullptr, true, 9, n, k, nullptr).ok());
}

TEST(GemvTest, FusedSiluMulMatchesUnfusedReference) {
  TP_SKIP_WITHOUT_GPU();
  const int inter = 300, k = 1032;
  std::mt19937 rng(22);
  for (int m = 1; m <= 4; ++m) {
    auto x = testing::RandomBf16(m * k, rng), w = testing::RandomBf16(2 * inter * k, rng, 0.2f);
    DevArray<bf16> dx(x), dw(w), dout(m * inter);
    ASSERT_TRUE(GemvSiluMul(dx.get(), dw.get(), dout.get(), m, inter, k, nullptr).ok());
    auto got = testing::ToFloat(dout.Download());
    auto fx = testing::ToFloat(x), fw = testing::ToFloat(w);
    std::vector<float> want(m * inter);
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < inter; ++j) {
        double g = 0, u = 0;
        for (int t = 0; t < k; ++t) {
          g += static_cast<double>(fx[i * k + t]) * fw[static_cast<size_t>(j) * k + t];
          u += static_cast<double>(fx[i * k + t]) * fw[static_cast<size_t>(inter + j) * k + t];
        }
        const float gb = testing::RoundBf16(g), ub = testing::RoundBf16(u);
        want[i * inter + j] = testing::RoundBf16(testing::RoundBf16(gb / (1.0f + std::exp(-gb))) * ub);
      }
    }
    // A bf16 rounding boundary may fall differently than in double: 1 ulp.
    EXPECT_LT(testing::MaxRelError(got, want), 1e-2) << "m=" << m;
  }
  EXPECT_FALSE(GemvSiluMul(nullptr, nullptr, nullptr, 5, inter, k, nullptr).ok());
}

// A chain of dependent GEMVs launched with programmatic dependent launch
// (as in a decode step) must give bit-for-bit what ordinary launches give:
// each kernel may start early only for its weight prefetch and must wait for
// its input. The intermediates are poisoned with NaN first, so a kernel that
// read its input too early would show.
TEST(GemvTest, DependentLaunchChainEqualsOrdinaryLaunches) {
  TP_SKIP_WITHOUT_GPU();
  const int n = 2048, layers = 12;
  std::mt19937 rng(23);
  std::deque<DevArray<bf16>> w;
  for (int l = 0; l < layers; ++l) w.emplace_back(testing::RandomBf16(static_cast<size_t>(n) * n, rng, 0.04f));
  DevArray<bf16> x(testing::RandomBf16(n, rng));
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  auto run = [&](bool pdl) {
    std::deque<DevArray<bf16>> act;
    for (int l = 0; l < layers; ++l) act.emplace_back(static_cast<size_t>(n));  // 0xFF: NaN
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const PdlStepScope scope(pdl);
    for (int l = 0; l < layers; ++l) {
      EXPECT_TRUE(Gemv(l == 0 ? x.get() : act[l - 1].get(), w[l].get(), nullptr, act[l].get(), false, 1, n, n,
                       stream).ok());
    }
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    return act.back().Download();
  };
  const auto plain = run(false), pdl = run(true);
  ASSERT_EQ(plain.size(), pdl.size());
  int nan = 0, differ = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    const float a = __bfloat162float(plain[i]), b = __bfloat162float(pdl[i]);
    nan += std::isnan(a) || std::isnan(b);
    differ += a != b;
  }
  EXPECT_EQ(nan, 0);
  EXPECT_EQ(differ, 0);
  cudaStreamDestroy(stream);
}

// Row counts of one class (here 513..1024) share the searched algorithm, and
// whatever the search picks computes the same function as the heuristic's
// first choice.
TEST(GemmTest, SearchedAlgorithmsMatchCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  const int n = 768, k = 512;
  std::mt19937 rng(31);
  auto w = testing::RandomBf16(static_cast<size_t>(n) * k, rng, 0.1f);
  DevArray<bf16> dw(w);
  auto searched = Gemm::Create(), plain = Gemm::Create();
  ASSERT_TRUE(searched.ok() && plain.ok());
  (*searched)->set_algo_search(true);
  (*plain)->set_algo_search(false);
  for (int m : {1000, 600, 1024}) {
    auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng);
    DevArray<bf16> dx(x);
    DevArray<float> a(static_cast<size_t>(m) * n), b(static_cast<size_t>(m) * n);
    ASSERT_TRUE((*searched)->Linear(dx.get(), dw.get(), nullptr, a.get(), true, m, n, k, nullptr).ok());
    ASSERT_TRUE((*plain)->Linear(dx.get(), dw.get(), nullptr, b.get(), true, m, n, k, nullptr).ok());
    const auto want = ReferenceGemm(x, w, m, n, k);
    EXPECT_LT(testing::MaxRelError(a.Download(), want), 1e-4) << "searched, m=" << m;
    EXPECT_LT(testing::MaxRelError(b.Download(), want), 1e-4) << "heuristic, m=" << m;
  }
}

// A shape first seen while a stream captures a CUDA graph (decode graphs)
// must not be timed there: the capture succeeds and the graph computes it.
TEST(GemmTest, NoSearchDuringGraphCapture) {
  TP_SKIP_WITHOUT_GPU();
  const int m = 48, n = 640, k = 256;
  std::mt19937 rng(32);
  auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng);
  auto w = testing::RandomBf16(static_cast<size_t>(n) * k, rng, 0.1f);
  DevArray<bf16> dx(x), dw(w);
  DevArray<float> out(static_cast<size_t>(m) * n);
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok());
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  const absl::Status st = (*gemm)->Linear(dx.get(), dw.get(), nullptr, out.get(), true, m, n, k, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_TRUE(st.ok()) << st;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_LT(testing::MaxRelError(out.Download(), ReferenceGemm(x, w, m, n, k)), 1e-4);
  // An eager call of the same shape afterwards searches and still agrees.
  ASSERT_TRUE((*gemm)->Linear(dx.get(), dw.get(), nullptr, out.get(), true, m, n, k, stream).ok());
  EXPECT_LT(testing::MaxRelError(out.Download(), ReferenceGemm(x, w, m, n, k)), 1e-4);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(GemmTest, RejectsBadShape) {
  TP_SKIP_WITHOUT_GPU();
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok());
  EXPECT_FALSE((*gemm)->Linear(nullptr, nullptr, nullptr, nullptr, false, 1, 0, 4, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
