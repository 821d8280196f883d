// One benchmark process drives 1,024 concurrent streams: the fake server
// holds every token stream until all 1,024 requests are open, so the run only
// finishes if the client really keeps them all open at once.
#include <gtest/gtest.h>

#include <cstdio>

#include "bench/serve/testing/capacity.h"

namespace tpserve::bench {
namespace {

TEST(ClientCapacityTest, ThousandTwentyFourConcurrentStreams) {
  testing::CapacityOptions o;
  o.streams = 1024;
  o.tokens = 16;
  absl::StatusOr<testing::CapacityResult> r = testing::RunCapacity(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 1024);
  EXPECT_EQ(r->server_peak_open, 1024);
  EXPECT_EQ(r->output_tokens, 1024 * 16);
  EXPECT_EQ(r->token_events, 1024 * 16);
  std::printf(
      "1024 streams x 16 tokens: %.2f s wall, client CPU %.2f s, %.0f token events per "
      "client CPU second\n",
      r->wall_s, r->client_cpu_s, r->token_events / r->client_cpu_s);
}

}  // namespace
}  // namespace tpserve::bench
