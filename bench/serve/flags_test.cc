#include "bench/serve/flags.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace tpserve::bench {
namespace {

absl::StatusOr<BenchCommandLine> Parse(std::vector<std::string> args) {
  return ParseBenchFlags(args);
}

TEST(BenchFlagsTest, DefaultsAreVllms) {
  absl::StatusOr<BenchCommandLine> cl = Parse({});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const BenchConfig& c = cl->config;
  EXPECT_EQ(c.endpoint, "/v1/completions");
  EXPECT_EQ(c.dataset_name, "random");
  EXPECT_EQ(c.num_prompts, 1000);
  EXPECT_EQ(c.random_input_len, 1024);
  EXPECT_EQ(c.random_output_len, 128);
  EXPECT_TRUE(std::isinf(c.request_rate));
  EXPECT_EQ(c.metric_percentiles, "99");
  EXPECT_EQ(c.percentile_metrics, "ttft,tpot,itl");
}

TEST(BenchFlagsTest, ValuesSwitchesAndMultiValueFlags) {
  absl::StatusOr<BenchCommandLine> cl = Parse(
      {"--base-url", "http://h:9", "--num-prompts=64", "--max-concurrency", "16", "--request-rate",
       "4.5", "--ignore-eos", "--goodput", "ttft:500", "tpot:50", "--random_input_len", "32",
       "--temperature", "0.7", "--save-result", "--metadata", "gpu=h200", "tp=1"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const BenchConfig& c = cl->config;
  EXPECT_EQ(c.base_url, "http://h:9");
  EXPECT_EQ(c.num_prompts, 64);
  EXPECT_EQ(c.max_concurrency, 16);
  EXPECT_EQ(c.request_rate, 4.5);
  EXPECT_TRUE(c.ignore_eos);
  EXPECT_EQ(c.goodput, (std::vector<std::string>{"ttft:500", "tpot:50"}));
  EXPECT_EQ(c.random_input_len, 32);
  EXPECT_EQ(*c.temperature, 0.7);
  EXPECT_TRUE(c.save_result);
  EXPECT_EQ(c.metadata, (std::vector<std::string>{"gpu=h200", "tp=1"}));
}

TEST(BenchFlagsTest, ChatEndpointAndBackend) {
  absl::StatusOr<BenchCommandLine> a = Parse({"--endpoint", "/v1/chat/completions"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->config.backend, "openai-chat");
  absl::StatusOr<BenchCommandLine> b = Parse({"--backend", "openai-chat"});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->config.endpoint, "/v1/chat/completions");
  EXPECT_TRUE(IsChatEndpoint(b->config.endpoint));
  EXPECT_FALSE(IsChatEndpoint("/v1/completions"));
}

TEST(BenchFlagsTest, BadInputIsOneClearLine) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const Case cases[] = {
      {{"--num-prompt", "3"}, "did you mean --num-prompts?"},
      {{"--num-prompts", "0"}, "--num-prompts: '0' is out of range"},
      {{"--num-prompts", "x"}, "not an integer"},
      {{"--num-prompts"}, "--num-prompts needs a value"},
      {{"--request-rate", "0"}, "--request-rate: '0' is out of range"},
      {{"--random-range-ratio", "1"}, "--random-range-ratio"},
      {{"--dataset-name", "sonnet"}, "accepted: random, sharegpt, prefix-repetition"},
      {{"--dataset-name", "sharegpt"}, "needs --dataset-path"},
      {{"--dataset-path", "x.json"}, "only for --dataset-name sharegpt"},
      {{"--endpoint", "/v1/embeddings"}, "--endpoint: '/v1/embeddings' is not accepted"},
      {{"--backend", "openai-chat", "--endpoint", "/x/completions"}, "needs a chat endpoint"},
      {{"--goodput", "ttft=5"}, "--goodput: 'ttft=5' is not KEY:VALUE"},
      {{"--goodput"}, "needs at least one value"},
      {{"--metric-percentiles", "99,200"}, "--metric-percentiles: '200'"},
      {{"--percentile-metrics", "ttft,latency"}, "'latency' is not a metric"},
      {{"--extra-body", "[1]"}, "--extra-body: not a JSON object"},
      {{"--header", "X-A"}, "--header: 'X-A' is not KEY=VALUE"},
      {{"--base-url", "localhost:8000"}, "must start with http://"},
      {{"--ignore-eos=1"}, "takes no value"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"--dataset-name", "prefix-repetition", "--num-prompts", "5"}, "at least"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<BenchCommandLine> cl = Parse(c.args);
    ASSERT_FALSE(cl.ok()) << c.args[0];
    const std::string msg(cl.status().message());
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(BenchFlagsTest, HelpListsEveryFlagAndSkipsValidation) {
  absl::StatusOr<BenchCommandLine> cl = Parse({"--dataset-name", "sharegpt", "--help"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_TRUE(cl->help);
  const std::string help = BenchHelpText();
  const std::string md = BenchFlagsMarkdown();
  for (const BenchFlag& f : BenchFlags()) {
    EXPECT_NE(help.find("--" + f.name), std::string::npos) << f.name;
    EXPECT_NE(md.find("`--" + f.name), std::string::npos) << f.name;
  }
  EXPECT_NE(help.find("[default: 1000]"), std::string::npos);
}

TEST(BenchFlagsTest, DocsDescribeEveryFlag) {
  std::ifstream in("docs/bench.md");
  ASSERT_TRUE(in) << "docs/bench.md missing";
  std::stringstream ss;
  ss << in.rdbuf();
  for (const BenchFlag& f : BenchFlags()) {
    EXPECT_NE(ss.str().find("`--" + f.name), std::string::npos) << "docs/bench.md lacks --" << f.name;
  }
}

}  // namespace
}  // namespace tpserve::bench
