// Throughput of the CPU backend: prefill and decode tokens per second for a
// batch of synthetic prompts.
//   cpu_backend_bench MODEL_DIR [batch=4] [prompt_len=128] [decode_steps=32] [dummy]
// With "dummy" MODEL_DIR may be a config.json (random weights at real size).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "worker/model/cpu_backend.h"
#include "worker/model/cpu_parallel.h"

namespace tpserve::worker {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [batch] [prompt_len] [decode_steps] [dummy]\n",
                 argv[0]);
    return 2;
  }
  const int batch = argc > 2 ? std::atoi(argv[2]) : 4;
  const int prompt_len = argc > 3 ? std::atoi(argv[3]) : 128;
  const int steps = argc > 4 ? std::atoi(argv[4]) : 32;
  if (batch < 1 || prompt_len < 1 || steps < 1) {
    std::fprintf(stderr, "batch, prompt_len and decode_steps must be >= 1\n");
    return 2;
  }
  LoadOptions options;
  options.model_path = argv[1];
  if (argc > 5 && std::string(argv[5]) == "dummy") options.load_format = "dummy";
  options.block_size = 16;
  auto backend = *CreateCpuBackend();
  auto start = std::chrono::steady_clock::now();
  if (auto s = backend->Load(options, nullptr); !s.ok()) {
    std::fprintf(stderr, "load failed: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const double load_s = Seconds(start);
  const int blocks_per_seq = (prompt_len + steps + 15) / 16;
  if (auto s = backend->InitCache(batch * blocks_per_seq); !s.ok()) {
    std::fprintf(stderr, "cache: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const int vocab = backend->config().vocab_size;
  std::vector<std::vector<int32_t>> tokens(batch), tables(batch);
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < prompt_len; ++i) tokens[b].push_back((b * 7919 + i * 104729) % vocab);
    for (int k = 0; k < blocks_per_seq; ++k) tables[b].push_back(b * blocks_per_seq + k);
  }
  SamplingParams greedy;
  auto step = [&](int computed, int scheduled) {
    StepBatch sb;
    for (int b = 0; b < batch; ++b) {
      sb.seqs.push_back(SeqStep{static_cast<uint64_t>(b), tokens[b], prompt_len, computed,
                                scheduled, tables[b], true, &greedy});
    }
    auto r = backend->Step(sb);
    if (!r.ok()) {
      std::fprintf(stderr, "step failed: %s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
    for (int b = 0; b < batch; ++b) tokens[b].push_back((*r)[b].token_id);
  };
  start = std::chrono::steady_clock::now();
  step(0, prompt_len);
  const double prefill_s = Seconds(start);
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps - 1; ++i) step(prompt_len + i, 1);
  const double decode_s = Seconds(start);
  std::printf("threads %d, load %.2f s, weights %.1f MB\n", cpu::NumThreads(), load_s,
              backend->weight_bytes() / 1e6);
  std::printf("prefill: %d x %d tokens in %.3f s = %.0f tokens/s\n", batch, prompt_len, prefill_s,
              batch * prompt_len / prefill_s);
  std::printf("decode: %d steps x %d seqs in %.3f s = %.0f tokens/s (%.1f ms/step)\n", steps - 1,
              batch, decode_s, (steps - 1) * batch / decode_s, 1e3 * decode_s / (steps - 1));
  return 0;
}

}  // namespace
}  // namespace tpserve::worker

int main(int argc, char** argv) { return tpserve::worker::Main(argc, argv); }
