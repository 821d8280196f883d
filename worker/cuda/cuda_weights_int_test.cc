// AWQ / GPTQ fixtures loaded packed (WeightQuant::kInt) on one GPU: each
// tensor-parallel rank's weights, dequantized on the device, are exactly
// its slice of the TP=1 weights (the group-aligned split of
// common/quant/tp_partition.h, mirroring the CPU backend's slicing), and the
// layers the int kernels can stream are kept packed.
#include <cstdio>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "gtest/gtest.h"
#include "worker/cuda/cuda_weights.h"
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using bf16 = __nv_bfloat16;

// A linear weight [n, k] as host floats (dequantized when packed).
std::vector<float> ToHost(const LinearWeight& w, int n, int k) {
  std::vector<bf16> h(static_cast<size_t>(n) * k);
  if (w.packed_int()) {
    testing::DevArray<bf16> tmp(h.size());
    EXPECT_TRUE(DequantizeInt(w.int_view(), n, k, tmp.get(), nullptr).ok());
    h = tmp.Download();
  } else {
    EXPECT_EQ(cudaMemcpy(h.data(), w.data.data(), h.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  }
  return testing::ToFloat(h);
}

// Rows [r0, r0 + rows) and columns [c0, c0 + cols) of a row-major [?, k].
std::vector<float> Block(const std::vector<float>& m, int k, int r0, int rows, int c0, int cols) {
  std::vector<float> out;
  for (int r = r0; r < r0 + rows; ++r) out.insert(out.end(), m.begin() + r * k + c0, m.begin() + r * k + c0 + cols);
  return out;
}

class PackedWeightsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PackedWeightsTest, RanksHoldExactSlicesOfTheWholeModel) {
  TP_SKIP_WITHOUT_GPU();
  const std::string dir = GetParam();
  auto c = LoadModelConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  const int h = c->hidden_size, inter = c->intermediate_size, nhd = c->num_attention_heads * c->head_dim;
  auto whole = LoadSafetensorsWeights(dir, *c, *MakePartition(*c, 0, 1), WeightQuant::kInt);
  ASSERT_TRUE(whole.ok()) << whole.status();
  for (size_t l = 0; l < whole->layers.size(); ++l) {
    const LayerWeights& w = whole->layers[l];
    // At TP=1 every layer streams packed, except fused q/k/v and gate/up
    // whose act orders differ (the fixture's quantizer gives each layer its
    // own g_idx; AutoGPTQ's, from the layers' one shared input, agree): one
    // GEMV gathers its input through one permutation, so those stay bf16.
    EXPECT_TRUE(w.o_proj.packed_int() && w.down.packed_int()) << dir << " layer " << l;
    EXPECT_EQ(w.qkv.packed_int() && w.gate_up.packed_int(), !c->quantization.desc_act) << dir << " layer " << l;
  }
  for (int world : {2, 4}) {
    for (int rank = 0; rank < world; ++rank) {
      auto p = MakePartition(*c, rank, world);
      ASSERT_TRUE(p.ok()) << p.status();
      auto part = LoadSafetensorsWeights(dir, *c, *p, WeightQuant::kInt);
      ASSERT_TRUE(part.ok()) << part.status();
      for (size_t l = 0; l < whole->layers.size(); ++l) {
        const LayerWeights &a = whole->layers[l], &b = part->layers[l];
        const int pi = p->intermediate, i0 = p->intermediate_begin, nh = p->num_heads * c->head_dim;
        ASSERT_EQ(pi, inter / world);  // 512 divides into whole groups: no padding here
        std::printf("%s TP=%d rank %d layer %zu packed: qkv %d o %d gate_up %d down %d\n", dir.c_str(), world, rank,
                    l, b.qkv.packed_int(), b.o_proj.packed_int(), b.gate_up.packed_int(), b.down.packed_int());
        const std::vector<float> gu = ToHost(a.gate_up, 2 * inter, h), gu_r = ToHost(b.gate_up, 2 * pi, h);
        EXPECT_EQ(Block(gu_r, h, 0, pi, 0, h), Block(gu, h, i0, pi, 0, h)) << "gate, layer " << l;
        EXPECT_EQ(Block(gu_r, h, pi, pi, 0, h), Block(gu, h, inter + i0, pi, 0, h)) << "up, layer " << l;
        EXPECT_EQ(ToHost(b.down, h, pi), Block(ToHost(a.down, h, inter), inter, 0, h, i0, pi)) << "down " << l;
        EXPECT_EQ(ToHost(b.o_proj, h, nh), Block(ToHost(a.o_proj, h, nhd), nhd, 0, h, rank * nh, nh)) << "o " << l;
        const std::vector<float> q = ToHost(a.qkv, nhd + 2 * c->num_key_value_heads * c->head_dim, h);
        EXPECT_EQ(Block(ToHost(b.qkv, nh, h), h, 0, nh, 0, h), Block(q, h, rank * nh, nh, 0, h)) << "q " << l;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PackedWeightsTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2-awq", "tests/fixtures/tiny-qwen2-gptq-int4",
                                           "tests/fixtures/tiny-qwen2-gptq-int8"));

}  // namespace
}  // namespace tpserve::worker::cuda
