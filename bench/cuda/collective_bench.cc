// Time of the collectives in one tensor-parallel decode step, measured the
// way the worker runs them: the worker's NcclCommunicator, one thread per GPU,
// and the step's collectives captured into a CUDA graph and replayed (as the
// decode graphs do), so launch overhead is not counted as communication.
// Per step at batch B: one bf16 all-reduce of B x hidden (embedding), two
// float32 all-reduces of B x hidden per layer (o_proj, down_proj) and one
// float32 all-gather of B x vocab/TP (lm_head). Prints a table; the graph
// column is the all-reduce term of the batch-1 roofline.
//
// A second table times one float32 all-reduce of B x hidden, again in a graph
// of 2 x layers calls: NCCL alone and followed by the residual add + RMSNorm
// kernel (what decode steps ran before), and the custom all-reduce
// (worker/comm/custom_allreduce.h) one-shot, two-shot and fused with the add
// + norm, the last also with programmatic dependent launch as decode graphs
// run it. The custom path needs peer-accessible GPUs (else "n/a").
//
//   tpserve_collective_bench --config tests/fixtures/shapes/qwen2-72b-instruct/config.json \
//       --tp 4 [--batch 1,32] [--replays 50]
#include <cuda_runtime.h>

#include <barrier>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/model/model_config.h"
#include "bench/cuda/nccl_run.h"
#include "worker/comm/custom_allreduce.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/norm.h"

namespace tpserve::bench {
namespace {

struct Args {
  std::string config;
  int tp = 0, replays = 50;
  std::vector<int> batches = {1, 32};
};

struct Row {
  int batch = 0, ops = 0;
  double eager_us = 0, graph_us = 0, allreduce_us = 0;
  // µs per float32 all-reduce of batch x hidden (graph), by path; < 0: n/a.
  double nccl = -1, nccl_norm = -1, one_shot = -1, two_shot = -1, fused_one = -1, fused_two = -1, fused_pdl = -1;
  bool default_two = false;  // the worker would run two-shot at this size
};

#define BENCH_CHECK(expr, what)                                            \
  do {                                                                     \
    if (cudaError_t e_ = (expr); e_ != cudaSuccess) {                      \
      std::fprintf(stderr, "rank %d: %s: %s\n", rank, what, cudaGetErrorString(e_)); \
      std::_Exit(1);                                                       \
    }                                                                      \
  } while (0)

void Die(int rank, const absl::Status& s) {
  std::fprintf(stderr, "rank %d: %s\n", rank, s.ToString().c_str());
  std::_Exit(1);  // peers are inside collectives
}

void RunRank(int rank, const Args& a, const ModelConfig& cfg, const std::string& uid,
             std::barrier<>* sync, std::vector<Row>* rows) {
  auto comm = worker::NcclCommunicator::Create(rank, a.tp, uid, rank, absl::Minutes(2));
  if (!comm.ok()) Die(rank, comm.status());
  BENCH_CHECK(cudaSetDevice(rank), "cudaSetDevice");
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  const int h = cfg.hidden_size, layers = cfg.num_hidden_layers;
  const int shard = (cfg.vocab_size + a.tp - 1) / a.tp;
  int max_b = 1;
  for (int b : a.batches) max_b = std::max(max_b, b);
  worker::CustomAllReduce::Options options;
  options.max_bytes = size_t{4} * max_b * h;
  options.one_shot_max_bytes = options.max_bytes;  // both algorithms at every size
  options.timeout = absl::Seconds(5);  // a broken run fails fast rather than stalling
  auto custom = worker::CustomAllReduce::Create(**comm, options);
  if (!custom.ok()) Die(rank, custom.status());
  __nv_bfloat16 *residual = nullptr, *normed = nullptr, *weight = nullptr;
  BENCH_CHECK(cudaMalloc(&residual, size_t{2} * max_b * h), "malloc");
  BENCH_CHECK(cudaMalloc(&normed, size_t{2} * max_b * h), "malloc");
  BENCH_CHECK(cudaMalloc(&weight, size_t{2} * h), "malloc");
  BENCH_CHECK(cudaMemset(residual, 0, size_t{2} * max_b * h), "memset");
  BENCH_CHECK(cudaMemset(weight, 0, size_t{2} * h), "memset");
  void *act = nullptr, *logits = nullptr, *gathered = nullptr;
  BENCH_CHECK(cudaMalloc(&act, size_t{4} * max_b * h), "malloc");
  BENCH_CHECK(cudaMalloc(&logits, size_t{4} * max_b * shard), "malloc");
  BENCH_CHECK(cudaMalloc(&gathered, size_t{4} * max_b * shard * a.tp), "malloc");
  BENCH_CHECK(cudaMemset(act, 0, size_t{4} * max_b * h), "memset");
  BENCH_CHECK(cudaMemset(logits, 0, size_t{4} * max_b * shard), "memset");
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0), "event");
  BENCH_CHECK(cudaEventCreate(&e1), "event");
  for (int b : a.batches) {
    const size_t n = static_cast<size_t>(b) * h;
    auto step = [&](bool with_gather) {
      absl::Status s = (*comm)->AllReduceSum(act, n, worker::CommDType::kBFloat16, stream);
      for (int l = 0; s.ok() && l < 2 * layers; ++l) {
        s = (*comm)->AllReduceSum(act, n, worker::CommDType::kFloat32, stream);
      }
      if (s.ok() && with_gather) {
        s = (*comm)->AllGather(logits, gathered, static_cast<size_t>(b) * shard, worker::CommDType::kFloat32, stream);
      }
      if (!s.ok()) Die(rank, s);
    };
    auto timed = [&](auto&& body, int reps) {
      sync->arrive_and_wait();
      BENCH_CHECK(cudaEventRecord(e0, stream), "record");
      for (int r = 0; r < reps; ++r) body();
      BENCH_CHECK(cudaEventRecord(e1, stream), "record");
      BENCH_CHECK(cudaEventSynchronize(e1), "sync");
      float ms = 0;
      BENCH_CHECK(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
      return 1000.0 * ms / reps;
    };
    for (int w = 0; w < 3; ++w) step(true);  // warm-up (NCCL channels, buffers)
    BENCH_CHECK(cudaStreamSynchronize(stream), "sync");
    const double eager = timed([&] { step(true); }, 5);
    // The same collectives as a graph, as the decode graphs run them; a
    // second graph without the all-gather isolates the all-reduces.
    cudaGraphExec_t full = nullptr, reduces = nullptr;
    for (int g = 0; g < 2; ++g) {
      cudaGraph_t graph;
      BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
      step(g == 0);
      BENCH_CHECK(cudaStreamEndCapture(stream, &graph), "end capture");
      BENCH_CHECK(cudaGraphInstantiate(g == 0 ? &full : &reduces, graph, 0), "instantiate");
      cudaGraphDestroy(graph);
    }
    for (int w = 0; w < 3; ++w) BENCH_CHECK(cudaGraphLaunch(full, stream), "launch");
    const double graph_us = timed([&] { BENCH_CHECK(cudaGraphLaunch(full, stream), "launch"); }, a.replays);
    const double ar_us = timed([&] { BENCH_CHECK(cudaGraphLaunch(reduces, stream), "launch"); }, a.replays);
    cudaGraphExecDestroy(full);
    cudaGraphExecDestroy(reduces);
    Row row{b, 2 * layers + 2, eager, graph_us, ar_us};
    // One kind of all-reduce, 2 x layers times in a graph: µs per call.
    auto per_call = [&](auto&& one_call, bool pdl) {
      const worker::cuda::PdlStepScope scope(pdl);
      auto body = [&] {
        for (int l = 0; l < 2 * layers; ++l) {
          if (absl::Status s = one_call(); !s.ok()) Die(rank, s);
        }
      };
      body();  // warm-up, eager
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
      body();
      BENCH_CHECK(cudaStreamEndCapture(stream, &graph), "end capture");
      BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
      cudaGraphDestroy(graph);
      for (int w = 0; w < 3; ++w) BENCH_CHECK(cudaGraphLaunch(exec, stream), "launch");
      const double us = timed([&] { BENCH_CHECK(cudaGraphLaunch(exec, stream), "launch"); }, a.replays);
      cudaGraphExecDestroy(exec);
      return us / (2 * layers);
    };
    float* f = static_cast<float*>(act);
    const float eps = 1e-6f;
    row.nccl = per_call([&] { return (*comm)->AllReduceSum(f, n, worker::CommDType::kFloat32, stream); }, false);
    row.nccl_norm = per_call([&] {
      absl::Status s = (*comm)->AllReduceSum(f, n, worker::CommDType::kFloat32, stream);
      return s.ok() ? worker::cuda::AddRmsNorm(f, residual, weight, normed, b, h, eps, stream) : s;
    }, false);
    if (worker::CustomAllReduce* ar = custom->get(); ar != nullptr) {
      using worker::cuda::AllReduceAlgo;
      row.one_shot = per_call([&] { return ar->AllReduce(f, f, n, AllReduceAlgo::kOneShot, stream); }, false);
      if (n % (4 * a.tp) == 0) {
        row.two_shot = per_call([&] { return ar->AllReduce(f, f, n, AllReduceAlgo::kTwoShot, stream); }, false);
      }
      auto fused = [&](AllReduceAlgo algo) {
        return [&, algo] { return ar->AllReduceAddRmsNorm(f, residual, weight, normed, b, h, eps, algo, stream); };
      };
      row.fused_one = per_call(fused(AllReduceAlgo::kOneShot), false);
      if (n % (4 * a.tp) == 0) row.fused_two = per_call(fused(AllReduceAlgo::kTwoShot), false);
      // The worker's choice by size (CustomAllReduce::Choose with default options).
      row.default_two = n * 4 > worker::CustomAllReduce::DefaultOneShotMaxBytes(a.tp) && n % (4 * a.tp) == 0;
      row.fused_pdl = per_call(fused(row.default_two ? AllReduceAlgo::kTwoShot : AllReduceAlgo::kOneShot), true);
      if (absl::Status s = ar->Health(); !s.ok()) Die(rank, s);
    }
    if (rank == 0) rows->push_back(row);
  }
  sync->arrive_and_wait();
}

int Main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") {
      a.config = v;
    } else if (k == "--tp") {
      a.tp = std::stoi(v);
    } else if (k == "--replays") {
      a.replays = std::stoi(v);
    } else if (k == "--batch") {
      a.batches.clear();
      std::stringstream ss(v);
      for (std::string t; std::getline(ss, t, ',');) a.batches.push_back(std::stoi(t));
    } else {
      std::fprintf(stderr, "error: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (a.config.empty() || a.tp < 2 || a.replays < 1 || a.batches.empty()) {
    std::fprintf(stderr, "usage: tpserve_collective_bench --config config.json --tp N(>=2) [--batch 1,32] "
                         "[--replays 50]\n");
    return 2;
  }
  auto cfg = LoadModelConfig(a.config);
  if (!cfg.ok()) {
    std::fprintf(stderr, "error: %s\n", cfg.status().ToString().c_str());
    return 2;
  }
  int rc = 0;
  const std::optional<std::string> uid = StartNcclRun(a.tp, "collective_bench", "warn", &rc);
  if (!uid) return rc;
  std::barrier<> sync(a.tp);
  std::vector<Row> rows;
  std::vector<std::thread> threads;
  for (int r = 0; r < a.tp; ++r) {
    threads.emplace_back(RunRank, r, std::cref(a), std::cref(*cfg), std::cref(*uid), &sync, &rows);
  }
  for (auto& t : threads) t.join();
  std::printf("collectives of one decode step: hidden %d, %d layers, vocab %d, TP=%d\n", cfg->hidden_size,
              cfg->num_hidden_layers, cfg->vocab_size, a.tp);
  std::printf("| batch | collectives | eager us/step | graph us/step | graph us/step, all-reduces only | us per all-reduce (graph) |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (const Row& r : rows) {
    std::printf("| %d | %d | %.1f | %.1f | %.1f | %.2f |\n", r.batch, r.ops, r.eager_us, r.graph_us, r.allreduce_us,
                r.allreduce_us / (r.ops - 1));
  }
  std::printf("\nus per float32 all-reduce of batch x %d (graph of %d calls), TP=%d\n", cfg->hidden_size,
              2 * cfg->num_hidden_layers, a.tp);
  std::printf("| TP | batch | NCCL | NCCL + add+norm | one-shot | two-shot | fused one-shot | fused two-shot "
              "| fused, worker's choice, PDL |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  auto cell = [](double us) { return us < 0 ? std::string("n/a") : absl::StrFormat("%.2f", us); };
  for (const Row& r : rows) {
    std::printf("| %d | %d | %s | %s | %s | %s | %s | %s | %s (%s) |\n", a.tp, r.batch, cell(r.nccl).c_str(),
                cell(r.nccl_norm).c_str(), cell(r.one_shot).c_str(), cell(r.two_shot).c_str(),
                cell(r.fused_one).c_str(), cell(r.fused_two).c_str(), cell(r.fused_pdl).c_str(),
                r.default_two ? "two-shot" : "one-shot");
  }
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
