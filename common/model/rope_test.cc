#include "common/model/rope.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

using nlohmann::json;

// HF transformers' inv_freq and attention_scaling for seven YaRN configs,
// made by scripts/gpu/make_yarn_golden.py (tests/fixtures/tiny-qwen2-yarn).
constexpr char kCases[] = "tests/fixtures/tiny-qwen2-yarn/rope_cases.json";

// Units in the last place of float32 between a and b.
double Ulps(float a, float b) {
  return std::fabs(static_cast<double>(a) - b) / (std::nextafter(std::fabs(b), INFINITY) - std::fabs(b));
}

TEST(RopeTest, YarnTableMatchesTransformers) {
  std::ifstream in(kCases);
  ASSERT_TRUE(in) << kCases;
  const json cases = json::parse(in)["cases"];
  ASSERT_EQ(cases.size(), 7u);  // every case the script asked HF for
  for (const json& k : cases) {
    const std::string name = k["name"];
    json config = {{"architectures", {"Qwen2ForCausalLM"}},
                   {"vocab_size", 32},
                   {"intermediate_size", 32},
                   {"num_hidden_layers", 1}};
    config.update(k["config"]);
    auto c = ParseModelConfig(config.dump(), name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    ASSERT_EQ(c->rope_scaling.type, RopeType::kYarn) << name;
    const RopeTable t = MakeRopeTable(c->head_dim, c->rope_theta, c->rope_scaling);
    const std::vector<float> want = k["inv_freq"].get<std::vector<float>>();
    ASSERT_EQ(t.inv_freq.size(), want.size()) << name;
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, Ulps(t.inv_freq[i], want[i]));
    // HF raises theta to the power in float32, we round the double power:
    // measured 0 ulp apart for six cases and 1 for one.
    EXPECT_LE(worst, 1.0) << name;
    EXPECT_NEAR(t.attention_factor, k["attention_scaling"].get<double>(), 1e-6) << name;
    std::printf("%s: inv_freq within %.0f ulp of transformers, attention factor %.6f\n", name.c_str(), worst,
                t.attention_factor);
  }
}

TEST(RopeTest, DefaultTableIsPlainRope) {
  const RopeTable t = MakeRopeTable(64, 1e6, RopeScaling());
  ASSERT_EQ(t.inv_freq.size(), 32u);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(t.inv_freq[i], static_cast<float>(1.0 / std::pow(1e6, i / 32.0))) << i;
  }
  EXPECT_EQ(t.attention_factor, 1.0f);
}

TEST(RopeTest, YarnKeepsFastPairsAndInterpolatesSlowOnes) {
  // Qwen2-72B's card: factor 4 over 32768 positions, head_dim 128. The ramp
  // runs from pair 23 to pair 40 (HF's truncated correction range).
  RopeScaling s;
  s.type = RopeType::kYarn;
  s.factor = 4.0;
  s.original_max_position_embeddings = 32768;
  s.attention_factor = 0.1 * std::log(4.0) + 1;
  const RopeTable yarn = MakeRopeTable(128, 1e6, s);
  const RopeTable plain = MakeRopeTable(128, 1e6, RopeScaling());
  for (int i = 0; i <= 23; ++i) EXPECT_NEAR(yarn.inv_freq[i], plain.inv_freq[i], 1e-6 * plain.inv_freq[i]) << i;
  for (int i = 24; i < 40; ++i) {
    EXPECT_LT(yarn.inv_freq[i], plain.inv_freq[i]) << i;
    EXPECT_GT(yarn.inv_freq[i], plain.inv_freq[i] / 4) << i;
  }
  for (int i = 40; i < 64; ++i) EXPECT_NEAR(yarn.inv_freq[i], plain.inv_freq[i] / 4, 1e-6 * plain.inv_freq[i]) << i;
  EXPECT_FLOAT_EQ(yarn.attention_factor, 1.1386294f);
}

}  // namespace
}  // namespace tpserve
