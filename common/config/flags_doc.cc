// Prints docs/flags.md: `bazel run //common/config:flags_doc > docs/flags.md`.
#include <cstdio>

#include "bench/serve/flags.h"
#include "common/config/parse.h"

int main() {
  std::fputs(tpserve::FlagsMarkdown().c_str(), stdout);
  std::fputs(tpserve::bench::BenchFlagsMarkdown().c_str(), stdout);
  return 0;
}
