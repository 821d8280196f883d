// Decode and prefill attention over an FP8 E4M3 KV cache against the
// double-precision CPU reference computed on the same E4M3-rounded K/V
// (AttnCase::RoundKvToFp8: the software encoder, RNE, saturating), outputs
// NaN-poisoned. Scales 1 (the default), powers of two (k 1/4, v 2: the k
// scale folded into the softmax scale and the v scale into the output are
// checked) and a checkpoint-like pair that is not (k 0.375, v 0.6875: 2 and
// 4 significant bits, so code * scale still fits bf16's 8 and the
// reference's bf16 cache is exact). Decode: split
// counts 1 to 128, GQA groups 1 to 8, head_dim 32/64/128. Prefill (the
// mma.sync kernel converting rows into shared memory): fresh prompts, chunks
// after cached prefixes, lone decode rows, GQA groups 1/2/7/8, head_dim
// 32/64/128.
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/attention_test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::AttnCase;
using testing::DevArray;
using testing::DeviceAttnCase;
using testing::Dims;

struct Scales {
  float k, v;
};

// The case's FP8 cache on the device (kc / vc of `c` become the rounded
// values for the reference).
struct Fp8Cache {
  std::vector<uint8_t> k8, v8;
  DevArray<uint8_t> k, v;
  Fp8Cache(AttnCase& c, Scales s) : k(Round(c, s)), v(v8) {}
  std::vector<uint8_t>& Round(AttnCase& c, Scales s) {
    c.RoundKvToFp8(s.k, s.v, k8, v8);
    return k8;
  }
  KvCacheRef Ref(Scales s) { return {k.get(), v.get(), KvCacheDtype::kFp8E4m3, s.k, s.v}; }
};

class Fp8DecodeTest : public ::testing::TestWithParam<std::tuple<AttnDims, int, Scales>> {};

TEST_P(Fp8DecodeTest, MatchesCpuReferenceOnRoundedKv) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, splits, scales] = GetParam();
  AttnCase c(dims, {{0, 1}, {31, 1}, {100, 1}, {1500, 1}, {257, 1}, {63, 1}, {64, 1}}, 21, 3.0f);
  Fp8Cache cache(c, scales);
  DeviceAttnCase dc(c);  // q and the NaN-poisoned output (its bf16 cache is not read)
  testing::ExpectDecodeForms(c, dc, splits, [&](const DecodePartition& p, void* ws) {
    return PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), cache.Ref(scales), dc.batch, p, ws, dims,
                                nullptr);
  });
}

INSTANTIATE_TEST_SUITE_P(Shapes, Fp8DecodeTest,
                         ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16),
                                                              Dims(28, 4, 128, 16), Dims(8, 1, 128, 16)),
                                            ::testing::Values(1, 7, 128),
                                            ::testing::Values(Scales{1.0f, 1.0f}, Scales{0.25f, 2.0f},
                                                              Scales{0.375f, 0.6875f})));

void ExpectPrefillMatches(AttnCase& c, Scales scales) {
  Fp8Cache cache(c, scales);
  DeviceAttnCase dc(c);
  std::vector<int> tiles;
  const int positions = PrefillTilePositions(c.dims);
  for (size_t i = 0; i < c.seqs.size(); ++i) AppendPrefillTiles(i, c.q_len[i], positions, tiles);
  DevArray<int> dtiles(tiles);
  // kAuto picks the mma.sync kernel for an FP8 cache on every GPU.
  const absl::Status st = PagedPrefillAttention(dc.q.get(), c.QStride(), dc.out.get(), cache.Ref(scales), dc.batch,
                                                dtiles.get(), tiles.size() / 2, c.dims, nullptr);
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_LT(testing::MaxRelError(testing::ToFloat(dc.out.Download()), c.Reference()), 1e-2);
}

class Fp8PrefillTest : public ::testing::TestWithParam<std::tuple<AttnDims, Scales>> {};

TEST_P(Fp8PrefillTest, MixedStepWithCachedPrefixes) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, scales] = GetParam();
  AttnCase c(dims,
             {{0, 1}, {0, 19}, {0, 77}, {40, 33}, {129, 1}, {17, 64}, {63, 66}, {128, 128}, {5, 300}, {1000, 37}},
             22);
  ExpectPrefillMatches(c, scales);
}

TEST_P(Fp8PrefillTest, SharpSoftmax) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, scales] = GetParam();
  AttnCase c(dims, {{0, 150}, {300, 40}}, 23, 6.0f);
  ExpectPrefillMatches(c, scales);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Fp8PrefillTest,
                         ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16),
                                                              Dims(14, 2, 64, 16), Dims(7, 1, 128, 16),
                                                              Dims(8, 8, 128, 32), Dims(28, 4, 128, 16)),
                                            ::testing::Values(Scales{1.0f, 1.0f}, Scales{0.25f, 2.0f},
                                                              Scales{0.375f, 0.6875f})));

TEST(Fp8PrefillTest, ChunkAfter3000CachedKeys) {
  TP_SKIP_WITHOUT_GPU();
  AttnCase c(Dims(28, 4, 128, 16), {{3000, 90}, {0, 45}}, 24);
  ExpectPrefillMatches(c, {1.0f, 1.0f});
}

TEST(Fp8PrefillTest, WgmmaKernelRefusesFp8) {
  PagedAttnBatch b;
  KvCacheRef kv;
  kv.dtype = KvCacheDtype::kFp8E4m3;
  const absl::Status st =
      PagedPrefillAttention(nullptr, 0, nullptr, kv, b, nullptr, 1, Dims(4, 2, 64, 16), nullptr, PrefillKernel::kWgmma);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  kv.k_scale = 0.0f;
  EXPECT_FALSE(PagedPrefillAttention(nullptr, 0, nullptr, kv, b, nullptr, 1, Dims(4, 2, 64, 16), nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
