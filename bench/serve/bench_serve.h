// `tpserve bench serve`: vLLM's serving benchmark against any
// OpenAI-compatible server (docs/bench.md).
#ifndef TPSERVE_BENCH_SERVE_BENCH_SERVE_H_
#define TPSERVE_BENCH_SERVE_BENCH_SERVE_H_

#include <string>
#include <vector>

namespace tpserve::bench {

// Runs the benchmark with the arguments after `tpserve bench serve`.
// `default_tokenizer_dir` is used when neither --tokenizer nor a --model
// folder gives one (the embedded model's folder). Returns the exit code: 0
// all requests succeeded, 1 a request failed or the run could not start, 2 bad
// flags.
int RunBenchServe(const std::vector<std::string>& args, const std::string& default_tokenizer_dir);

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_BENCH_SERVE_H_
