// Runs tpserve's CUDA backend on prompts from a file and writes what the HF
// comparison needs (scripts/gpu/compare_hf.py): the logits at every prompt
// position and greedy continuations. No gRPC: it links the backend directly.
//
//   tpserve_gpu_check --model DIR --prompts prompts.txt --out DIR [--new 64]
//
// prompts.txt: one prompt per line, token ids separated by spaces. Writes
// OUT/logits.f32 (prompts x positions x vocab float32, all prompts must have
// the same length) and OUT/greedy.txt (one line of ids per prompt).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cuda/seq_driver.h"
#include "common/logging.h"
#include "worker/cuda/cuda_backend.h"

namespace tpserve::bench {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  std::string model, prompts_path, out = ".", format = "auto";
  int new_tokens = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--prompts") prompts_path = v;
    else if (k == "--out") out = v;
    else if (k == "--new") new_tokens = std::stoi(v);
    else if (k == "--load-format") format = v;
    else return Fail(absl::InvalidArgumentError("unknown flag " + k));
  }
  std::ifstream in(prompts_path);
  if (model.empty() || !in) return Fail(absl::InvalidArgumentError("need --model and a readable --prompts"));
  const std::vector<std::vector<int32_t>> prompts = ReadPromptIds(in);
  if (prompts.empty()) return Fail(absl::InvalidArgumentError("no prompts"));
  const size_t len = prompts[0].size();
  for (const auto& p : prompts) {
    if (p.size() != len) return Fail(absl::InvalidArgumentError("prompts must have equal lengths"));
  }
  (void)InitLogging("gpu_check", "info");
  auto backend = worker::CreateCudaBackend(0);
  if (!backend.ok()) return Fail(backend.status());
  worker::LoadOptions o;
  o.model_path = model;
  o.load_format = format;
  o.max_model_len = static_cast<int>(len) + new_tokens + 16;
  o.max_num_seqs = static_cast<int>(prompts.size());
  o.max_num_batched_tokens = std::max<int>(o.max_model_len, 512);
  if (auto st = (*backend)->Load(o, nullptr); !st.ok()) return Fail(st);
  auto prof = (*backend)->ProfileMemory(0.8, 0);
  if (!prof.ok()) return Fail(prof.status());
  if (auto st = (*backend)->InitCache(prof->num_blocks); !st.ok()) return Fail(st);
  const int vocab = (*backend)->config().vocab_size;

  // Logits at every position: all prompts advance one token per step (the
  // decode path), rows written as [prompt][position][vocab].
  SeqDriver logits_run(16, prof->num_blocks);
  for (const auto& p : prompts) logits_run.Add(p, o.max_model_len);
  std::FILE* f = std::fopen((out + "/logits.f32").c_str(), "wb");
  if (f == nullptr) return Fail(absl::InvalidArgumentError("cannot write " + out + "/logits.f32"));
  std::vector<std::vector<std::vector<float>>> all(prompts.size());
  for (size_t pos = 0; pos < len; ++pos) {
    worker::StepBatch b = logits_run.Step(1);
    for (auto& s : b.seqs) s.sample = true;
    auto l = (*backend)->StepLogits(b);
    if (!l.ok()) return Fail(l.status());
    logits_run.Advance(b);
    for (size_t i = 0; i < prompts.size(); ++i) all[i].push_back(std::move((*l)[i]));
  }
  for (auto& rows : all) {
    for (auto& r : rows) std::fwrite(r.data(), sizeof(float), vocab, f);
  }
  std::fclose(f);

  // Greedy continuations: whole-prompt prefill, then decode steps.
  SeqDriver gen(16, prof->num_blocks);
  for (const auto& p : prompts) gen.Add(p, o.max_model_len);
  for (int t = 0; t < new_tokens; ++t) {
    worker::StepBatch b = gen.Step(0);
    auto r = (*backend)->Step(b);
    if (!r.ok()) return Fail(r.status());
    gen.Advance(b);
    gen.Append(*r);
  }
  std::ofstream g(out + "/greedy.txt");
  for (auto& s : gen.seqs()) {
    for (size_t i = s.prompt; i < s.tokens.size(); ++i) g << s.tokens[i] << (i + 1 < s.tokens.size() ? " " : "\n");
  }
  std::printf("wrote %zu prompts x %zu positions of logits and %d greedy tokens each\n", prompts.size(), len,
              new_tokens);
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
