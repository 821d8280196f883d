// Kernel-level benchmark of the prefill path at the Qwen2-7B shape on one
// GPU, timed with CUDA events (median of --reps after two warm-ups), on
// device-generated random data:
//   - prefill attention, one fresh prompt per length, both kernels (mma.sync
//     and wgmma), TFLOP/s over the causal FLOPs 4 * head_dim * heads *
//     L(L+1)/2, and the largest difference between the two kernels' outputs;
//     the longest length again in chunks after cached prefixes;
//   - batch-1 decode attention at long contexts with several split counts, as
//     a share of the copy bandwidth (the KV bytes it must read);
//   - the 7B layer GEMMs at each length: cuBLASLt's first heuristic choice
//     against the searched algorithm (worker/cuda/gemm.h).
// Prints tables and one JSON line.
//
//   tpserve_prefill_kernel_bench --lengths 1024,4096,16384,32768 --chunk 4096
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "worker/cuda/fill.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/gemm.h"

namespace tpserve::bench {
namespace {

using worker::cuda::AttnDims;
using worker::cuda::PrefillKernel;
using bf16 = __nv_bfloat16;

#define BENCH_CHECK(expr)                                                       \
  do {                                                                          \
    if (auto st_ = (expr); !st_.ok()) {                                         \
      std::fprintf(stderr, "%s failed: %s\n", #expr, st_.ToString().c_str());   \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)
#define BENCH_CUDA(expr)                                                                                 \
  do {                                                                                                   \
    if (cudaError_t e_ = (expr); e_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s failed: %s\n", #expr, cudaGetErrorString(e_));                            \
      std::exit(1);                                                                                      \
    }                                                                                                    \
  } while (0)

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) v.push_back(std::stoi(x));
  return v;
}

// A device array of random bf16 in [-1, 1) (or zero-initialised ints).
template <typename T>
T* Alloc(size_t n) {
  T* p = nullptr;
  BENCH_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  return p;
}
bf16* RandomBf16(size_t n, uint64_t seed, float scale = 1.0f) {
  bf16* p = Alloc<bf16>(n);
  BENCH_CHECK(worker::cuda::FillUniformBf16(p, n, seed, -scale, scale, nullptr));
  return p;
}
int* Upload(const std::vector<int>& v) {
  int* p = Alloc<int>(v.size());
  BENCH_CUDA(cudaMemcpy(p, v.data(), v.size() * sizeof(int), cudaMemcpyHostToDevice));
  return p;
}

// Median milliseconds of `fn` over `reps` runs after two warm-ups.
double TimeMs(const std::function<void()>& fn, int reps) {
  cudaEvent_t a, b;
  BENCH_CUDA(cudaEventCreate(&a));
  BENCH_CUDA(cudaEventCreate(&b));
  fn();
  fn();
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA(cudaEventRecord(a));
    fn();
    BENCH_CUDA(cudaEventRecord(b));
    BENCH_CUDA(cudaEventSynchronize(b));
    float x = 0;
    BENCH_CUDA(cudaEventElapsedTime(&x, a, b));
    ms.push_back(x);
  }
  BENCH_CUDA(cudaEventDestroy(a));
  BENCH_CUDA(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// One sequence in an identity block table, its last `q_len` rows queried
// after `context - q_len` cached keys.
struct Step {
  int *q_start, *q_len, *ctx, *table, *tiles;
  int num_tiles;
  worker::cuda::PagedAttnBatch batch;
  Step(const AttnDims& d, int context, int q_len_value, int* table_dev, int max_blocks) {
    q_start = Upload({0});
    q_len = Upload({q_len_value});
    ctx = Upload({context});
    table = table_dev;
    std::vector<int> t;
    worker::cuda::AppendPrefillTiles(0, q_len_value, worker::cuda::PrefillTilePositions(d), t);
    tiles = Upload(t);
    num_tiles = static_cast<int>(t.size() / 2);
    batch.num_seqs = 1;
    batch.q_start = q_start;
    batch.q_len = q_len;
    batch.context_len = ctx;
    batch.block_tables = table;
    batch.max_blocks_per_seq = max_blocks;
  }
  ~Step() {
    cudaFree(q_start);
    cudaFree(q_len);
    cudaFree(ctx);
    cudaFree(tiles);
  }
};

double MaxRelDiff(const bf16* a, const bf16* b, size_t n) {
  std::vector<bf16> ha(n), hb(n);
  BENCH_CUDA(cudaMemcpy(ha.data(), a, n * 2, cudaMemcpyDeviceToHost));
  BENCH_CUDA(cudaMemcpy(hb.data(), b, n * 2, cudaMemcpyDeviceToHost));
  double diff = 0, ref = 1e-6;
  for (size_t i = 0; i < n; ++i) {
    const double x = __bfloat162float(ha[i]), y = __bfloat162float(hb[i]);
    const double d = std::fabs(x - y);
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    ref = std::max(ref, std::fabs(y));
  }
  return diff / ref;
}

int Main(int argc, char** argv) {
  std::vector<int> lengths = {1024, 4096, 16384, 32768};
  int chunk = 4096, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--lengths") lengths = ParseList(v);
    else if (k == "--chunk") chunk = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else { std::fprintf(stderr, "unknown flag %s\n", k.c_str()); return 1; }
  }
  const int max_len = *std::max_element(lengths.begin(), lengths.end());
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, wgmma prefill kernel %s\n", prop.name,
              worker::cuda::PrefillWgmmaAvailable() ? "available" : "NOT available");
  std::ostringstream json;
  json << "{\"device\":\"" << prop.name << "\",\"attention\":[";

  // --- prefill attention, 7B shape (28 query heads, 4 KV heads, head_dim 128)
  AttnDims d;
  d.num_heads = 28;
  d.num_kv_heads = 4;
  d.head_dim = 128;
  d.block_size = 16;
  const int q_stride = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim;
  const int cache_len = std::max(max_len, 131072);
  const int max_blocks = cache_len / d.block_size;
  std::vector<int> ident(max_blocks);
  for (int b = 0; b < max_blocks; ++b) ident[b] = b;
  int* table = Upload(ident);
  bf16* q = RandomBf16(static_cast<size_t>(max_len) * q_stride, 1);
  const size_t cache_elems = static_cast<size_t>(cache_len) * d.num_kv_heads * d.head_dim;
  bf16* kc = RandomBf16(cache_elems, 2);
  bf16* vc = RandomBf16(cache_elems, 3);
  const size_t out_elems = static_cast<size_t>(max_len) * d.num_heads * d.head_dim;
  bf16* out_mma = Alloc<bf16>(out_elems);
  bf16* out_wg = Alloc<bf16>(out_elems);
  const bool wgmma = worker::cuda::PrefillWgmmaAvailable();
  std::printf("\nprefill attention, 7B shape, one fresh prompt\n%-10s %12s %10s %12s %10s %12s\n", "tokens",
              "mma ms", "TFLOP/s", "wgmma ms", "TFLOP/s", "max rel diff");
  for (size_t li = 0; li < lengths.size(); ++li) {
    const int len = lengths[li];
    Step st(d, len, len, table, max_blocks);
    auto run = [&](PrefillKernel k, bf16* out) {
      BENCH_CHECK(worker::cuda::PagedPrefillAttention(q, q_stride, out, kc, vc, st.batch, st.tiles, st.num_tiles, d,
                                                      nullptr, k));
    };
    const double flops = 4.0 * d.head_dim * d.num_heads * len * (len + 1.0) / 2.0;
    const double mma = TimeMs([&] { run(PrefillKernel::kMma, out_mma); }, reps);
    double wg = NAN, diff = NAN;
    if (wgmma) {
      wg = TimeMs([&] { run(PrefillKernel::kWgmma, out_wg); }, reps);
      diff = MaxRelDiff(out_wg, out_mma, static_cast<size_t>(len) * d.num_heads * d.head_dim);
    }
    std::printf("%-10d %12.3f %10.1f %12.3f %10.1f %12.2e\n", len, mma, flops / mma / 1e9, wg, flops / wg / 1e9, diff);
    json << (li ? "," : "") << "{\"tokens\":" << len << ",\"mma_ms\":" << mma << ",\"wgmma_ms\":" << (wgmma ? wg : -1)
         << ",\"wgmma_vs_mma_rel_diff\":" << (wgmma ? diff : -1) << "}";
  }
  // The longest prompt again as chunks after their cached prefixes (what
  // chunked prefill runs), summed.
  {
    double total = 0;
    for (int c0 = 0; c0 < max_len; c0 += chunk) {
      const int n = std::min(chunk, max_len - c0);
      Step st(d, c0 + n, n, table, max_blocks);
      total += TimeMs([&] {
        BENCH_CHECK(worker::cuda::PagedPrefillAttention(q, q_stride, out_wg, kc, vc, st.batch, st.tiles,
                                                        st.num_tiles, d, nullptr));
      }, reps);
    }
    std::printf("%d tokens in %d-token chunks (default kernel): %.3f ms of attention\n", max_len, chunk, total);
    json << "],\"chunked\":{\"tokens\":" << max_len << ",\"chunk\":" << chunk << ",\"ms\":" << total << "}";
  }
  // head_dim 64 (0.5B shape: 14 query heads, 2 KV heads) at 4096 tokens.
  {
    AttnDims d64 = d;
    d64.num_heads = 14;
    d64.num_kv_heads = 2;
    d64.head_dim = 64;
    const int len = std::min(4096, max_len);
    Step st(d64, len, len, table, max_blocks);
    const double flops = 4.0 * 64 * 14 * len * (len + 1.0) / 2.0;
    const int qs64 = (14 + 4) * 64;
    double t[2] = {NAN, NAN};
    const PrefillKernel kinds[2] = {PrefillKernel::kMma, PrefillKernel::kWgmma};
    for (int i = 0; i < (wgmma ? 2 : 1); ++i) {
      t[i] = TimeMs([&] {
        BENCH_CHECK(worker::cuda::PagedPrefillAttention(q, qs64, out_mma, kc, vc, st.batch, st.tiles, st.num_tiles,
                                                        d64, nullptr, kinds[i]));
      }, reps);
    }
    std::printf("head_dim 64 (0.5B shape), %d tokens: mma %.3f ms (%.1f TFLOP/s), wgmma %.3f ms (%.1f TFLOP/s)\n", len,
                t[0], flops / t[0] / 1e9, t[1], flops / t[1] / 1e9);
  }

  // --- decode attention, batch 1, long contexts
  size_t copy_bytes = size_t{2} << 30;
  char* ca = Alloc<char>(copy_bytes);
  char* cb = Alloc<char>(copy_bytes);
  const double copy_ms = TimeMs([&] { BENCH_CUDA(cudaMemcpy(cb, ca, copy_bytes, cudaMemcpyDeviceToDevice)); }, reps);
  const double bw = 2.0 * copy_bytes / (copy_ms * 1e-3);
  cudaFree(ca);
  cudaFree(cb);
  std::printf("\ndecode attention, batch 1, 7B shape (copy bandwidth %.2f TB/s)\n%-10s %8s %10s %10s\n", bw / 1e12,
              "context", "splits", "us", "% of bw");
  json << ",\"copy_TBps\":" << bw / 1e12 << ",\"decode\":[";
  bool first = true;
  int num_sms = 0;
  cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0);
  for (int ctx : {4096, 32768, 131072}) {
    Step st(d, ctx, 1, table, max_blocks);
    const double kv_bytes = 2.0 * ctx * d.num_kv_heads * d.head_dim * 2;
    const int chosen = worker::cuda::ChooseDecodePartition(1, d.num_kv_heads, ctx, num_sms).num_splits;
    std::vector<int> candidates = {32, 64, 128};
    if (std::find(candidates.begin(), candidates.end(), chosen) == candidates.end()) {
      candidates.insert(candidates.begin(), chosen);
    }
    for (int splits : candidates) {
      worker::cuda::DecodePartition p;
      p.num_splits = splits;
      void* ws = Alloc<char>(worker::cuda::DecodeWorkspaceBytes(1, d.num_heads, d.head_dim, p));
      const double ms = TimeMs([&] {
        BENCH_CHECK(worker::cuda::PagedDecodeAttention(q, q_stride, out_mma, kc, vc, st.batch, p, ws, d, nullptr));
      }, 20);
      cudaFree(ws);
      const double pct = 100.0 * kv_bytes / (ms * 1e-3) / bw;
      std::printf("%-10d %8d %10.1f %9.1f%%%s\n", ctx, splits, ms * 1e3, pct, splits == chosen ? "  (chosen)" : "");
      json << (first ? "" : ",") << "{\"context\":" << ctx << ",\"splits\":" << splits << ",\"us\":" << ms * 1e3
           << ",\"bw_pct\":" << pct << "}";
      first = false;
    }
  }
  cudaFree(q);
  cudaFree(kc);
  cudaFree(vc);
  cudaFree(out_mma);
  cudaFree(out_wg);

  // --- GEMMs of a 7B layer: heuristic vs searched
  struct Shape {
    const char* name;
    int n, k;
    bool bias;
  };
  const Shape shapes[] = {{"qkv", q_stride, 3584, true}, {"o_proj", 3584, 3584, false},
                          {"gate_up", 2 * 18944, 3584, false}, {"down", 3584, 18944, false}};
  auto plain = worker::cuda::Gemm::Create();
  auto searched = worker::cuda::Gemm::Create();
  BENCH_CHECK(plain.status());
  BENCH_CHECK(searched.status());
  (*plain)->set_algo_search(false);
  (*searched)->set_algo_search(true);
  bf16* x = RandomBf16(static_cast<size_t>(max_len) * 18944, 4);
  bf16* w = RandomBf16(static_cast<size_t>(2 * 18944) * 3584, 5, 0.02f);
  bf16* bias = RandomBf16(q_stride, 6);
  bf16* out = Alloc<bf16>(static_cast<size_t>(max_len) * 2 * 18944);
  std::printf("\n7B layer GEMMs, TFLOP/s\n%-8s %-8s %12s %12s %8s\n", "tokens", "gemm", "heuristic", "searched", "gain");
  json << "],\"gemm\":[";
  first = true;
  for (int m : lengths) {
    double layer_plain = 0, layer_searched = 0;
    for (const Shape& s : shapes) {
      auto run = [&](worker::cuda::Gemm& g) {
        BENCH_CHECK(g.Linear(x, w, s.bias ? bias : nullptr, out, false, m, s.n, s.k, nullptr));
      };
      const double tp = TimeMs([&] { run(**plain); }, reps), ts = TimeMs([&] { run(**searched); }, reps);
      const double flops = 2.0 * m * s.n * s.k;
      layer_plain += tp;
      layer_searched += ts;
      std::printf("%-8d %-8s %12.1f %12.1f %7.1f%%\n", m, s.name, flops / tp / 1e9, flops / ts / 1e9,
                  100.0 * (tp / ts - 1.0));
      json << (first ? "" : ",") << "{\"tokens\":" << m << ",\"gemm\":\"" << s.name << "\",\"heuristic_ms\":" << tp
           << ",\"searched_ms\":" << ts << "}";
      first = false;
    }
    std::printf("%-8d %-8s %10.3f ms %9.3f ms %7.1f%%  (one layer; x28 for the model)\n", m, "layer", layer_plain,
                layer_searched, 100.0 * (layer_plain / layer_searched - 1.0));
  }
  json << "]}";
  std::printf("JSON %s\n", json.str().c_str());
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
