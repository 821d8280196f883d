// Structured output's cost on the GPU (issue 21): decode tokens/s of a batch
// at a real model shape (dummy weights) with free text, then with a JSON
// Schema grammar on every sequence -- masks built on the host by the
// worker's matchers while the forward pass runs (StepBatch::fill_masks), as
// the worker service does -- first with a cold mask cache, then warm. A new
// grammar's masks are filled by --precompute-threads background threads (2,
// as a CUDA worker starts; 0 = built on first use only).
//
//   tpserve_structured_bench --config tests/fixtures/shapes/qwen2-7b-instruct/config.json
//       --tokenizer-dir tests/fixtures/tiny-qwen2-chat --batch 32 --prompt 128 --new 128
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/cuda/seq_driver.h"
#include "common/logging.h"
#include "structured/grammar_cache.h"
#include "worker/cuda/cuda_backend.h"

namespace tpserve::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Long enough that no sequence completes within the run: every step masks.
constexpr char kSpec[] =
    R"({"type":"json_schema","schema":{"type":"object","properties":{"items":{"type":"array",)"
    R"("items":{"type":"object","properties":{"name":{"type":"string","maxLength":40},)"
    R"("qty":{"type":"integer","minimum":0,"maximum":100000},"note":{"type":"string","maxLength":60}},)"
    R"("required":["name","qty","note"]},"minItems":1,"maxItems":30}},"required":["items"]}})";

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

// What one run measured.
struct Run {
  double tok_s = 0;
  double mask_ms_per_step = 0;  // host time in fill_masks, per decode step
  int documents = 0;             // grammars completed (then restarted)
};

// Prefills `batch` prompts, then decodes `new_tokens` - 1 steps; with
// `grammars`, every sequence follows kSpec.
absl::StatusOr<Run> Decode(worker::Backend& backend, int blocks, int batch, int prompt, int new_tokens,
                           structured::GrammarCache* grammars) {
  const int vocab = backend.config().vocab_size;
  SeqDriver d(16, blocks);
  std::vector<std::unique_ptr<structured::GrammarMatcher>> matchers;
  std::vector<std::vector<uint32_t>> masks(batch);
  for (int i = 0; i < batch; ++i) {
    std::vector<int32_t> p(prompt);
    for (int j = 0; j < prompt; ++j) p[j] = (i * 7919 + j * 104729) % vocab;
    if (!d.Add(std::move(p), prompt + new_tokens + 1)) return absl::ResourceExhaustedError("cache too small");
    if (grammars != nullptr) {
      auto m = grammars->NewMatcher(kSpec);
      if (!m.ok()) return m.status();
      matchers.push_back(*std::move(m));
      masks[i].resize(grammars->vocab().mask_words());
    }
  }
  double mask_s = 0;
  int documents = 0;
  auto step = [&](int chunk) -> absl::Status {
    worker::StepBatch b = d.Step(chunk);
    if (grammars != nullptr) {
      for (auto& s : b.seqs) {
        if (s.sample) s.allowed_mask = masks[s.seq_id];
      }
      b.fill_masks = [&] {
        const auto t = Clock::now();
        for (const auto& s : b.seqs) {
          if (s.sample) matchers[s.seq_id]->FillNextTokenBitmask(masks[s.seq_id]);
        }
        mask_s += Seconds(t);
      };
    }
    auto r = backend.Step(b);
    if (!r.ok()) return r.status();
    d.Advance(b);
    d.Append(*r);
    if (grammars != nullptr) {
      for (const auto& x : *r) {
        auto& m = matchers[x.seq_id];
        if (!m->AcceptToken(x.token_id)) {
          return absl::InternalError(absl::StrCat("sequence ", x.seq_id, ": the sampler picked token ",
                                                  x.token_id, ", which the grammar refuses"));
        }
        if (m->IsTerminated()) {
          // A finished document only allows EOS (and a terminated matcher
          // accepts nothing): start the next one so every step keeps
          // building real masks.
          ++documents;
          auto next = grammars->NewMatcher(kSpec);
          if (!next.ok()) return next.status();
          m = *std::move(next);
        }
      }
    }
    return absl::OkStatus();
  };
  if (auto st = step(0); !st.ok()) return st;  // prefill, first token
  mask_s = 0;
  documents = 0;
  const auto t = Clock::now();
  for (int n = 1; n < new_tokens; ++n) {
    if (auto st = step(0); !st.ok()) return st;
  }
  const double s = Seconds(t);
  return Run{batch * (new_tokens - 1) / s, 1e3 * mask_s / (new_tokens - 1), documents};
}

int Main(int argc, char** argv) {
  std::string config = "tests/fixtures/shapes/qwen2-7b-instruct/config.json";
  std::string tokenizer_dir = "tests/fixtures/tiny-qwen2-chat";
  int batch = 32, prompt = 128, new_tokens = 128, precompute_threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") config = v;
    else if (k == "--tokenizer-dir") tokenizer_dir = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--prompt") prompt = std::stoi(v);
    else if (k == "--new") new_tokens = std::stoi(v);
    else if (k == "--precompute-threads") precompute_threads = std::stoi(v);
    else return Fail(absl::InvalidArgumentError("unknown flag " + k));
  }
  (void)InitLogging("bench", "info");
  auto backend = worker::CreateCudaBackend(0);
  if (!backend.ok()) return Fail(backend.status());
  worker::LoadOptions o;
  o.model_path = config;
  o.load_format = "dummy";
  o.max_model_len = prompt + new_tokens + 16;
  o.max_num_seqs = batch;
  o.max_num_batched_tokens = std::max(4096, batch * prompt);
  if (auto st = (*backend)->Load(o, nullptr); !st.ok()) return Fail(st);
  auto prof = (*backend)->ProfileMemory(0.9, 0);
  if (!prof.ok()) return Fail(prof.status());
  const int blocks = std::min(prof->num_blocks, batch * ((prompt + new_tokens) / 16 + 2));
  if (auto st = (*backend)->InitCache(blocks); !st.ok()) return Fail(st);
  const std::vector<int>& eos = (*backend)->eos_token_ids();
  auto grammars = structured::GrammarCache::ForModel(tokenizer_dir, std::vector<int32_t>(eos.begin(), eos.end()),
                                                     (*backend)->config().vocab_size, precompute_threads);
  if (!grammars.ok()) return Fail(grammars.status());

  auto free_text = Decode(**backend, blocks, batch, prompt, new_tokens, nullptr);
  if (!free_text.ok()) return Fail(free_text.status());
  auto cold = Decode(**backend, blocks, batch, prompt, new_tokens, grammars->get());
  if (!cold.ok()) return Fail(cold.status());
  auto warm = Decode(**backend, blocks, batch, prompt, new_tokens, grammars->get());
  if (!warm.ok()) return Fail(warm.status());
  std::printf("\n%s on %s, batch %d, prompt %d, %d new tokens, %d mask precompute threads\n",
              config.c_str(), (*backend)->device_name().c_str(), batch, prompt, new_tokens,
              precompute_threads);
  std::printf("%-30s %12s %16s %10s %10s\n", "run", "tokens/s", "mask ms/step", "vs free", "documents");
  std::printf("%-30s %12.1f %16s %10s %10s\n", "free text", free_text->tok_s, "-", "1.000", "-");
  for (const auto& [name, run] : {std::pair{"json_schema (cold mask cache)", *cold},
                                  std::pair{"json_schema (warm mask cache)", *warm}}) {
    std::printf("%-30s %12.1f %16.3f %10.3f %10d\n", name, run.tok_s, run.mask_ms_per_step,
                run.tok_s / free_text->tok_s, run.documents);
  }
  return 0;
}

}  // namespace
}  // namespace tpserve::bench

int main(int argc, char** argv) { return tpserve::bench::Main(argc, argv); }
