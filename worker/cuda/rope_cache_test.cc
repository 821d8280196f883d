#include "worker/cuda/rope_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <random>
#include <vector>

#include "common/quant/fp8_e4m3.h"
#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;

// The reference rotation: per-pair frequencies and the cos/sin scale in
// double precision.
struct RefRope {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;
};

RefRope PlainRef(int head_dim, double theta) {
  RefRope r;
  for (int i = 0; i < head_dim / 2; ++i) r.inv_freq.push_back(1.0 / std::pow(theta, 2.0 * i / head_dim));
  return r;
}

// YaRN in double precision, written from the paper's definition (HF's
// _compute_yarn_parameters with its default truncated ramp): pairs turning
// more than beta_fast times over the original context keep their frequency,
// pairs turning fewer than beta_slow times are divided by `factor`, linear
// in between; cos and sin are scaled by 0.1 ln(factor) + 1.
RefRope YarnRef(int head_dim, double theta, double factor, int original, double beta_fast = 32,
                double beta_slow = 1) {
  const double d = head_dim;
  auto dim_for = [&](double turns) {
    return d * std::log(original / (turns * 2 * std::numbers::pi)) / (2 * std::log(theta));
  };
  const double low = std::max(std::floor(dim_for(beta_fast)), 0.0);
  const double high = std::min(std::ceil(dim_for(beta_slow)), d - 1);
  RefRope r;
  for (int i = 0; i < head_dim / 2; ++i) {
    const double base = std::pow(theta, -2.0 * i / d);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);  // 1: interpolate
    r.inv_freq.push_back(base / factor * ramp + base * (1 - ramp));
  }
  r.attention_factor = 0.1 * std::log(factor) + 1.0;
  return r;
}

// What the kernel is given: the reference table rounded to float32, as
// MakeRopeTable hands it over.
RopeParams ToParams(const RefRope& r) {
  RopeParams p;
  for (size_t i = 0; i < r.inv_freq.size(); ++i) p.inv_freq[i] = static_cast<float>(r.inv_freq[i]);
  p.attention_factor = static_cast<float>(r.attention_factor);
  return p;
}

// Runs the kernel on random q/k/v and returns the largest difference from
// the double-precision rotation; checks the K/V cache writes on the way.
double RunAndCompare(const AttnDims& d, const std::vector<int>& pos, const std::vector<int>& slots,
                     int num_slots, const RefRope& ref, unsigned seed) {
  const int tokens = static_cast<int>(pos.size()), row = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim;
  std::mt19937 rng(seed);
  auto qkv = testing::RandomBf16(tokens * row, rng, 2.0f);
  DevArray<bf16> dqkv(qkv), kc(num_slots * d.num_kv_heads * d.head_dim),
      vc(num_slots * d.num_kv_heads * d.head_dim);
  DevArray<int> dpos(pos), dslots(slots);
  EXPECT_TRUE(RopeAndCacheWrite(dqkv.get(), dpos.get(), dslots.get(), kc.get(), vc.get(), tokens, d,
                                ToParams(ref), nullptr).ok());
  auto got = testing::ToFloat(dqkv.Download());
  auto gk = kc.Download(), gv = vc.Download();
  const int half = d.head_dim / 2;
  double max_err = 0;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < d.num_heads + 2 * d.num_kv_heads; ++h) {
      for (int i = 0; i < d.head_dim; ++i) {
        const size_t idx = static_cast<size_t>(t) * row + h * d.head_dim + i;
        double want = __bfloat162float(qkv[idx]);
        if (h < d.num_heads + d.num_kv_heads) {
          const int j = i % half;
          const double a = pos[t] * ref.inv_freq[j], m = ref.attention_factor;
          const double x1 = __bfloat162float(qkv[idx - i + j]), x2 = __bfloat162float(qkv[idx - i + j + half]);
          want = m * (i < half ? x1 * std::cos(a) - x2 * std::sin(a) : x2 * std::cos(a) + x1 * std::sin(a));
        }
        max_err = std::max(max_err, std::fabs(got[idx] - want));
        if (h >= d.num_heads && slots[t] >= 0) {
          const bool is_k = h < d.num_heads + d.num_kv_heads;
          const int kvh = is_k ? h - d.num_heads : h - d.num_heads - d.num_kv_heads;
          const size_t c = (static_cast<size_t>(slots[t]) * d.num_kv_heads + kvh) * d.head_dim + i;
          const float cached = __bfloat162float(is_k ? gk[c] : gv[c]);
          EXPECT_EQ(cached, got[idx]) << "token " << t << " head " << h << " dim " << i;
        }
      }
    }
  }
  // Slot 1 is never written: still poisoned.
  EXPECT_TRUE(std::isnan(__bfloat162float(gk[1 * d.num_kv_heads * d.head_dim])));
  return max_err;
}

AttnDims Dims(int num_heads, int num_kv_heads, int head_dim) {
  AttnDims d;
  d.num_heads = num_heads;
  d.num_kv_heads = num_kv_heads;
  d.head_dim = head_dim;
  d.block_size = 16;
  return d;
}

TEST(RopeCacheTest, RotatesQkAndWritesCacheSlots) {
  TP_SKIP_WITHOUT_GPU();
  const AttnDims d = Dims(4, 2, 64);
  std::vector<int> pos = {0, 1, 2, 17, 300, 4095, 32767, 5, 6};
  std::vector<int> slots = {3, 4, 5, 20, 63, 0, 33, -1, 40};  // -1: padding row, no write
  const double err = RunAndCompare(d, pos, slots, 64, PlainRef(d.head_dim, 1e6), 3);
  // bf16 output rounding (inputs up to 2 => 2^-7) plus float32 angle error at
  // position 32767.
  EXPECT_LT(err, 0.03);
}

TEST(RopeCacheTest, YarnFrequenciesAndAttentionFactor) {
  TP_SKIP_WITHOUT_GPU();
  // Qwen2-72B's heads with its model card's YaRN block (factor 4 over 32768
  // positions), at positions up to the scaled length 131072.
  const AttnDims d = Dims(8, 1, 128);
  const RefRope ref = YarnRef(d.head_dim, 1e6, 4.0, 32768);
  // Pair 0 keeps its frequency, the last pairs are divided by 4.
  ASSERT_DOUBLE_EQ(ref.inv_freq[0], 1.0);
  ASSERT_NEAR(ref.inv_freq[63] * 4, 1.0 / std::pow(1e6, 126.0 / 128), 1e-15);
  std::vector<int> pos = {0, 1, 127, 32767, 32768, 65536, 100000, 131071, 7};
  std::vector<int> slots = {3, 4, 5, 20, 63, 0, 33, -1, 40};
  const double err = RunAndCompare(d, pos, slots, 64, ref, 4);
  // As above, with angles four times larger and values scaled by 1.14.
  EXPECT_LT(err, 0.05);
  std::printf("yarn rope: max abs error %.4g\n", err);

  // At position 0 the rotation is the identity: the output is the input
  // times the attention factor, to bf16 rounding.
  const int row = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim;
  std::mt19937 rng(5);
  auto qkv = testing::RandomBf16(row, rng, 2.0f);
  DevArray<bf16> dqkv(qkv), kc(d.num_kv_heads * d.head_dim), vc(d.num_kv_heads * d.head_dim);
  DevArray<int> dpos(std::vector<int>{0}), dslots(std::vector<int>{0});
  ASSERT_TRUE(RopeAndCacheWrite(dqkv.get(), dpos.get(), dslots.get(), kc.get(), vc.get(), 1, d, ToParams(ref),
                                nullptr).ok());
  const auto got = testing::ToFloat(dqkv.Download());
  for (int i = 0; i < (d.num_heads + d.num_kv_heads) * d.head_dim; ++i) {
    const double want = ref.attention_factor * __bfloat162float(qkv[i]);
    ASSERT_NEAR(got[i], want, std::fabs(want) * 0x1p-8 + 1e-6) << i;
  }
}

// Equal E4M3 codes, +0 and -0 counted equal (a tiny negative value may
// round to either zero).
bool SameCode(uint8_t a, uint8_t b) { return a == b || ((a & 0x7F) == 0 && (b & 0x7F) == 0); }

// The FP8 cache write: q, k and v rows exactly as the bf16 write leaves them,
// and every cached code the software encoder's E4M3(x * (1 / scale)) of the
// bf16-rounded rotated k / v (RNE; values past 448 saturate, NaN stays NaN,
// tiny values become subnormals or zero). Scales 1, powers of two, and
// scales that are not (as a checkpoint's k_scale / v_scale are), where the
// kernel's multiplication by the float reciprocal is what the reference
// mirrors: x / scale would differ from it at exact E4M3 ties.
TEST(RopeCacheTest, Fp8CacheWriteRoundsTheBf16Values) {
  TP_SKIP_WITHOUT_GPU();
  const AttnDims d = Dims(28, 4, 128);
  const int row = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim, kv_width = d.num_kv_heads * d.head_dim;
  const std::vector<int> pos = {0, 9, 300, 4095, 77};
  const std::vector<int> slots = {3, 5, 0, -1, 6};
  const int tokens = static_cast<int>(pos.size()), num_slots = 8;
  std::mt19937 rng(6);
  auto qkv = testing::RandomBf16(static_cast<size_t>(tokens) * row, rng, 4.0f);
  // Large, tiny and NaN values in v (v is stored as given) and a large k.
  const size_t v0 = static_cast<size_t>(d.num_heads + d.num_kv_heads) * d.head_dim;  // token 0's v
  const float specials[] = {600.0f, -1000.0f, 460.0f, 1e-4f, -3e-3f, 0.0f, NAN, 0.0107421875f};
  for (size_t i = 0; i < std::size(specials); ++i) qkv[v0 + i] = __float2bfloat16(specials[i]);
  qkv[d.num_heads * d.head_dim] = __float2bfloat16(900.0f);  // token 0's k, rotation 0: stays 900
  const RopeParams rope = ToParams(PlainRef(d.head_dim, 1e6));
  DevArray<bf16> ref_qkv(qkv), kc(num_slots * kv_width), vc(num_slots * kv_width);
  DevArray<int> dpos(pos), dslots(slots);
  ASSERT_TRUE(RopeAndCacheWrite(ref_qkv.get(), dpos.get(), dslots.get(), kc.get(), vc.get(), tokens, d, rope,
                                nullptr).ok());
  const auto want_qkv = ref_qkv.Download();
  for (const auto& [ks, vs] : {std::pair{1.0f, 1.0f}, std::pair{0.5f, 4.0f}, std::pair{0.375f, 0.3f}}) {
    DevArray<bf16> dqkv(qkv);
    DevArray<uint8_t> k8(num_slots * kv_width), v8(num_slots * kv_width);
    ASSERT_EQ(cudaMemset(k8.get(), 0xEE, num_slots * kv_width), cudaSuccess);
    ASSERT_EQ(cudaMemset(v8.get(), 0xEE, num_slots * kv_width), cudaSuccess);
    const KvCacheRef kv{k8.get(), v8.get(), KvCacheDtype::kFp8E4m3, ks, vs};
    ASSERT_TRUE(RopeAndCacheWrite(dqkv.get(), dpos.get(), dslots.get(), kv, tokens, d, rope, nullptr).ok());
    const auto got_qkv = dqkv.Download();
    const auto gk = k8.Download(), gv = v8.Download();
    ASSERT_EQ(0, std::memcmp(got_qkv.data(), want_qkv.data(), got_qkv.size() * sizeof(bf16)));
    int saturated = 0;
    for (int t = 0; t < tokens; ++t) {
      if (slots[t] < 0) continue;
      for (int e = 0; e < kv_width; ++e) {
        const size_t src = static_cast<size_t>(t) * row + d.num_heads * d.head_dim + e;
        const size_t dst = static_cast<size_t>(slots[t]) * kv_width + e;
        const float k = __bfloat162float(want_qkv[src]), v = __bfloat162float(want_qkv[src + kv_width]);
        ASSERT_TRUE(SameCode(gk[dst], FloatToFp8E4M3(k * (1.0f / ks)))) << "token " << t << " k " << e << " value "
                                                                           << k;
        if (std::isnan(v)) {
          ASSERT_EQ(gv[dst] & 0x7F, 0x7F) << "token " << t << " v " << e;
        } else {
          ASSERT_TRUE(SameCode(gv[dst], FloatToFp8E4M3(v * (1.0f / vs)))) << "token " << t << " v " << e
                                                                             << " value " << v;
        }
        saturated += (gk[dst] & 0x7F) == 0x7E;
        saturated += (gv[dst] & 0x7F) == 0x7E;
      }
    }
    // Scale 1: k 900, v 600, -1000 and 460; scale 1/2: k 900 / 0.5; scale
    // 0.375: k 900 / 0.375 (v / 0.3: 600 and -1000 too).
    EXPECT_GE(saturated, ks == 1.0f ? 4 : 1) << "scales " << ks << ", " << vs;
    EXPECT_EQ(gk[1 * kv_width], 0xEE);  // slot 1 never written
  }
}

TEST(RopeCacheTest, RejectsOddAndOversizedHeadDim) {
  AttnDims d = Dims(1, 1, 63);
  const RopeParams p;
  EXPECT_FALSE(RopeAndCacheWrite(nullptr, nullptr, nullptr, nullptr, nullptr, 1, d, p, nullptr).ok());
  d.head_dim = 2 * kMaxRopePairs + 2;
  EXPECT_FALSE(RopeAndCacheWrite(nullptr, nullptr, nullptr, nullptr, nullptr, 1, d, p, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
