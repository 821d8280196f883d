// docs/flags.md must list exactly the flags the binary accepts.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "bench/serve/flags.h"
#include "common/config/parse.h"

TEST(FlagsDocTest, DocsMatchTheOptionTable) {
  std::ifstream in("docs/flags.md");
  ASSERT_TRUE(in) << "docs/flags.md missing";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), tpserve::FlagsMarkdown() + tpserve::bench::BenchFlagsMarkdown())
      << "docs/flags.md is stale: run `bazel run //common/config:flags_doc > docs/flags.md`";
}
