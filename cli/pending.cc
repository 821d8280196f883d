// Subcommands whose component library has not landed in this tree yet. Each
// is replaced by its real runner (and removed from here) as the component
// lands; until then it refuses clearly instead of pretending to run.
#include <cstdio>

#include "cli/commands.h"

namespace tpserve::cli {
namespace {
int NotYet(const char* what) {
  std::fprintf(stderr, "error: tpserve %s is not built into this binary yet\n", what);
  return 1;
}
}  // namespace

int RunGateway(const CommandLine&) { return NotYet("gateway"); }

}  // namespace tpserve::cli
