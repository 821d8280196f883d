// tpserve: one binary, one subcommand per component.
//
//   tpserve serve    [flags]   gateway + router + workers on this host
//   tpserve gateway  [flags]   OpenAI-compatible HTTP API
//   tpserve router   [flags]   scheduler of one model replica
//   tpserve worker   [flags]   one tensor-parallel rank
//   tpserve workers  [flags]   every rank of one replica (one process each)
//   tpserve probe    [flags]   exit 0 when a router is ready (exec probes)
//   tpserve verify   DIR       check a model folder
//   tpserve bench serve [flags] serving benchmark against a running server
//   tpserve version
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/version.h"
#include "common/config/options.h"
#include "common/config/parse.h"

namespace {

struct Subcommand {
  const char* name;
  uint32_t components;
  const char* summary;
};

constexpr Subcommand kSubcommands[] = {
    {"serve", tpserve::kGateway | tpserve::kRouter | tpserve::kWorker,
     "gateway + router + workers on this host (child processes)"},
    {"gateway", tpserve::kGateway, "OpenAI-compatible HTTP API (REST + SSE) in front of routers"},
    {"router", tpserve::kRouter, "admission, continuous batching and KV blocks of one replica"},
    {"worker", tpserve::kWorker, "one tensor-parallel rank (CPU or CUDA)"},
    {"workers", tpserve::kWorker,
     "every rank of one replica, one worker process each (rank r on GPU r, port +r)"},
    {"probe", tpserve::kGateway,
     "exit 0 when the --router is ready (Kubernetes exec probe; speaks internal mTLS)"},
    {"verify", 0, "check a model folder (config, tensors, SHA256SUMS)"},
    {"bench", 0, "'bench serve': vLLM's serving benchmark against a running server"},
};

void PrintUsage(std::FILE* out) {
  std::fprintf(out, "usage: tpserve <subcommand> [flags]\n\nsubcommands:\n");
  for (const Subcommand& s : kSubcommands) std::fprintf(out, "  %-8s %s\n", s.name, s.summary);
  std::fprintf(out, "  %-8s %s\n", "version", "print the version");
  std::fprintf(out, "\n'tpserve <subcommand> --help' lists its flags.\n");
}

// The path launchers exec their children with. argv[0] is kept when it names
// a file (runfiles are looked up next to it); a bare name, as the image's
// ENTRYPOINT ["tpserve"] gives, is not executable by execv, so the running
// binary is used instead.
std::string SelfPath(const char* argv0) {
  const std::string a = argv0;
  if (a.find('/') != std::string::npos) return a;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    PrintUsage(stdout);
    return 0;
  }
  if (sub == "version" || sub == "--version") {
    std::printf("tpserve %s\n", tpserve::kVersion);
    return 0;
  }
  const Subcommand* found = nullptr;
  for (const Subcommand& s : kSubcommands) {
    if (sub == s.name) found = &s;
  }
  if (found == nullptr) {
    std::fprintf(stderr, "tpserve: unknown subcommand '%s'\n\n", sub.c_str());
    PrintUsage(stderr);
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  if (sub == "bench") return tpserve::cli::RunBench(args, argv[0]);
  auto cl = tpserve::ParseCommandLine(sub, found->components, args);
  if (!cl.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(cl.status().message()).c_str());
    return 2;
  }
  if (cl->help) {
    if (sub == "verify") {
      std::printf("usage: tpserve verify MODEL_DIR\n\nChecks config.json, every safetensors "
                  "header and tensor against the config, and SHA-256 sums when the folder has a "
                  "SHA256SUMS file. Exit code 0 when the folder is sound, 1 otherwise.\n");
    } else {
      std::printf("%s", tpserve::HelpText(sub, found->components).c_str());
    }
    return 0;
  }
  if (sub != "verify" && !cl->positional.empty()) {
    std::fprintf(stderr, "error: tpserve %s: unexpected argument '%s'\n", sub.c_str(),
                 cl->positional[0].c_str());
    return 2;
  }
  if (cl->check_config) {
    std::printf("%s", tpserve::DescribeConfig(cl->config, found->components).c_str());
    return 0;
  }
  if (sub == "serve") return tpserve::cli::RunServe(*cl, SelfPath(argv[0]));
  if (sub == "gateway") return tpserve::cli::RunGateway(*cl);
  if (sub == "router") return tpserve::cli::RunRouter(*cl);
  if (sub == "worker") return tpserve::cli::RunWorker(*cl);
  if (sub == "workers") return tpserve::cli::RunWorkers(*cl, SelfPath(argv[0]));
  if (sub == "probe") return tpserve::cli::RunProbe(*cl);
  return tpserve::cli::RunVerify(*cl);
}
