// Benchmark of the CUDA backend at a real model shape with dummy weights:
// decode tokens/s at several batch sizes, prefill time of one prompt per
// length (the whole backend step: plan, upload, forward, sampling), the
// longest prompt again in chunks of each --chunks size (what a token budget
// smaller than the prompt costs a lone prompt), batch-1 decode as a share of
// the memory roofline (weight bytes read per token -- all but the embedding
// table -- over the measured device copy bandwidth), and with --long-context
// batch-1 decode after a prompt of that many tokens against its roofline
// (weights + the KV cache read per token). Prints a table and one JSON line.
// With --tp N the model is split over N GPUs of this host (one thread per
// rank, NCCL, the worker's own communicator and all-reduce); weights and
// roofline are then per GPU. --quantization fp8 runs FP8 linear layers;
// awq, gptq and gptq-int8 run random packed int4 / int4 / int8 linear layers
// with groups of 128 (the AWQ/GPTQ kernels, worker/cuda/gemv_int.h).
// --kv-cache-dtype fp8 stores the KV cache in FP8 E4M3; the header line gives
// the KV blocks that --gpu-memory-utilization 0.9 leaves (ProfileMemory).
//
//   tpserve_bench --config tests/fixtures/shapes/qwen2-7b-instruct/config.json
//       --batch 1,8,32,128 --prompt 512 --new 128 --prefill 1024,4096,16384,32768
//       --chunks 4096,8192,16384 --long-context 32768
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/cuda/nccl_run.h"
#include "bench/cuda/seq_driver.h"
#include "common/logging.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/cuda_check.h"

namespace tpserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) v.push_back(std::stoi(x));
  return v;
}

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// Device-to-device copy bandwidth in bytes/s (read + write), as
// bench/hf_baseline.py measures it.
double CopyBandwidth() {
  const size_t bytes = size_t{4} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  for (int i = 0; i < 3; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  auto t = Clock::now();
  for (int i = 0; i < 10; ++i) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaDeviceSynchronize();
  const double s = Seconds(t) / 10;
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / s;
}

std::vector<int32_t> RandomPrompt(int len, int vocab, uint32_t seed) {
  std::vector<int32_t> p(len);
  for (int i = 0; i < len; ++i) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = static_cast<int32_t>((seed >> 8) % static_cast<uint32_t>(vocab));
  }
  return p;
}

// Set when several ranks run in threads: a failing rank ends the process, as
// its peers would wait in collectives forever.
bool g_multi_rank = false;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  if (g_multi_rank) {
    std::fflush(stderr);
    std::_Exit(1);
  }
  return 1;
}

struct Args {
  std::string config = "tests/fixtures/shapes/qwen2-7b-instruct/config.json";
  std::vector<int> batches = {1, 8, 32, 128}, prefills = {512, 2048}, chunks;
  int prompt = 512, new_tokens = 128, long_context = 0, tp = 1;
  bool eager = false;
  std::string quantization = "auto";
  std::string kv_cache_dtype = "auto";
};

// What the ranks of a tensor-parallel run agree on: the KV cache size.
struct Shared {
  explicit Shared(int n) : sync(n) {}
  std::barrier<> sync;
  std::mutex mu;
  int min_blocks = std::numeric_limits<int>::max();
};

// One rank of the benchmark; every rank runs the same steps (the collectives
// inside them pair up) and rank 0 prints.
int Run(const Args& a, int rank, const std::string& uid, Shared* shared) {
  const bool lead = rank == 0;
  auto out = [lead](const char* format, auto&&... args) {
    if (lead) std::printf(format, args...);
  };
  const std::string& config = a.config;
  const std::vector<int>&batches = a.batches, &prefills = a.prefills, &chunks = a.chunks;
  const int prompt = a.prompt, new_tokens = a.new_tokens, long_context = a.long_context;
  const bool eager = a.eager;
  const std::string& quantization = a.quantization;
  int max_batch = 1, max_prefill = prompt;
  for (int b : batches) max_batch = std::max(max_batch, b);
  for (int p : prefills) max_prefill = std::max(max_prefill, p);
  std::unique_ptr<worker::NcclCommunicator> comm;
  if (a.tp > 1) {
    auto c = worker::NcclCommunicator::Create(rank, a.tp, uid, rank, absl::Minutes(5));
    if (!c.ok()) return Fail(c.status());
    comm = std::move(*c);
  }
  auto backend = worker::CreateCudaBackend(rank);
  if (!backend.ok()) return Fail(backend.status());
  worker::LoadOptions o;
  o.model_path = config;
  o.load_format = "dummy";
  // Prompts up to max_position_embeddings (32768 for Qwen2-7B) fit exactly.
  o.max_model_len = std::max({max_prefill, prompt + new_tokens + 1, long_context});
  o.max_num_seqs = max_batch;
  o.max_num_batched_tokens = std::max(4096, max_prefill);
  o.enforce_eager = eager;
  o.quantization = quantization;
  o.kv_cache_dtype = a.kv_cache_dtype;
  if (auto st = (*backend)->Load(o, comm.get()); !st.ok()) return Fail(st);
  auto prof = (*backend)->ProfileMemory(0.9, 0);
  if (!prof.ok()) return Fail(prof.status());
  int blocks = std::min(prof->num_blocks, max_batch * ((prompt + new_tokens) / 16 + 2) + o.max_model_len / 16 + 2);
  if (shared != nullptr) {  // every rank's cache holds the same blocks
    {
      std::lock_guard<std::mutex> l(shared->mu);
      shared->min_blocks = std::min(shared->min_blocks, blocks);
    }
    shared->sync.arrive_and_wait();
    blocks = shared->min_blocks;
  }
  if (auto st = (*backend)->InitCache(blocks); !st.ok()) return Fail(st);
  const int vocab = (*backend)->config().vocab_size;
  const double bw = lead ? CopyBandwidth() : 0.0;
  const double weight_bytes = static_cast<double>((*backend)->weight_bytes());
  // A decode step reads every weight once except the embedding table, of
  // which it gathers one row per token: those are the bytes of the roofline.
  const auto& cfg = (*backend)->config();
  const double read_bytes = weight_bytes - 2.0 * cfg.vocab_size * cfg.hidden_size;

  const bool fp8_kv = a.kv_cache_dtype != "auto";
  out("\n%s on %s%s (%.2f GiB weights%s%s%s, copy bandwidth %.2f TB/s)%s%s\n", config.c_str(),
      a.tp > 1 ? absl::StrCat(a.tp, " x ").c_str() : "", (*backend)->device_name().c_str(), weight_bytes / (1 << 30),
      a.tp > 1 ? " per GPU" : "",
              quantization == "fp8" ? ", FP8 linear layers"
              : quantization == "gptq-int8"                      ? ", packed int8 linear layers"
              : quantization == "awq" || quantization == "gptq" ? ", packed int4 linear layers"
                                                                 : "",
              absl::StrCat(fp8_kv ? ", FP8 KV cache" : ", bf16 KV cache", ": ", prof->num_blocks, " blocks of ",
                           prof->bytes_per_block / 1024, " KiB")
                  .c_str(),
              bw / 1e12, eager ? " [eager]" : "",
              worker::cuda::PdlEnabled() ? "" : " [TPSERVE_PDL=0]");
  out("%-28s %14s %12s\n", "run", "tokens/s", "ms/step");
  std::ostringstream json;
  json << "{\"device\":\"" << (*backend)->device_name() << "\",\"tp\":" << a.tp << ",\"quantization\":\"" << quantization
       << "\",\"kv_cache_dtype\":\"" << a.kv_cache_dtype << "\",\"kv_blocks\":" << prof->num_blocks
       << ",\"kv_block_bytes\":" << prof->bytes_per_block << ",\"copy_TBps\":" << bw / 1e12
       << ",\"weight_bytes\":" << weight_bytes << ",\"weight_bytes_read_per_token\":" << read_bytes
       << ",\"decode\":[";
  double batch1 = 0;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const int b = batches[bi];
    SeqDriver d(16, blocks);
    for (int i = 0; i < b; ++i) d.Add(RandomPrompt(prompt, vocab, 17 + i), prompt + new_tokens + 1);
    // Prefill (chunked to the token budget), producing the first token.
    while (true) {
      worker::StepBatch step = d.Step(std::max(1, o.max_num_batched_tokens / b));
      if (step.seqs.empty() || step.seqs[0].num_scheduled_tokens == 1) break;
      auto r = (*backend)->Step(step);
      if (!r.ok()) return Fail(r.status());
      d.Advance(step);
      d.Append(*r);
    }
    auto t = Clock::now();
    for (int n = 1; n < new_tokens; ++n) {
      worker::StepBatch step = d.Step(0);
      auto r = (*backend)->Step(step);
      if (!r.ok()) return Fail(r.status());
      d.Advance(step);
      d.Append(*r);
    }
    const double s = Seconds(t);
    const double tps = b * (new_tokens - 1) / s;
    if (b == 1) batch1 = tps;
    out("decode batch %-15d %14.1f %12.3f\n", b, tps, 1e3 * s / (new_tokens - 1));
    json << (bi ? "," : "") << "{\"batch\":" << b << ",\"decode_tok_s\":" << tps
         << ",\"tpot_ms\":" << 1e3 * s / (new_tokens - 1) << "}";
  }
  json << "],\"prefill\":[";
  // One prompt of `len` tokens in steps of `chunk` tokens (0: one step), until
  // the step that samples; best wall time of `reps` after one warm-up.
  auto prefill = [&](int len, int chunk, int reps) -> absl::StatusOr<double> {
    double best = 1e30;
    for (int rep = 0; rep <= reps; ++rep) {
      SeqDriver d(16, blocks);
      d.Add(RandomPrompt(len, vocab, 99 + rep), std::min(len + 1, o.max_model_len));
      auto t = Clock::now();
      while (true) {
        worker::StepBatch step = d.Step(chunk);
        auto r = (*backend)->Step(step);
        if (!r.ok()) return r.status();
        d.Advance(step);
        if (!r->empty()) break;
      }
      if (rep > 0) best = std::min(best, Seconds(t));
    }
    return best;
  };
  double longest = 0;
  for (size_t pi = 0; pi < prefills.size(); ++pi) {
    const int len = prefills[pi];
    auto best = prefill(len, 0, 3);
    if (!best.ok()) return Fail(best.status());
    if (len == max_prefill) longest = *best;
    out("prefill %-19d %14.1f %12.3f\n", len, len / *best, 1e3 * *best);
    json << (pi ? "," : "") << "{\"prompt\":" << len << ",\"prefill_tok_s\":" << len / *best
         << ",\"ms\":" << 1e3 * *best << "}";
  }
  json << "],\"chunked\":[";
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    auto best = prefill(max_prefill, chunks[ci], 1);
    if (!best.ok()) return Fail(best.status());
    out("prefill %d in %-6d chunks %11.1f %12.3f  (%.1f%% over one step)\n", max_prefill, chunks[ci],
                max_prefill / *best, 1e3 * *best, 100.0 * (*best / longest - 1.0));
    json << (ci ? "," : "") << "{\"prompt\":" << max_prefill << ",\"chunk\":" << chunks[ci] << ",\"ms\":" << 1e3 * *best
         << "}";
  }
  json << "]";
  if (long_context > 0) {
    // Batch-1 decode of `steps` tokens after a prompt that ends them at
    // long_context tokens; each step reads the weights and the KV cache so far.
    const int steps = 64;
    SeqDriver d(16, blocks);
    d.Add(RandomPrompt(long_context - steps, vocab, 7), long_context);  // the prompt and its steps fill it
    while (true) {
      worker::StepBatch step = d.Step(o.max_num_batched_tokens);
      auto r = (*backend)->Step(step);
      if (!r.ok()) return Fail(r.status());
      d.Advance(step);
      d.Append(*r);
      if (!r->empty()) break;
    }
    auto t = Clock::now();
    for (int n = 1; n < steps; ++n) {
      worker::StepBatch step = d.Step(0);
      auto r = (*backend)->Step(step);
      if (!r.ok()) return Fail(r.status());
      d.Advance(step);
      d.Append(*r);
    }
    const double step_s = Seconds(t) / (steps - 1);
    const double kv_bytes = 2.0 * cfg.num_hidden_layers * (long_context - steps / 2) * cfg.num_key_value_heads *
                            cfg.head_dim * (fp8_kv ? 1 : 2);
    const double floor_s = (read_bytes + kv_bytes) / bw;
    out("decode batch 1 at %d context: %.3f ms/token; roofline %.3f ms (%.2f GB weights + %.2f GB KV)"
                ": %.1f%%\n", long_context, 1e3 * step_s, 1e3 * floor_s, read_bytes / 1e9, kv_bytes / 1e9,
                100.0 * floor_s / step_s);
    json << ",\"long_decode\":{\"context\":" << long_context << ",\"tpot_ms\":" << 1e3 * step_s
         << ",\"roofline_ms\":" << 1e3 * floor_s << ",\"roofline_pct\":" << 100.0 * floor_s / step_s << "}";
  }
  const double roofline = bw / read_bytes;
  out("batch-1 roofline %.1f tok/s (%.2f GB of weights read per token / %.2f TB/s): measured %.1f%%\n",
              roofline, read_bytes / 1e9, bw / 1e12, 100.0 * batch1 / roofline);
  json << ",\"roofline_tok_s\":" << roofline << ",\"batch1_roofline_pct\":" << 100.0 * batch1 / roofline << "}";
  out("JSON %s\n", json.str().c_str());
  return 0;
}

int Main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--enforce-eager") { a.eager = true; continue; }
    if (i + 1 >= argc) return Fail(absl::InvalidArgumentError("missing value for " + k));
    const std::string v = argv[++i];
    if (k == "--config") a.config = v;
    else if (k == "--batch") a.batches = ParseList(v);
    else if (k == "--prefill") a.prefills = ParseList(v);
    else if (k == "--chunks") a.chunks = ParseList(v);
    else if (k == "--long-context") a.long_context = std::stoi(v);
    else if (k == "--prompt") a.prompt = std::stoi(v);
    else if (k == "--new") a.new_tokens = std::stoi(v);
    else if (k == "--quantization") a.quantization = v;
    else if (k == "--kv-cache-dtype") a.kv_cache_dtype = v;
    else if (k == "--tp") a.tp = std::stoi(v);
    else return Fail(absl::InvalidArgumentError("unknown flag " + k));
  }
  if (a.tp <= 1) {
    (void)InitLogging("bench", "info");
    return Run(a, 0, "", nullptr);
  }
  int rc = 0;
  const std::optional<std::string> uid = StartNcclRun(a.tp, "bench", "info", &rc);
  if (!uid) return rc;
  g_multi_rank = true;
  Shared shared(a.tp);
  std::vector<std::thread> ranks;
  for (int r = 1; r < a.tp; ++r) ranks.emplace_back([&, r] { Run(a, r, *uid, &shared); });
  rc = Run(a, 0, *uid, &shared);
  for (auto& t : ranks) t.join();
  return rc;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
