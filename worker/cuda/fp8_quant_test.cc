#include "worker/cuda/fp8_quant.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;
using fp8 = __nv_fp8_e4m3;

// Scales and every E4M3 byte equal the host reference (the same float
// operations, rounded to nearest and saturated); rows of very different
// ranges, an all-zero row and one outlier row included.
TEST(QuantizeRowsFp8Test, MatchesHostReferenceBitForBit) {
  TP_SKIP_WITHOUT_GPU();
  const int rows = 7, k = 1048;
  std::mt19937 rng(41);
  std::vector<bf16> x;
  for (int r = 0; r < rows; ++r) {
    const float range = r == 3 ? 0.0f : std::ldexp(1.0f, 3 * r - 9);
    auto row = testing::RandomBf16(k, rng, range);
    if (r == 5) row[17] = __float2bfloat16(250.0f * range);  // one outlier dominates the scale
    x.insert(x.end(), row.begin(), row.end());
  }
  DevArray<bf16> dx(x);
  DevArray<fp8> dq(x.size());
  DevArray<float> ds(rows);
  ASSERT_TRUE(QuantizeRowsFp8(dx.get(), rows, k, dq.get(), ds.get(), nullptr).ok());
  const auto q = dq.Download();
  const auto s = ds.Download();
  const testing::Fp8Rows want = testing::QuantizeFp8Reference(x, rows, k);
  int differ = 0;
  for (size_t i = 0; i < q.size(); ++i) differ += q[i].__x != want.q[i].__x;
  EXPECT_EQ(differ, 0);
  for (int r = 0; r < rows; ++r) EXPECT_EQ(s[r], want.scale[r]) << "row " << r;
  EXPECT_EQ(s[3], 1.0f);  // zero row
  // And the quantization error is E4M3's: 2^-4 relative (3 mantissa bits,
  // round to nearest), 2^-10 of the scale in the subnormal range.
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < k; ++c) {
      const float v = __bfloat162float(x[static_cast<size_t>(r) * k + c]);
      const float d = want.Dequant(r, c, k);
      ASSERT_LE(std::fabs(d - v), std::fabs(v) / 16 + s[r] / 1024 + 1e-30f) << r << "," << c;
    }
  }
  EXPECT_FALSE(QuantizeRowsFp8(dx.get(), rows, 1001, dq.get(), ds.get(), nullptr).ok());
}

TEST(ScaleFp8ProductTest, AppliesRowAndColumnScalesAndBias) {
  TP_SKIP_WITHOUT_GPU();
  const int m = 5, n = 37;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(0.1f, 2.0f);
  std::vector<float> acc(m * n), rs(m), cs(n);
  for (auto& v : acc) v = u(rng) * 1000.0f;
  for (auto& v : rs) v = u(rng) / 448.0f;
  for (auto& v : cs) v = u(rng) / 448.0f;
  auto bias = testing::RandomBf16(n, rng);
  for (bool fp32 : {true, false}) {
    std::vector<float> want(m * n);
    DevArray<float> d32(acc);
    std::vector<bf16> acc16(acc.size());
    for (size_t i = 0; i < acc.size(); ++i) acc16[i] = __float2bfloat16(acc[i]);
    DevArray<bf16> d16(acc16);
    DevArray<float> drs(rs), dcs(cs);
    DevArray<bf16> db(bias);
    void* out = fp32 ? static_cast<void*>(d32.get()) : static_cast<void*>(d16.get());
    ASSERT_TRUE(ScaleFp8Product(out, fp32, drs.get(), dcs.get(), db.get(), m, n, nullptr).ok());
    std::vector<float> got = fp32 ? d32.Download() : testing::ToFloat(d16.Download());
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) {
        const float a = fp32 ? acc[i * n + j] : __bfloat162float(acc16[i * n + j]);
        want[i * n + j] = a * rs[i] * cs[j] + __bfloat162float(bias[j]);
      }
    }
    EXPECT_LT(testing::MaxRelError(got, want), fp32 ? 1e-6 : 8e-3) << "fp32=" << fp32;
  }
}

}  // namespace
}  // namespace tpserve::worker::cuda
