// Tensor-parallel check of the CUDA backend: one thread per GPU, an NCCL
// communicator per rank (the worker's own NcclCommunicator), the same steps
// on every rank. Rank 0 writes the logits at every prompt position and greedy
// continuations, in the format of tpserve_gpu_check, so runs at TP=1, 2 and 4
// can be compared (scripts/gpu/tp_check.py). No gRPC.
//
//   tpserve_tp_check --model DIR --prompts prompts.txt --out DIR --tp N [--new 128]
//       [--load-format auto|dummy] [--seed S] [--quantization auto|fp8] [--kv-cache-dtype auto|fp8]
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "bench/cuda/seq_driver.h"
#include "common/logging.h"
#include "bench/cuda/nccl_run.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/cuda/cuda_backend.h"

namespace tpserve::bench {
namespace {

struct Args {
  std::string model, prompts_path, out = ".", format = "auto", quantization = "auto",
              kv_cache_dtype = "auto";
  int new_tokens = 128, tp = 1;
  uint64_t seed = 0;
};

struct Shared {
  explicit Shared(int n) : sync(n) {}
  std::barrier<> sync;
  std::mutex mu;
  int min_blocks = 1 << 30;
  std::string error;
  void Fail(int rank, const absl::Status& s) {
    std::lock_guard<std::mutex> l(mu);
    if (error.empty()) error = "rank " + std::to_string(rank) + ": " + s.ToString();
  }
};

// Runs rank `rank`; every rank executes the same steps (collectives inside).
void RunRank(int rank, const Args& a, const std::string& uid,
             const std::vector<std::vector<int32_t>>& prompts, Shared* sh) {
  auto die = [&](const absl::Status& s) {
    sh->Fail(rank, s);
    std::fprintf(stderr, "rank %d: %s\n", rank, s.ToString().c_str());
    std::fflush(stderr);
    std::_Exit(1);  // a rank that fails leaves its peers inside collectives
  };
  auto comm = worker::NcclCommunicator::Create(rank, a.tp, uid, rank, absl::Minutes(5));
  if (!comm.ok()) die(comm.status());
  auto backend = worker::CreateCudaBackend(rank);
  if (!backend.ok()) die(backend.status());
  const size_t len = prompts[0].size();
  worker::LoadOptions o;
  o.model_path = a.model;
  o.load_format = a.format;
  o.quantization = a.quantization;
  o.kv_cache_dtype = a.kv_cache_dtype;
  o.seed = a.seed;
  o.max_model_len = static_cast<int>(len) + a.new_tokens + 16;
  o.max_num_seqs = static_cast<int>(prompts.size());
  o.max_num_batched_tokens = std::max<int>(o.max_model_len * static_cast<int>(prompts.size()), 512);
  if (auto st = (*backend)->Load(o, comm->get()); !st.ok()) die(st);
  auto prof = (*backend)->ProfileMemory(0.85, 0);
  if (!prof.ok()) die(prof.status());
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->min_blocks = std::min(sh->min_blocks, prof->num_blocks);
  }
  sh->sync.arrive_and_wait();
  const int blocks = std::min(sh->min_blocks, 1 << 16);
  if (auto st = (*backend)->InitCache(blocks); !st.ok()) die(st);
  const int vocab = (*backend)->config().vocab_size;

  // Logits at every prompt position (one token per step for all prompts).
  SeqDriver logits_run(16, blocks);
  for (const auto& p : prompts) logits_run.Add(p, o.max_model_len);
  std::vector<std::vector<std::vector<float>>> all(prompts.size());
  for (size_t pos = 0; pos < len; ++pos) {
    worker::StepBatch b = logits_run.Step(1);
    for (auto& s : b.seqs) s.sample = true;
    auto l = (*backend)->StepLogits(b);
    if (!l.ok()) die(l.status());
    logits_run.Advance(b);
    if (rank == 0) {
      for (size_t i = 0; i < prompts.size(); ++i) all[i].push_back(std::move((*l)[i]));
    }
  }
  // Greedy continuations: whole-prompt prefill, then decode steps (CUDA
  // graphs unless the backend was told otherwise).
  SeqDriver gen(16, blocks);
  for (const auto& p : prompts) gen.Add(p, o.max_model_len);
  for (int t = 0; t < a.new_tokens; ++t) {
    worker::StepBatch b = gen.Step(0);
    auto r = (*backend)->Step(b);
    if (!r.ok()) die(r.status());
    gen.Advance(b);
    gen.Append(*r);
  }
  if (rank != 0) return;
  std::FILE* f = std::fopen((a.out + "/logits.f32").c_str(), "wb");
  if (f == nullptr) die(absl::InvalidArgumentError("cannot write " + a.out + "/logits.f32"));
  for (auto& rows : all) {
    for (auto& r : rows) std::fwrite(r.data(), sizeof(float), vocab, f);
  }
  std::fclose(f);
  std::ofstream g(a.out + "/greedy.txt");
  for (auto& s : gen.seqs()) {
    for (size_t i = s.prompt; i < s.tokens.size(); ++i) {
      g << s.tokens[i] << (i + 1 < s.tokens.size() ? " " : "\n");
    }
  }
}

int Main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--prompts") a.prompts_path = v;
    else if (k == "--out") a.out = v;
    else if (k == "--new") a.new_tokens = std::stoi(v);
    else if (k == "--tp") a.tp = std::stoi(v);
    else if (k == "--load-format") a.format = v;
    else if (k == "--seed") a.seed = std::stoull(v);
    else if (k == "--quantization") a.quantization = v;
    else if (k == "--kv-cache-dtype") a.kv_cache_dtype = v;
    else {
      std::fprintf(stderr, "error: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  std::ifstream in(a.prompts_path);
  if (a.model.empty() || !in) {
    std::fprintf(stderr, "error: need --model and a readable --prompts\n");
    return 2;
  }
  const std::vector<std::vector<int32_t>> prompts = ReadPromptIds(in);
  if (prompts.empty() || std::any_of(prompts.begin(), prompts.end(), [&](const auto& p) {
        return p.size() != prompts[0].size();
      })) {
    std::fprintf(stderr, "error: need prompts of equal length\n");
    return 2;
  }
  int rc = 0;
  const std::optional<std::string> uid = StartNcclRun(a.tp, "tp_check", "info", &rc);
  if (!uid) return rc;
  Shared shared(a.tp);
  std::vector<std::thread> threads;
  for (int r = 0; r < a.tp; ++r) {
    threads.emplace_back(RunRank, r, std::cref(a), std::cref(*uid), std::cref(prompts), &shared);
  }
  for (auto& t : threads) t.join();
  if (!shared.error.empty()) {
    std::fprintf(stderr, "error: %s\n", shared.error.c_str());
    return 1;
  }
  std::printf("tp=%d: wrote %zu prompts x %zu positions of logits and %d greedy tokens each\n",
              a.tp, prompts.size(), prompts[0].size(), a.new_tokens);
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
