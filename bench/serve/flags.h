// The flag table of `tpserve bench serve`: vLLM's `vllm bench serve` names,
// parsing, --help and the docs/flags.md section, all driven from one table.
//
// The server's option table (common/config/options.h) binds ServerConfig and
// takes one value per flag; the benchmark needs its own struct and vLLM's
// multi-value flags (`--goodput ttft:500 tpot:50`), hence a table of its own
// with the same shape (name, help, setter, default renderer).
#ifndef TPSERVE_BENCH_SERVE_FLAGS_H_
#define TPSERVE_BENCH_SERVE_FLAGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/serve/config.h"

namespace tpserve::bench {

// How many values a flag takes.
enum class Arity {
  kNone,  // a switch: `--ignore-eos`
  kOne,   // `--num-prompts 64` or `--num-prompts=64`
  kMany,  // every following word up to the next `--flag` (argparse nargs="+")
};

// One flag.
struct BenchFlag {
  // Without dashes, e.g. "random-input-len".
  std::string name;
  Arity arity;
  // Shown after the flag in --help (e.g. "N", "FILE").
  std::string metavar;
  std::string help;
  // Section in --help and docs (server, workload, load, sampling, results).
  std::string group;
  // Stores one value (called once per value for kMany, with "" for kNone).
  std::function<absl::Status(BenchConfig&, const std::string&)> set;
  // Renders the default for --help and docs ("" when there is none).
  std::function<std::string(const BenchConfig&)> get;
};

// Every flag, in --help order.
const std::vector<BenchFlag>& BenchFlags();

// What the command line asked for.
struct BenchCommandLine {
  BenchConfig config;
  bool help = false;
};

// Parses the arguments after `tpserve bench serve` and checks the settings
// together (e.g. sharegpt needs --dataset-path). Errors are one line naming
// the flag and the accepted values.
absl::StatusOr<BenchCommandLine> ParseBenchFlags(const std::vector<std::string>& args);

// Whether `endpoint` is a chat completions path (else text completions).
bool IsChatEndpoint(const std::string& endpoint);

// Cross-flag checks; ParseBenchFlags runs them.
absl::Status ValidateBenchConfig(const BenchConfig& config);

// `tpserve bench serve --help`.
std::string BenchHelpText();

// The docs/flags.md section for `tpserve bench serve`.
std::string BenchFlagsMarkdown();

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_FLAGS_H_
