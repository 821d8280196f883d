// The `tpserve` subcommands. Each takes the parsed command line and returns
// the process exit code.
#ifndef TPSERVE_CLI_COMMANDS_H_
#define TPSERVE_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "common/config/parse.h"

namespace tpserve::cli {

// `tpserve serve`: gateway + router + workers on this host.
int RunServe(const CommandLine& cl, const std::string& self_path);
// `tpserve gateway`: the OpenAI HTTP server.
int RunGateway(const CommandLine& cl);
// `tpserve router`: one model replica's scheduler.
int RunRouter(const CommandLine& cl);
// `tpserve worker`: one tensor-parallel rank.
int RunWorker(const CommandLine& cl);
// `tpserve workers`: every rank of one replica, one worker process each
// (cli/worker_group.h).
int RunWorkers(const CommandLine& cl, const std::string& self_path);
// `tpserve probe --router=ADDR`: 0 when that router is ready, else 1 (exec
// probes under internal mutual TLS).
int RunProbe(const CommandLine& cl);
// `tpserve verify DIR`: checks a model folder.
int RunVerify(const CommandLine& cl);
// `tpserve bench serve [flags]`: the serving benchmark; `args` follow "bench".
int RunBench(const std::vector<std::string>& args, const std::string& self_path);

// Folder of the embedded default model (the tiny chat fixture), found next
// to the binary (Bazel runfiles or an installed share/ folder); "" if absent.
std::string DefaultModelDir(const std::string& self_path);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_COMMANDS_H_
