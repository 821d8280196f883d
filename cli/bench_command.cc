// `tpserve bench serve`: the serving benchmark (bench/serve/).
#include <cstdio>
#include <string>
#include <vector>

#include "bench/serve/bench_serve.h"
#include "cli/commands.h"

namespace tpserve::cli {

int RunBench(const std::vector<std::string>& args, const std::string& self_path) {
  const char* usage =
      "usage: tpserve bench serve [flags]\n\n"
      "  serve    measure a running OpenAI-compatible server as `vllm bench serve` does\n\n"
      "'tpserve bench serve --help' lists its flags.\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(usage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "serve") {
    std::fprintf(stderr, "tpserve bench: unknown benchmark '%s'\n\n%s", args[0].c_str(), usage);
    return 2;
  }
  // The embedded model's tokenizer is the Qwen2 one every served model uses.
  return bench::RunBenchServe({args.begin() + 1, args.end()}, DefaultModelDir(self_path));
}

}  // namespace tpserve::cli
