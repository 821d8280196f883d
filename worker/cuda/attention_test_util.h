// Test fixtures shared by the prefill and decode attention tests: a random
// paged KV cache in shuffled blocks holding every sequence's keys (cached
// prefix + this step's rows), its device copy with NaN-poisoned output, and
// the double-precision CPU reference (threaded: the long-context cases score
// tens of thousands of keys per row).
#ifndef TPSERVE_WORKER_CUDA_ATTENTION_TEST_UTIL_H_
#define TPSERVE_WORKER_CUDA_ATTENTION_TEST_UTIL_H_

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/quant/dequant.h"
#include "common/quant/fp8_e4m3.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda::testing {

struct Seq {
  int computed;  // keys already cached
  int q_len;     // query rows this step
};

inline AttnDims Dims(int nh, int nkv, int d, int bs) {
  AttnDims x;
  x.num_heads = nh;
  x.num_kv_heads = nkv;
  x.head_dim = d;
  x.block_size = bs;
  return x;
}

struct AttnCase {
  AttnDims dims;
  std::vector<Seq> seqs;
  int num_blocks = 0, max_blocks = 0, rows = 0;
  std::vector<__nv_bfloat16> q, kc, vc;  // q: [rows, (nh + 2 nkv) * d] like the fused qkv
  std::vector<int> q_start, q_len, ctx, tables;

  // `q_scale` > 1 sharpens the softmax (scores of a few units instead of a
  // fraction of one), which exercises the running-max rescaling.
  AttnCase(AttnDims d, std::vector<Seq> s, uint32_t seed, float q_scale = 1.0f) : dims(d), seqs(std::move(s)) {
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
    kc = RandomBf16(cache, rng, 1.0f);
    vc = RandomBf16(cache, rng, 1.0f);
    q = RandomBf16(static_cast<size_t>(rows) * QStride(), rng, q_scale);
  }
  int QStride() const { return (dims.num_heads + 2 * dims.num_kv_heads) * dims.head_dim; }

  // The FP8 cache of this case: codes E4M3(x / scale) of kc / vc (software
  // encoder, RNE, saturating), and kc / vc replaced by the values the codes
  // stand for (code * scale, exact in bf16 for power-of-two scales), so
  // Reference() computes on what an FP8 cache holds.
  void RoundKvToFp8(float k_scale, float v_scale, std::vector<uint8_t>& k8, std::vector<uint8_t>& v8) {
    auto round = [](std::vector<__nv_bfloat16>& x, float scale, std::vector<uint8_t>& codes) {
      codes.resize(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        codes[i] = FloatToFp8E4M3(__bfloat162float(x[i]) / scale);
        x[i] = __float2bfloat16(Fp8E4M3ToFloat(codes[i]) * scale);
      }
    };
    round(kc, k_scale, k8);
    round(vc, v_scale, v8);
  }

  // Offset of key/value `t` of sequence `s`, KV head `kvh`, in kc / vc.
  size_t CacheOffset(size_t s, int t, int kvh) const {
    const size_t slot = static_cast<size_t>(tables[s * max_blocks + t / dims.block_size]) * dims.block_size +
                        t % dims.block_size;
    return (slot * dims.num_kv_heads + kvh) * dims.head_dim;
  }

  // Attention of one query row and head, into out[0, head_dim).
  void ReferenceRow(size_t s, int r, int h, float* out) const {
    const int d = dims.head_dim, g = dims.num_heads / dims.num_kv_heads;
    const int pos = ctx[s] - q_len[s] + r, row = q_start[s] + r;
    std::vector<double> qv(d), sc(pos + 1), o(d, 0.0);
    for (int i = 0; i < d; ++i) qv[i] = __bfloat162float(q[static_cast<size_t>(row) * QStride() + h * d + i]);
    double mx = -1e300;
    for (int t = 0; t <= pos; ++t) {
      const __nv_bfloat16* k = &kc[CacheOffset(s, t, h / g)];
      double acc = 0;
      for (int i = 0; i < d; ++i) acc += qv[i] * __bfloat162float(k[i]);
      sc[t] = acc / std::sqrt(static_cast<double>(d));
      mx = std::max(mx, sc[t]);
    }
    double sum = 0;
    for (int t = 0; t <= pos; ++t) {
      const double w = std::exp(sc[t] - mx);
      sum += w;
      const __nv_bfloat16* v = &vc[CacheOffset(s, t, h / g)];
      for (int i = 0; i < d; ++i) o[i] += w * __bfloat162float(v[i]);
    }
    for (int i = 0; i < d; ++i) out[i] = static_cast<float>(o[i] / sum);
  }

  // [rows, num_heads * head_dim], every query row of every sequence.
  std::vector<float> Reference() const {
    const int nh = dims.num_heads, d = dims.head_dim;
    std::vector<float> out(static_cast<size_t>(rows) * nh * d);
    std::vector<std::pair<size_t, int>> work;
    for (size_t s = 0; s < seqs.size(); ++s) {
      for (int r = 0; r < q_len[s]; ++r) work.emplace_back(s, r);
    }
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t i; (i = next.fetch_add(1)) < work.size();) {
        const auto [s, r] = work[i];
        for (int h = 0; h < nh; ++h) ReferenceRow(s, r, h, &out[(static_cast<size_t>(q_start[s] + r) * nh + h) * d]);
      }
    };
    std::vector<std::thread> threads(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
    for (auto& t : threads) t = std::thread(worker);
    for (auto& t : threads) t.join();
    return out;
  }
};

// The case on the device; `out` starts NaN-poisoned.
struct DeviceAttnCase {
  DevArray<__nv_bfloat16> q, kc, vc, out;
  DevArray<int> q_start, q_len, ctx, tables;
  PagedAttnBatch batch;
  explicit DeviceAttnCase(const AttnCase& c)
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

// Decode attention of the case in the three forms of the kernel -- narrow,
// wide (DecodePartition::wide_loads) and tensor cores (head dimensions 64
// and 128; others run the narrow form again) -- with `splits`
// splits: each within 1e-2 of the reference, narrow and wide bit for bit
// equal (same sums in the same order; the tensor-core form rounds P to bf16
// and sums in another order). `launch(partition, workspace)` writes into
// dc.out; the workspace is NaN-poisoned (empty splits write only their lse,
// and the merge must never read the rest of their slots), and so is dc.out
// before each form.
template <typename Launch>
void ExpectDecodeForms(const AttnCase& c, const DeviceAttnCase& dc, int splits, Launch launch) {
  std::vector<float> narrow;
  const std::vector<float> want = c.Reference();
  for (int form : {0, 1, 2}) {
    DecodePartition p;
    p.num_splits = splits;
    p.wide_loads = form == 1;
    p.tensor_cores = form == 2;
    DevArray<char> ws(DecodeWorkspaceBytes(c.seqs.size(), c.dims.num_heads, c.dims.head_dim, p));  // 0xFF
    ASSERT_EQ(cudaMemset(dc.out.get(), 0xFF, dc.out.size() * sizeof(dc.out.get()[0])), cudaSuccess);
    const absl::Status st = launch(p, ws.get());
    ASSERT_TRUE(st.ok()) << st;
    const std::vector<float> got = ToFloat(dc.out.Download());
    EXPECT_LT(MaxRelError(got, want), 1e-2) << "form " << form << " (0 narrow, 1 wide, 2 tensor cores)";
    if (form == 0) narrow = got;
    if (form == 1) {
      EXPECT_EQ(MaxRelError(got, narrow), 0.0) << "the wide form must give the narrow form's bits";
    }
  }
}

}  // namespace tpserve::worker::cuda::testing

#endif  // TPSERVE_WORKER_CUDA_ATTENTION_TEST_UTIL_H_
