// Split-KV decode attention against the CPU reference, and decode with RoPE
// and the KV write folded in against the two-kernel path and the reference.
#include "worker/cuda/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "common/quant/fp8_e4m3.h"

#include "gtest/gtest.h"
#include "worker/cuda/attention_test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::AttnCase;
using testing::DevArray;
using testing::DeviceAttnCase;
using testing::Dims;

class DecodeTest : public ::testing::TestWithParam<std::tuple<AttnDims, int>> {};

TEST_P(DecodeTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, splits] = GetParam();
  // Contexts from one key to several 64-key splits, with ragged tails; with
  // 32 or 128 splits most splits of the short ones are empty.
  AttnCase c(dims, {{0, 1}, {31, 1}, {100, 1}, {1500, 1}, {257, 1}, {63, 1}, {64, 1}}, 11);
  DeviceAttnCase dc(c);
  testing::ExpectDecodeForms(c, dc, splits, [&](const DecodePartition& p, void* ws) {
    return PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(), dc.batch, p, ws,
                                dims, nullptr);
  });
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeTest,
    ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16), Dims(28, 4, 128, 16),
                                         Dims(8, 1, 128, 16), Dims(4, 4, 64, 8)),
                       ::testing::Values(1, 3, 7, 32, 128)));

// Contexts of 32k and 40k keys (what long-context decode steps read), split
// the way a batch-1 graph splits them and four times finer.
TEST(DecodeTest, LongContexts) {
  TP_SKIP_WITHOUT_GPU();
  const AttnDims dims = Dims(28, 4, 128, 16);
  AttnCase c(dims, {{32000, 1}, {40000, 1}}, 12);
  DeviceAttnCase dc(c);
  const auto want = c.Reference();
  for (int splits : {ChooseDecodePartition(2, 4, 40001, 132).num_splits, 128}) {
    for (bool tensor_cores : {false, true}) {
      DecodePartition p = ChooseDecodePartition(2, 4, 40001, 132);  // the wide form
      p.num_splits = splits;
      p.tensor_cores = tensor_cores;
      DevArray<char> ws(DecodeWorkspaceBytes(c.seqs.size(), dims.num_heads, dims.head_dim, p));
      ASSERT_EQ(cudaMemset(dc.out.get(), 0xFF, dc.out.size() * 2), cudaSuccess);  // poison again
      ASSERT_TRUE(PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(), dc.batch, p,
                                       ws.get(), dims, nullptr).ok());
      EXPECT_LT(testing::MaxRelError(testing::ToFloat(dc.out.Download()), want), 1e-2)
          << splits << " splits, tensor cores " << tensor_cores;
    }
  }
}

RopeParams TestRope(int head_dim, float attention_factor) {
  RopeParams r;
  for (int i = 0; i < head_dim / 2; ++i) r.inv_freq[i] = static_cast<float>(std::pow(1e6, -2.0 * i / head_dim));
  r.attention_factor = attention_factor;
  return r;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& x) {
  std::vector<uint8_t> b(x.size() * sizeof(T));
  std::memcpy(b.data(), x.data(), b.size());
  return b;
}

// One decode step's inputs on the device: unrotated qkv rows, the cache (bf16
// or FP8 codes, bytes) and NaN-poisoned output and split partials.
struct FusedRun {
  DevArray<__nv_bfloat16> qkv, out;
  DevArray<uint8_t> k, v;
  DevArray<char> ws;
  FusedRun(const AttnCase& c, const std::vector<uint8_t>& k0, const std::vector<uint8_t>& v0, size_t ws_bytes)
      : qkv(c.q), out(static_cast<size_t>(c.rows) * c.dims.num_heads * c.dims.head_dim), k(k0), v(v0), ws(ws_bytes) {}
  KvCacheRef Ref(bool fp8) const {
    return fp8 ? KvCacheRef{k.get(), v.get(), KvCacheDtype::kFp8E4m3, 0.25f, 2.0f}
               : KvCacheRef{k.get(), v.get(), KvCacheDtype::kBf16, 1.0f, 1.0f};
  }
};

class FusedRopeDecodeTest : public ::testing::TestWithParam<std::tuple<AttnDims, int, bool>> {};

// PagedDecodeAttentionWithRope(kFused) against RopeAndCacheWrite +
// PagedDecodeAttention on copies of the same inputs: the output and every
// cache byte identical, qkv untouched; then its output against the CPU
// reference computed on what the two-kernel path left (rotated q, cache).
// FP8 caches use scales k 1/4, v 2 (the write's inverse scales are checked).
TEST_P(FusedRopeDecodeTest, BitIdenticalToSeparateKernels) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, splits, fp8] = GetParam();
  const int bs = dims.block_size;
  // New tokens at a block's first and last slot, at a 64-key split's start
  // and end, inside long splits; the last row is padding (context 0, slot -1).
  std::vector<testing::Seq> seqs;
  for (int ctx : {1, bs, bs + 1, 64, 65, 70, 129, 512, 1000, 1601, 1}) seqs.push_back({ctx - 1, 1});
  AttnCase c(dims, seqs, 40 + splits, 3.0f);
  const size_t pad = seqs.size() - 1;
  c.ctx[pad] = 0;
  std::vector<int> positions, slots;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int p = c.ctx[i] - 1;
    positions.push_back(std::max(p, 0));
    slots.push_back(p < 0 ? -1 : c.tables[i * c.max_blocks + p / bs] * bs + p % bs);
  }
  std::vector<uint8_t> k8, v8;
  if (fp8) c.RoundKvToFp8(0.25f, 2.0f, k8, v8);
  const std::vector<uint8_t> k0 = fp8 ? k8 : Bytes(c.kc), v0 = fp8 ? v8 : Bytes(c.vc);
  DecodePartition p;
  p.num_splits = splits;
  const size_t ws_bytes = DecodeWorkspaceBytes(seqs.size(), dims.num_heads, dims.head_dim, p);
  DeviceAttnCase dc(c);  // the batch description (its own q and caches are not used)
  DevArray<int> dpos(positions), dslots(slots);
  const RopeParams rope = TestRope(dims.head_dim, 1.25f);

  FusedRun two(c, k0, v0, ws_bytes), one(c, k0, v0, ws_bytes);
  ASSERT_TRUE(RopeAndCacheWrite(two.qkv.get(), dpos.get(), dslots.get(), two.Ref(fp8), seqs.size(), dims, rope,
                                nullptr).ok());
  ASSERT_TRUE(PagedDecodeAttention(two.qkv.get(), c.QStride(), two.out.get(), two.Ref(fp8), dc.batch, p,
                                   two.ws.get(), dims, nullptr).ok());
  const absl::Status st = PagedDecodeAttentionWithRope(one.qkv.get(), c.QStride(), one.out.get(), dpos.get(),
                                                       dslots.get(), one.Ref(fp8), dc.batch, p, one.ws.get(), dims,
                                                       rope, nullptr, DecodeRope::kFused);
  ASSERT_TRUE(st.ok()) << st;
  const auto out1 = one.out.Download(), out2 = two.out.Download();
  EXPECT_EQ(Bytes(out1), Bytes(out2)) << "output differs from the two-kernel path";
  const auto k2 = two.k.Download(), v2 = two.v.Download();
  EXPECT_EQ(one.k.Download(), k2) << "K cache differs";
  EXPECT_EQ(one.v.Download(), v2) << "V cache differs";
  EXPECT_EQ(Bytes(one.qkv.Download()), Bytes(c.q)) << "qkv was modified";
  EXPECT_NE(k2, k0) << "the new tokens' keys were not written";

  // The reference on what the two-kernel path stored.
  c.q = two.qkv.Download();
  for (size_t i = 0; i < c.kc.size(); ++i) {
    if (fp8) {
      c.kc[i] = __float2bfloat16(Fp8E4M3ToFloat(k2[i]) * 0.25f);
      c.vc[i] = __float2bfloat16(Fp8E4M3ToFloat(v2[i]) * 2.0f);
    } else {
      std::memcpy(&c.kc[i], &k2[2 * i], 2);
      std::memcpy(&c.vc[i], &v2[2 * i], 2);
    }
  }
  auto want = c.Reference(), got = testing::ToFloat(out1);
  const size_t row = static_cast<size_t>(dims.num_heads) * dims.head_dim;
  for (size_t e = pad * row; e < (pad + 1) * row; ++e) EXPECT_EQ(got[e], 0.0f) << "padding row";
  want.resize(pad * row);
  got.resize(pad * row);
  EXPECT_LT(testing::MaxRelError(got, want), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedRopeDecodeTest,
    ::testing::Combine(::testing::Values(Dims(28, 4, 128, 16), Dims(4, 2, 64, 16), Dims(2, 1, 32, 16),
                                         Dims(8, 1, 128, 16), Dims(4, 4, 64, 8), Dims(14, 2, 64, 32)),
                       ::testing::Values(1, 3, 7, 66, 128), ::testing::Bool()));

TEST(DecodePartitionTest, FillsTheGpuWithinLimits) {
  for (int sms : {10, 108, 132, 148}) {
    for (int seqs : {1, 2, 8, 64, 256}) {
      for (int kv : {1, 2, 4, 8}) {
        for (int ctx : {1, 63, 64, 65, 1000, 8192, 32768, 131072}) {
          const int splits = ChooseDecodePartition(seqs, kv, ctx, sms).num_splits;
          EXPECT_GE(splits, 1);
          EXPECT_LE(splits, 128);
          EXPECT_LE(splits, (ctx + 63) / 64) << "splits of fewer than 64 keys";
        }
      }
    }
  }
  // Batch 1 of a 4-KV-head model on an H200 (132 SMs): many splits, so ~one
  // block per SM for the tensor-core kernel (132 / 4 = 33).
  EXPECT_EQ(DecodeBlocksPerSm(), kDecodeBlocksPerSmMma);
  EXPECT_EQ(ChooseDecodePartition(1, 4, 32768, 132).num_splits, 33);
  EXPECT_EQ(ChooseDecodePartition(1, 4, 640, 132).num_splits, 10);
  // A batch that fills the GPU by itself needs no split.
  EXPECT_EQ(ChooseDecodePartition(256, 4, 32768, 132).num_splits, 1);
  // The target follows the SM count: 16 (sequence, KV head) blocks get 9
  // splits each on 132 SMs (144 blocks), 7 on an A100's 108 (112), 1 on a
  // 10-SM GPU.
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 132).num_splits, 9);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 108).num_splits, 7);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 10).num_splits, 1);
  // The wide form while the (sequence, KV head) pairs fit one per SM.
  EXPECT_TRUE(ChooseDecodePartition(1, 4, 512, 132).wide_loads);
  EXPECT_TRUE(ChooseDecodePartition(33, 4, 512, 132).wide_loads);
  EXPECT_FALSE(ChooseDecodePartition(34, 4, 512, 132).wide_loads);
  EXPECT_FALSE(ChooseDecodePartition(128, 4, 512, 132).wide_loads);
  // The tensor-core kernel at every batch (TPSERVE_DECODE_MMA=0 turns it off).
  EXPECT_TRUE(ChooseDecodePartition(1, 4, 512, 132).tensor_cores);
  EXPECT_TRUE(ChooseDecodePartition(128, 4, 512, 132).tensor_cores);
}

TEST(AttentionTest, RejectsBadShapes) {
  PagedAttnBatch b;
  b.num_seqs = 1;
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(3, 2, 64, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(4, 2, 96, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {129}, nullptr,
                                    Dims(4, 2, 64, 16), nullptr).ok());
  // Query rows are read in 16-byte loads: a stride of 516 elements would misalign every other row.
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 516, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(4, 2, 64, 16), nullptr).ok());
  const RopeParams rope = TestRope(64, 1.0f);
  EXPECT_FALSE(PagedDecodeAttentionWithRope(nullptr, 256, nullptr, nullptr, nullptr, Bf16Kv(nullptr, nullptr), b, {1},
                                            nullptr, Dims(3, 2, 64, 16), rope, nullptr, DecodeRope::kFused).ok());
  EXPECT_FALSE(PagedDecodeAttentionWithRope(nullptr, 255, nullptr, nullptr, nullptr, Bf16Kv(nullptr, nullptr), b, {1},
                                            nullptr, Dims(2, 1, 64, 16), rope, nullptr, DecodeRope::kFused).ok());
  KvCacheRef zero_scale;
  zero_scale.k_scale = 0.0f;
  EXPECT_FALSE(PagedDecodeAttentionWithRope(nullptr, 256, nullptr, nullptr, nullptr, zero_scale, b, {1}, nullptr,
                                            Dims(2, 1, 64, 16), rope, nullptr, DecodeRope::kFused).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
