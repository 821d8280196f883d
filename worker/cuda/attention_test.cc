#include "worker/cuda/attention.h"

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;

struct Seq {
  int computed;  // keys already cached
  int q_len;     // query rows this step
};

// A random paged cache holding every sequence's keys (computed + new) in
// shuffled blocks, plus the CPU reference attention.
struct Case {
  AttnDims dims;
  std::vector<Seq> seqs;
  int num_blocks = 0, max_blocks = 0, rows = 0;
  std::vector<bf16> q, kc, vc;  // q: [rows, (nh + 2 nkv) * d] like the fused qkv
  std::vector<int> q_start, q_len, ctx, tables;

  Case(AttnDims d, std::vector<Seq> s, uint32_t seed) : dims(d), seqs(std::move(s)) {
    std::mt19937 rng(seed);
    for (const Seq& x : seqs) {
      const int blocks = (x.computed + x.q_len + d.block_size - 1) / d.block_size;
      max_blocks = std::max(max_blocks, blocks);
      num_blocks += blocks;
    }
    num_blocks += 3;  // unused blocks stay random: reading them would show
    std::vector<int> perm(num_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    tables.assign(seqs.size() * max_blocks, -1);
    int next = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int blocks = (seqs[i].computed + seqs[i].q_len + d.block_size - 1) / d.block_size;
      for (int b = 0; b < blocks; ++b) tables[i * max_blocks + b] = perm[next++];
      q_start.push_back(rows);
      q_len.push_back(seqs[i].q_len);
      ctx.push_back(seqs[i].computed + seqs[i].q_len);
      rows += seqs[i].q_len;
    }
    const size_t cache = static_cast<size_t>(num_blocks) * d.block_size * d.num_kv_heads * d.head_dim;
    kc = testing::RandomBf16(cache, rng, 1.0f);
    vc = testing::RandomBf16(cache, rng, 1.0f);
    q = testing::RandomBf16(static_cast<size_t>(rows) * QStride(), rng, 1.0f);
  }
  int QStride() const { return (dims.num_heads + 2 * dims.num_kv_heads) * dims.head_dim; }

  std::vector<float> Reference() const {
    const int nh = dims.num_heads, d = dims.head_dim, g = nh / dims.num_kv_heads;
    std::vector<float> out(static_cast<size_t>(rows) * nh * d);
    for (size_t s = 0; s < seqs.size(); ++s) {
      for (int r = 0; r < q_len[s]; ++r) {
        const int pos = ctx[s] - q_len[s] + r, row = q_start[s] + r;
        for (int h = 0; h < nh; ++h) {
          std::vector<double> sc(pos + 1);
          double mx = -1e300;
          for (int t = 0; t <= pos; ++t) {
            const size_t off = ((static_cast<size_t>(tables[s * max_blocks + t / dims.block_size]) *
                                     dims.block_size + t % dims.block_size) * dims.num_kv_heads + h / g) * d;
            double acc = 0;
            for (int i = 0; i < d; ++i) {
              acc += __bfloat162float(q[static_cast<size_t>(row) * QStride() + h * d + i]) *
                     __bfloat162float(kc[off + i]);
            }
            sc[t] = acc / std::sqrt(static_cast<double>(d));
            mx = std::max(mx, sc[t]);
          }
          double sum = 0;
          for (auto& x : sc) sum += (x = std::exp(x - mx));
          for (int i = 0; i < d; ++i) {
            double o = 0;
            for (int t = 0; t <= pos; ++t) {
              const size_t off = ((static_cast<size_t>(tables[s * max_blocks + t / dims.block_size]) *
                                       dims.block_size + t % dims.block_size) * dims.num_kv_heads + h / g) * d;
              o += sc[t] * __bfloat162float(vc[off + i]);
            }
            out[(static_cast<size_t>(row) * nh + h) * d + i] = static_cast<float>(o / sum);
          }
        }
      }
    }
    return out;
  }
};

struct DeviceCase {
  DevArray<bf16> q, kc, vc, out;
  DevArray<int> q_start, q_len, ctx, tables;
  PagedAttnBatch batch;
  explicit DeviceCase(const Case& c)
      : q(c.q), kc(c.kc), vc(c.vc), out(static_cast<size_t>(c.rows) * c.dims.num_heads * c.dims.head_dim),
        q_start(c.q_start), q_len(c.q_len), ctx(c.ctx), tables(c.tables) {
    batch.num_seqs = static_cast<int>(c.seqs.size());
    batch.q_start = q_start.get();
    batch.q_len = q_len.get();
    batch.context_len = ctx.get();
    batch.block_tables = tables.get();
    batch.max_blocks_per_seq = c.max_blocks;
  }
};

AttnDims Dims(int nh, int nkv, int d, int bs) {
  AttnDims x;
  x.num_heads = nh;
  x.num_kv_heads = nkv;
  x.head_dim = d;
  x.block_size = bs;
  return x;
}

class PrefillTest : public ::testing::TestWithParam<AttnDims> {};

TEST_P(PrefillTest, MatchesCpuReferenceWithCachedPrefixes) {
  TP_SKIP_WITHOUT_GPU();
  // Fresh prompts, a chunk after a cached prefix, a lone decode row mixed in,
  // and lengths that straddle tile and block edges.
  Case c(GetParam(), {{0, 1}, {0, 77}, {40, 33}, {129, 1}, {0, 200}, {17, 64}}, 7);
  DeviceCase dc(c);
  std::vector<int> tiles;
  for (size_t i = 0; i < c.seqs.size(); ++i) AppendPrefillTiles(i, c.q_len[i], tiles);
  DevArray<int> dtiles(tiles);
  ASSERT_TRUE(PagedPrefillAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(),
                                    dc.batch, dtiles.get(), tiles.size() / 2, c.dims, nullptr).ok());
  const auto got = testing::ToFloat(dc.out.Download());
  EXPECT_LT(testing::MaxRelError(got, c.Reference()), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PrefillTest,
                         ::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16), Dims(14, 2, 64, 16),
                                           Dims(7, 1, 128, 16), Dims(8, 8, 128, 32)));

class DecodeTest : public ::testing::TestWithParam<std::tuple<AttnDims, int>> {};

TEST_P(DecodeTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, splits] = GetParam();
  // Contexts from one key to several 64-key splits, with ragged tails; with
  // 32 splits most splits of the short ones are empty.
  Case c(dims, {{0, 1}, {31, 1}, {100, 1}, {1500, 1}, {257, 1}, {63, 1}, {64, 1}}, 11);
  DeviceCase dc(c);
  DecodePartition p;
  p.num_splits = splits;
  DevArray<char> ws(DecodeWorkspaceBytes(c.seqs.size(), dims.num_heads, dims.head_dim, p));
  ASSERT_TRUE(PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(),
                                   dc.batch, p, ws.get(), dims, nullptr).ok());
  const auto got = testing::ToFloat(dc.out.Download());
  EXPECT_LT(testing::MaxRelError(got, c.Reference()), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeTest,
    ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16), Dims(28, 4, 128, 16),
                                         Dims(8, 1, 128, 16), Dims(4, 4, 64, 8)),
                       ::testing::Values(1, 3, 7, 32)));

TEST(DecodePartitionTest, FillsTheGpuWithinLimits) {
  for (int sms : {10, 108, 132, 148}) {
    for (int seqs : {1, 2, 8, 64, 256}) {
      for (int kv : {1, 2, 4, 8}) {
        for (int ctx : {1, 63, 64, 65, 1000, 8192, 32768, 131072}) {
          const int splits = ChooseDecodePartition(seqs, kv, ctx, sms).num_splits;
          EXPECT_GE(splits, 1);
          EXPECT_LE(splits, 32);
          EXPECT_LE(splits, (ctx + 63) / 64) << "splits of fewer than 64 keys";
        }
      }
    }
  }
  // Batch 1 of a 4-KV-head model on an H200 (132 SMs): many splits, so ~two
  // blocks per SM.
  EXPECT_EQ(ChooseDecodePartition(1, 4, 32768, 132).num_splits, 32);
  EXPECT_EQ(ChooseDecodePartition(1, 4, 640, 132).num_splits, 10);
  // A batch that fills the GPU by itself needs no split.
  EXPECT_EQ(ChooseDecodePartition(256, 4, 32768, 132).num_splits, 1);
  // The target follows the SM count: 16 (sequence, KV head) blocks get 17
  // splits each on 132 SMs (272 blocks), 14 on an A100's 108 (224), 2 on a
  // 10-SM GPU.
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 132).num_splits, 17);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 108).num_splits, 14);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 10).num_splits, 2);
}

TEST(AttentionTest, RejectsBadShapes) {
  PagedAttnBatch b;
  b.num_seqs = 1;
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(3, 2, 64, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(4, 2, 96, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {33}, nullptr,
                                    Dims(4, 2, 64, 16), nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
