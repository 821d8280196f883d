#include "worker/model/cpu_ops.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "worker/model/sampling_rng.h"

namespace tpserve::worker::cpu {
namespace {

std::vector<float> Random(int n, uint64_t salt) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(SampleUniform(salt, i) * 2 - 1);
  return v;
}

TEST(CpuOpsTest, LinearMatchesDoubleReference) {
  const int rows = 3, in = 37, out = 70;  // odd sizes: tails and partial blocks
  const auto x = Random(rows * in, 1), w = Random(out * in, 2), b = Random(out, 3);
  std::vector<float> y(rows * out);
  Linear(x.data(), rows, in, w.data(), b.data(), out, y.data());
  for (int t = 0; t < rows; ++t) {
    for (int n = 0; n < out; ++n) {
      double ref = b[n];
      for (int k = 0; k < in; ++k) ref += double(x[t * in + k]) * w[n * in + k];
      EXPECT_NEAR(y[t * out + n], ref, 1e-5);
    }
  }
}

TEST(CpuOpsTest, RmsNormMatchesDefinition) {
  const auto x = Random(2 * 16, 4), w = Random(16, 5);
  std::vector<float> y(2 * 16);
  RmsNorm(x.data(), 2, 16, w.data(), 1e-6f, y.data());
  for (int t = 0; t < 2; ++t) {
    double ms = 0;
    for (int i = 0; i < 16; ++i) ms += double(x[t * 16 + i]) * x[t * 16 + i];
    const double scale = 1.0 / std::sqrt(ms / 16 + 1e-6);
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(y[t * 16 + i], w[i] * x[t * 16 + i] * scale, 1e-6);
  }
}

TEST(CpuOpsTest, RopeIsARelativeRotation) {
  const int hd = 8;
  auto q = Random(hd, 6), k = Random(hd, 7);
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / hd));
  auto at = [&](std::vector<float> v, int64_t pos) {
    ApplyRope(v.data(), 1, hd, pos, inv_freq.data(), 1.0f);
    return v;
  };
  // Position 0 is the identity; norms are preserved; <q_m, k_n> depends on
  // m - n only.
  EXPECT_EQ(at(q, 0), q);
  double n0 = 0, n1 = 0;
  const auto q9 = at(q, 9);
  for (int i = 0; i < hd; ++i) n0 += q[i] * q[i], n1 += q9[i] * q9[i];
  EXPECT_NEAR(n0, n1, 1e-5);
  auto dot = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (int i = 0; i < hd; ++i) s += a[i] * b[i];
    return s;
  };
  EXPECT_NEAR(dot(at(q, 7), at(k, 3)), dot(at(q, 14), at(k, 10)), 1e-5);
  // Neox layout: dimension i pairs with i + hd/2; at angle theta^0 = 1 rad
  // per position for pair 0.
  std::vector<float> e(hd, 0.0f);
  e[0] = 1.0f;
  const auto r = at(e, 1);
  EXPECT_NEAR(r[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(r[hd / 2], std::sin(1.0), 1e-6);
}

TEST(CpuOpsTest, RopeAttentionFactorScalesTheRotation) {
  // YaRN multiplies cos and sin by its attention factor: the rotated vector
  // is the plain rotation times that factor, per head.
  const int hd = 8, heads = 2;
  const std::vector<float> inv_freq = {1.0f, 0.25f, 0.0625f, 0.015625f};
  const auto x = Random(heads * hd, 8);
  auto plain = x, scaled = x;
  ApplyRope(plain.data(), heads, hd, 300, inv_freq.data(), 1.0f);
  ApplyRope(scaled.data(), heads, hd, 300, inv_freq.data(), 1.25f);
  for (int i = 0; i < heads * hd; ++i) EXPECT_NEAR(scaled[i], 1.25f * plain[i], 1e-6) << i;
  // Pair 1 of head 1 turned by 300 * 0.25 rad.
  const double a = 300 * 0.25, x1 = x[hd + 1], x2 = x[hd + 1 + hd / 2];
  EXPECT_NEAR(plain[hd + 1], x1 * std::cos(a) - x2 * std::sin(a), 1e-5);
  EXPECT_NEAR(plain[hd + 1 + hd / 2], x2 * std::cos(a) + x1 * std::sin(a), 1e-5);
}

TEST(CpuOpsTest, SiluMulAndAdd) {
  std::vector<float> g = {0.0f, 1.0f, -2.0f}, u = {3.0f, 2.0f, 1.0f}, x(3);
  SiluMul(g.data(), u.data(), 3, x.data());
  EXPECT_FLOAT_EQ(x[0], 0.0f);
  EXPECT_FLOAT_EQ(x[1], 2.0f / (1.0f + std::exp(-1.0f)));
  EXPECT_FLOAT_EQ(x[2], -2.0f / (1.0f + std::exp(2.0f)));
  AddInPlace(x.data(), u.data(), 3);
  EXPECT_FLOAT_EQ(x[0], 3.0f);
}

}  // namespace
}  // namespace tpserve::worker::cpu
