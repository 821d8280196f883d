// Runs tpserve's CUDA backend on prompts from a file and writes what the HF
// comparison needs (scripts/gpu/compare_hf.py): the logits at every prompt
// position and greedy continuations. No gRPC: it links the backend directly.
//
//   tpserve_gpu_check --model DIR --prompts prompts.txt --out DIR [--new 64]
//                     [--logits-last N] [--greedy-drop D]
//
// prompts.txt: one prompt per line, token ids separated by spaces. Writes
// OUT/logits.f32 (prompts x positions x vocab float32) and OUT/greedy.txt
// (one line of ids per prompt).
//
// Without --logits-last every position's logits come from decode steps (one
// token a step from position 0), and all prompts must have the same length.
// With --logits-last N (long prompts: 32k positions of logits would be 20 GB)
// only the last N positions are written, and prompts may differ in length:
// each prompt's first len-N tokens are prefilled (the prefill kernel), then
//   logits.f32          the N positions as decode steps (split-KV decode),
//   logits_prefill.f32  the same N positions, each as the end of a prefill
//                       chunk over a cached prefix (position p: chunk
//                       [len-N-1, p], so every chunk has at least 2 queries).
// --greedy-drop D continues each prompt less its last D tokens, so a task
// whose answer ends the prompt (scripts/gpu/copy_compare.py) can compare the
// continuation with the dropped tokens.
#include <algorithm>
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

// One step moving each sequence i of `d` that has computed fewer than upto[i]
// tokens toward upto[i] (<= its token count), at most `budget` tokens in all (a sequence that does not fit waits
// for a later step; the first one always goes). A sequence samples (returns
// logits) where its chunk ends at upto[i] and `sample` is set.
worker::StepBatch Toward(const SeqDriver& d, const std::vector<int>& upto, int budget, bool sample) {
  worker::StepBatch b;
  int used = 0;
  for (worker::SeqStep st : d.Step(0).seqs) {
    const int left = upto[st.seq_id] - st.num_computed_tokens;
    if (left <= 0) continue;
    const int n = std::min(left, budget - used);
    if (n <= 0 || (n < left && !b.seqs.empty())) break;
    st.num_scheduled_tokens = n;
    st.sample = sample && n == left;
    b.seqs.push_back(st);
    used += n;
  }
  return b;
}

// Runs steps until every sequence has computed upto[i] tokens, without
// sampling (filling the KV cache).
absl::Status RunTo(worker::Backend& backend, SeqDriver& d, const std::vector<int>& upto, int budget) {
  for (;;) {
    worker::StepBatch b = Toward(d, upto, budget, false);
    if (b.seqs.empty()) return absl::OkStatus();
    if (auto r = backend.Step(b); !r.ok()) return r.status();
    d.Advance(b);
  }
}

// Logits after each of the last n positions of every sequence, one file row
// per position ([seq][position][vocab]). decode: one token a step; else each
// position p ends a prefill chunk [len-n-1, p] over the cached prefix (each
// chunk recomputes and rewrites the K/V of its positions).
absl::Status LastLogits(worker::Backend& backend, SeqDriver& d, int n, bool decode, int budget, int vocab,
                        const std::string& path) {
  auto& seqs = d.seqs();
  std::vector<int> upto(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) upto[i] = static_cast<int>(seqs[i].tokens.size()) - n - (decode ? 0 : 1);
  if (auto st = RunTo(backend, d, upto, budget); !st.ok()) return st;
  std::vector<std::vector<float>> rows(seqs.size() * n);
  for (int k = 0; k < n; ++k) {
    for (size_t i = 0; i < seqs.size(); ++i) {
      upto[i] = static_cast<int>(seqs[i].tokens.size()) - n + k + 1;
      if (!decode) seqs[i].computed = static_cast<int>(seqs[i].tokens.size()) - n - 1;
    }
    for (;;) {  // one step unless the budget splits the batch
      worker::StepBatch b = Toward(d, upto, budget, true);
      if (b.seqs.empty()) break;
      auto l = backend.StepLogits(b);
      if (!l.ok()) return l.status();
      size_t j = 0;
      for (const auto& st : b.seqs) {
        if (st.sample) rows[st.seq_id * n + k] = std::move((*l)[j++]);
      }
      d.Advance(b);
    }
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InvalidArgumentError("cannot write " + path);
  for (const auto& r : rows) {
    if (r.size() != static_cast<size_t>(vocab)) {
      std::fclose(f);
      return absl::InternalError("a position's logits are missing");
    }
    std::fwrite(r.data(), sizeof(float), vocab, f);
  }
  std::fclose(f);
  return absl::OkStatus();
}

// Logits at every position: all prompts (of equal lengths) advance one token
// per step (the decode path), rows written as [prompt][position][vocab].
absl::Status AllLogits(worker::Backend& backend, const std::vector<std::vector<int32_t>>& prompts, int max_len,
                       int num_blocks, int vocab, const std::string& out) {
  SeqDriver run(16, num_blocks);
  for (const auto& p : prompts) {
    if (!run.Add(p, max_len)) return absl::ResourceExhaustedError("KV cache too small");
  }
  std::vector<std::vector<std::vector<float>>> all(prompts.size());
  for (size_t pos = 0; pos < prompts[0].size(); ++pos) {
    worker::StepBatch b = run.Step(1);
    for (auto& s : b.seqs) s.sample = true;
    auto l = backend.StepLogits(b);
    if (!l.ok()) return l.status();
    run.Advance(b);
    for (size_t i = 0; i < prompts.size(); ++i) all[i].push_back(std::move((*l)[i]));
  }
  std::FILE* f = std::fopen((out + "/logits.f32").c_str(), "wb");
  if (f == nullptr) return absl::InvalidArgumentError("cannot write " + out + "/logits.f32");
  for (auto& rows : all) {
    for (auto& r : rows) std::fwrite(r.data(), sizeof(float), vocab, f);
  }
  std::fclose(f);
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  std::string model, prompts_path, out = ".", format = "auto";
  int new_tokens = 64, logits_last = 0, greedy_drop = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--prompts") prompts_path = v;
    else if (k == "--out") out = v;
    else if (k == "--new") new_tokens = std::stoi(v);
    else if (k == "--load-format") format = v;
    else if (k == "--logits-last") logits_last = std::stoi(v);
    else if (k == "--greedy-drop") greedy_drop = std::stoi(v);
    else return Fail(absl::InvalidArgumentError("unknown flag " + k));
  }
  std::ifstream in(prompts_path);
  if (model.empty() || !in) return Fail(absl::InvalidArgumentError("need --model and a readable --prompts"));
  const std::vector<std::vector<int32_t>> prompts = ReadPromptIds(in);
  if (prompts.empty()) return Fail(absl::InvalidArgumentError("no prompts"));
  const size_t len = prompts[0].size();
  size_t max_len = 0;
  for (const auto& p : prompts) {
    if (logits_last == 0 && p.size() != len) {
      return Fail(absl::InvalidArgumentError("prompts must have equal lengths (or pass --logits-last)"));
    }
    if (logits_last > 0 && p.size() < static_cast<size_t>(logits_last) + 2) {
      return Fail(absl::InvalidArgumentError("--logits-last needs prompts of at least N+2 tokens"));
    }
    if (greedy_drop < 0 || p.size() <= static_cast<size_t>(greedy_drop)) {
      return Fail(absl::InvalidArgumentError("--greedy-drop must leave each prompt at least one token"));
    }
    max_len = std::max(max_len, p.size());
  }
  (void)InitLogging("gpu_check", "info");
  auto backend = worker::CreateCudaBackend(0);
  if (!backend.ok()) return Fail(backend.status());
  worker::LoadOptions o;
  o.model_path = model;
  o.load_format = format;
  o.max_model_len = static_cast<int>(max_len) + new_tokens + 16;
  o.max_num_seqs = static_cast<int>(prompts.size());
  o.max_num_batched_tokens = std::max<int>(o.max_model_len, 512);
  if (auto st = (*backend)->Load(o, nullptr); !st.ok()) return Fail(st);
  auto prof = (*backend)->ProfileMemory(0.8, 0);
  if (!prof.ok()) return Fail(prof.status());
  if (auto st = (*backend)->InitCache(prof->num_blocks); !st.ok()) return Fail(st);
  const int vocab = (*backend)->config().vocab_size;

  const int budget = o.max_num_batched_tokens;
  if (logits_last > 0) {
    for (const bool decode : {true, false}) {
      SeqDriver run(16, prof->num_blocks);
      for (const auto& p : prompts) {
        if (!run.Add(p, o.max_model_len)) return Fail(absl::ResourceExhaustedError("KV cache too small"));
      }
      const std::string path = out + (decode ? "/logits.f32" : "/logits_prefill.f32");
      if (auto st = LastLogits(**backend, run, logits_last, decode, budget, vocab, path); !st.ok()) return Fail(st);
    }
  } else if (auto st = AllLogits(**backend, prompts, o.max_model_len, prof->num_blocks, vocab, out); !st.ok()) {
    return Fail(st);
  }

  // Greedy continuations: whole-prompt prefill (as many prompts a step as the
  // token budget takes), then decode steps.
  SeqDriver gen(16, prof->num_blocks);
  for (const auto& p : prompts) {
    if (!gen.Add(std::vector<int32_t>(p.begin(), p.end() - greedy_drop), o.max_model_len)) {
      return Fail(absl::ResourceExhaustedError("KV cache too small"));
    }
  }
  for (int t = 0; t < new_tokens; ++t) {
    std::vector<int> upto;
    for (const auto& s : gen.seqs()) upto.push_back(static_cast<int>(s.tokens.size()));
    while (true) {  // every sequence samples its t-th token
      worker::StepBatch b = Toward(gen, upto, budget, true);
      if (b.seqs.empty()) break;
      auto r = (*backend)->Step(b);
      if (!r.ok()) return Fail(r.status());
      gen.Advance(b);
      gen.Append(*r);
    }
  }
  std::ofstream g(out + "/greedy.txt");
  for (auto& s : gen.seqs()) {
    for (size_t i = s.prompt; i < s.tokens.size(); ++i) g << s.tokens[i] << (i + 1 < s.tokens.size() ? " " : "\n");
  }
  std::printf("wrote %zu prompts x %zu positions of logits and %d greedy tokens each\n", prompts.size(),
              logits_last > 0 ? static_cast<size_t>(logits_last) : len, new_tokens);
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
