// FP8 weights (`--quantization fp8`): the streaming GEMV for decode rows and
// LinearFp8's quantize -> cuBLASLt FP8 -> scale path for larger row counts,
// each against a double-precision reference over the same FP8 values.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/device_info.h"
#include "worker/cuda/gemm.h"
#include "worker/cuda/gemv.h"
#include "worker/cuda/gemv_fp8_mma.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

// Random weights [n, k] quantized per row, as the loader quantizes them.
struct Fp8Weights {
  testing::Fp8Rows rows;
  DevArray<fp8> q;
  DevArray<float> scale;
  Fp8Weights(int n, int k, std::mt19937& rng)
      : rows(testing::QuantizeFp8Reference(testing::RandomBf16(static_cast<size_t>(n) * k, rng, 0.1f), n, k)),
        q(rows.q), scale(rows.scale) {}
};

// x[m, k] · dequant(w)ᵀ + bias in double; x itself quantized per row first
// when `quantize_x` (what LinearFp8 does above the GEMV's row counts).
std::vector<float> Reference(const std::vector<bf16>& x, const testing::Fp8Rows& w, const std::vector<bf16>& bias,
                             int m, int n, int k, bool quantize_x) {
  const testing::Fp8Rows xq = testing::QuantizeFp8Reference(x, m, k);
  std::vector<float> want(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int t = 0; t < k; ++t) {
        const double xv = quantize_x ? xq.Dequant(i, t, k) : __bfloat162float(x[static_cast<size_t>(i) * k + t]);
        acc += xv * w.Dequant(j, t, k);
      }
      want[static_cast<size_t>(i) * n + j] = static_cast<float>(acc + (bias.empty() ? 0.0f : __bfloat162float(bias[j])));
    }
  }
  return want;
}

// bf16(silu(bf16(gate)) * bf16(up)) of the [gate; up] rows, as GemvSiluMul rounds.
std::vector<float> SiluMulReference(const std::vector<bf16>& x, const testing::Fp8Rows& w, int m, int inter, int k) {
  const auto gu = Reference(x, w, {}, m, 2 * inter, k, false);
  std::vector<float> want(static_cast<size_t>(m) * inter);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < inter; ++j) {
      const float g = testing::RoundBf16(gu[i * 2 * inter + j]), u = testing::RoundBf16(gu[i * 2 * inter + inter + j]);
      want[i * inter + j] = testing::RoundBf16(testing::RoundBf16(g / (1.0f + std::exp(-g))) * u);
    }
  }
  return want;
}

TEST(GemvFp8Test, AllRowCountsMatchReference) {
  TP_SKIP_WITHOUT_GPU();
  const int n = 333;
  std::mt19937 rng(51);
  // 1,040 inputs: rows short enough to be requested whole (1-2 x rows);
  // 8,208: 17 chunks a lane, the strided loop and its tail.
  for (int k : {1040, 8208}) {
    Fp8Weights w(n, k, rng);
    for (int m = 1; m <= kGemvMaxRows; ++m) {
      auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng), b = testing::RandomBf16(n, rng);
      DevArray<bf16> dx(x), db(b);
      DevArray<float> dout(static_cast<size_t>(m) * n);
      ASSERT_TRUE(GemvFp8(dx.get(), w.q.get(), w.scale.get(), db.get(), dout.get(), true, m, n, k, nullptr).ok());
      EXPECT_LT(testing::MaxRelError(dout.Download(), Reference(x, w.rows, b, m, n, k, false)), 1e-4)
          << "m=" << m << " k=" << k;
    }
  }
  EXPECT_FALSE(GemvFp8(nullptr, nullptr, nullptr, nullptr, nullptr, true, 1, n, 1032, nullptr).ok());  // k % 16
}

// A GemvFp8SiluMul-shaped function against the reference at 1 to max_rows
// rows of x (inter 300).
template <typename Fn>
void ExpectSiluMulMatches(Fn fn, int max_rows, int k, uint32_t seed) {
  const int inter = 300;
  std::mt19937 rng(seed);
  Fp8Weights w(2 * inter, k, rng);
  for (int m = 1; m <= max_rows; ++m) {
    auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng);
    DevArray<bf16> dx(x), dout(static_cast<size_t>(m) * inter);
    ASSERT_TRUE(fn(dx.get(), w.q.get(), w.scale.get(), dout.get(), m, inter, k, nullptr).ok());
    EXPECT_LT(testing::MaxRelError(testing::ToFloat(dout.Download()), SiluMulReference(x, w.rows, m, inter, k)), 1e-2)
        << "m=" << m;
  }
}

TEST(GemvFp8Test, FusedSiluMulMatchesReference) {
  TP_SKIP_WITHOUT_GPU();
  ExpectSiluMulMatches(GemvFp8SiluMul, 4, 1056, 52);
}

// The tensor-core GEMV (gemv_fp8_mma.cu) at one and two rows: row counts that
// are not a multiple of a row tile, k from one tile (seven of eight warps
// idle) to the 7B down's 18,944, fp32 and bf16 outputs, and x at scales
// beyond f16's range or below its normal one (x is held as f16 at a per-warp
// power of two). Its sums are of exact products in fp32, so it meets the
// scalar kernel's tolerance. Shapes whose f16 x would not fit the device's
// shared memory (k = 47,104 at two rows on an H200) are refused, and
// GemvFp8 runs them on the scalar kernel.
TEST(GemvFp8MmaTest, MatchesReference) {
  TP_SKIP_WITHOUT_GPU();
  auto info = GetCurrentDeviceInfo();
  ASSERT_TRUE(info.ok());
  std::mt19937 rng(54);
  for (auto [n, k] : {std::pair{333, 1024}, std::pair{37, 64}, std::pair{200, 3584}, std::pair{40, 18944},
                        std::pair{8, 47104}}) {
    Fp8Weights w(n, k, rng);
    for (int m = 1; m <= kGemvFp8MmaMaxRows; ++m) {
      const bool fits = GemvFp8MmaSmemBytes(m, k) <= static_cast<size_t>(info->smem_per_block_optin);
      EXPECT_EQ(GemvFp8MmaTakes(m, k), fits && m >= 2) << "m=" << m << " k=" << k;
      for (float x_scale : {1.0f, 3e5f, 2e-7f}) {
        auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng, x_scale), b = testing::RandomBf16(n, rng);
        if (x_scale == 1.0f) x[k / 2] = __float2bfloat16(2e4f);  // one large input among small ones
        DevArray<bf16> dx(x), db(b);
        DevArray<float> dout(static_cast<size_t>(m) * n);
        const absl::Status st =
            GemvFp8Mma(dx.get(), w.q.get(), w.scale.get(), db.get(), dout.get(), true, m, n, k, nullptr);
        if (!fits) {
          EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << "m=" << m << " k=" << k;
        } else {
          ASSERT_TRUE(st.ok()) << st;
          EXPECT_LT(testing::MaxRelError(dout.Download(), Reference(x, w.rows, b, m, n, k, false)), 1e-4)
              << "m=" << m << " n=" << n << " k=" << k << " x scale " << x_scale;
        }
        DevArray<bf16> dbf(static_cast<size_t>(m) * n);  // through GemvFp8's dispatch, bf16 out, no bias
        ASSERT_TRUE(GemvFp8(dx.get(), w.q.get(), w.scale.get(), nullptr, dbf.get(), false, m, n, k, nullptr).ok());
        EXPECT_LT(testing::MaxRelError(testing::ToFloat(dbf.Download()), Reference(x, w.rows, {}, m, n, k, false)),
                  1e-2)
            << "m=" << m << " n=" << n << " k=" << k;
      }
    }
  }
  EXPECT_FALSE(GemvFp8MmaTakes(3, 1024));
  EXPECT_FALSE(GemvFp8MmaTakes(2, 1040));  // not a multiple of 64
  EXPECT_EQ(GemvFp8Mma(nullptr, nullptr, nullptr, nullptr, nullptr, true, 3, 16, 1024, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GemvFp8MmaSiluMul(nullptr, nullptr, nullptr, nullptr, 1, 16, 1040, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GemvFp8MmaTest, FusedSiluMulMatchesReference) {
  TP_SKIP_WITHOUT_GPU();
  ExpectSiluMulMatches(GemvFp8MmaSiluMul, kGemvFp8MmaMaxRows, 1024, 55);
}

// Row counts above the GEMV's go through FP8 tensor cores (sm_89+).
TEST(LinearFp8Test, TensorCorePathMatchesReference) {
  TP_SKIP_WITHOUT_GPU();
  auto info = GetCurrentDeviceInfo();
  ASSERT_TRUE(info.ok());
  if (info->major * 10 + info->minor < 89) GTEST_SKIP() << "no FP8 tensor cores (sm_" << info->major << info->minor << ")";
  const int n = 1152, k = 896;
  std::mt19937 rng(53);
  Fp8Weights w(n, k, rng);
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok());
  ASSERT_TRUE((*gemm)->ReserveFp8(300, k).ok());
  for (auto [m, fp32, force] : {std::tuple{17, false, false}, std::tuple{300, true, false},
                                std::tuple{64, false, false}, std::tuple{2, true, true}}) {
    (*gemm)->set_force_cublas(force);
    auto x = testing::RandomBf16(static_cast<size_t>(m) * k, rng), b = testing::RandomBf16(n, rng);
    DevArray<bf16> dx(x), db(b);
    DevArray<char> dout(static_cast<size_t>(m) * n * (fp32 ? 4 : 2));
    ASSERT_TRUE((*gemm)->LinearFp8(dx.get(), w.q.get(), w.scale.get(), db.get(), dout.get(), fp32, m, n, k, nullptr).ok())
        << "m=" << m;
    const auto raw = dout.Download();
    std::vector<float> got(static_cast<size_t>(m) * n);
    for (size_t i = 0; i < got.size(); ++i) {
      got[i] = fp32 ? reinterpret_cast<const float*>(raw.data())[i]
                    : __bfloat162float(reinterpret_cast<const bf16*>(raw.data())[i]);
    }
    EXPECT_LT(testing::MaxRelError(got, Reference(x, w.rows, b, m, n, k, true)), fp32 ? 1e-3 : 1e-2) << "m=" << m;
  }
  // Over the reserved scratch: a clear error, not an overrun.
  (*gemm)->set_force_cublas(false);
  DevArray<bf16> big(static_cast<size_t>(301) * k);
  DevArray<bf16> out(static_cast<size_t>(301) * n);
  EXPECT_EQ((*gemm)->LinearFp8(big.get(), w.q.get(), w.scale.get(), nullptr, out.get(), false, 301, n, k, nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tpserve::worker::cuda
