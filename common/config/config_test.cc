// Flag and YAML parsing: good inputs land in the right fields, bad ones are
// refused with messages naming the key and the accepted values.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config/options.h"
#include "common/config/parse.h"

namespace tpserve {
namespace {

using Args = std::vector<std::string>;
constexpr uint32_t kServe = kGateway | kRouter | kWorker;

std::string Message(const absl::StatusOr<CommandLine>& r) {
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(ConfigTest, DefaultsMatchVllmHabits) {
  auto r = ParseCommandLine("serve", kServe, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.port, 8000);
  EXPECT_EQ(r->config.tensor_parallel_size, 1);
  EXPECT_DOUBLE_EQ(r->config.gpu_memory_utilization, 0.9);
  EXPECT_EQ(r->config.block_size, 16);
  EXPECT_TRUE(r->config.enable_prefix_caching);
}

TEST(ConfigTest, VllmStyleFlags) {
  auto r = ParseCommandLine(
      "serve", kServe,
      {"--model", "/models/Qwen2-72B-Instruct", "--served-model-name", "QWen2-72B-Instruct",
       "--tensor-parallel-size", "8", "--gpu-memory-utilization=0.7", "--port", "8001",
       "--max-model-len", "32768", "--enforce-eager", "--no-enable-prefix-caching",
       "--max-num-seqs", "128", "--block-size", "32"});
  ASSERT_TRUE(r.ok()) << r.status();
  const ServerConfig& c = r->config;
  EXPECT_EQ(c.model, "/models/Qwen2-72B-Instruct");
  EXPECT_EQ(c.served_model_name, "QWen2-72B-Instruct");
  EXPECT_EQ(c.tensor_parallel_size, 8);
  EXPECT_DOUBLE_EQ(c.gpu_memory_utilization, 0.7);
  EXPECT_EQ(c.port, 8001);
  EXPECT_EQ(c.max_model_len, 32768);
  EXPECT_TRUE(c.enforce_eager);
  EXPECT_FALSE(c.enable_prefix_caching);
  EXPECT_EQ(c.max_num_seqs, 128);
  EXPECT_EQ(c.block_size, 32);
}

TEST(ConfigTest, UnderscoreSpellingAndBoolValues) {
  auto r = ParseCommandLine("router", kRouter,
                            {"--tensor_parallel_size", "2", "--worker", "a:1", "--worker", "b:2",
                             "--enable-prefix-caching", "false"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.workers, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_FALSE(r->config.enable_prefix_caching);
}

struct BadCase {
  std::string subcommand;
  uint32_t components;
  Args args;
  std::vector<std::string> message_parts;
};

TEST(ConfigTest, BadFlagsNameTheKeyAndAcceptedValues) {
  const std::vector<BadCase> cases = {
      {"serve", kServe, {"--tensor-paralel-size", "2"}, {"--tensor-paralel-size", "--tensor-parallel-size"}},
      {"serve", kServe, {"--gpu-memory-utilization", "1.5"}, {"--gpu-memory-utilization", "1.5", "0 to 1"}},
      {"serve", kServe, {"--gpu-memory-utilization", "abc"}, {"--gpu-memory-utilization", "abc"}},
      {"serve", kServe, {"--device", "tpu"}, {"--device", "tpu", "auto, cpu, cuda"}},
      {"serve", kServe, {"--load-format", "pt"}, {"--load-format", "dummy"}},
      {"serve", kServe, {"--block-size", "17"}, {"--block-size", "8, 16, 32, 64, 128"}},
      {"serve", kServe, {"--port", "70000"}, {"--port", "0 to 65535"}},
      {"serve", kServe, {"--port"}, {"--port needs a value"}},
      {"serve", kServe, {"--enforce-eager=maybe"}, {"--enforce-eager", "maybe", "true, false"}},
      {"serve", kServe, {"-x"}, {"unknown flag '-x'"}},
      {"worker", kWorker, {"--max-num-seqs", "4"}, {"--max-num-seqs is a router setting", "worker"}},
      {"router", kRouter, {"--tensor-parallel-size", "2", "--worker", "a:1"}, {"1 --worker", "2"}},
      {"router", kRouter, {}, {"--worker host:port"}},
      {"router", kRouter, {"--worker", "a:1", "--scheduling-policy", "lifo"}, {"--scheduling-policy", "lifo", "fcfs, priority"}},
      {"router", kRouter, {"--worker", "a:1", "--worker-step-timeout-ms", "0"}, {"--worker-step-timeout-ms", "0"}},
      {"router", kRouter, {"--worker", "a:1", "--max-num-seqs", "0"}, {"--max-num-seqs", "0"}},
      {"gateway", kGateway, {}, {"--router host:port"}},
      {"worker", kWorker, {"--rank", "2", "--tensor-parallel-size", "2"}, {"--rank 2", "2"}},
      {"serve", kServe, {"--max-num-batched-tokens", "16", "--max-num-seqs", "64"}, {"--max-num-batched-tokens", "--max-num-seqs"}},
      {"serve", kServe, {"--config", "/nonexistent/x.yaml"}, {"--config", "/nonexistent/x.yaml"}},
  };
  for (const BadCase& c : cases) {
    auto r = ParseCommandLine(c.subcommand, c.components, c.args);
    ASSERT_FALSE(r.ok()) << c.args[0];
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(Message(r).find(part), std::string::npos)
          << "message '" << Message(r) << "' lacks '" << part << "'";
    }
  }
}

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, YamlFileAndFlagsWin) {
  std::string path = WriteFile("ok.yaml",
                               "model: /models/m\n"
                               "tensor_parallel_size: 4\n"
                               "max-num-seqs: 64\n"
                               "worker: [h0:1, h1:1, h2:1, h3:1]\n"
                               "enable_prefix_caching: false\n");
  auto r = ParseCommandLine("router", kRouter, {"--config", path, "--max-num-seqs", "32"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.model, "/models/m");
  EXPECT_EQ(r->config.tensor_parallel_size, 4);
  EXPECT_EQ(r->config.max_num_seqs, 32);  // the flag wins
  EXPECT_EQ(r->config.workers.size(), 4u);
  EXPECT_FALSE(r->config.enable_prefix_caching);
}

TEST(ConfigTest, FlagListReplacesYamlList) {
  std::string path = WriteFile("routers.yaml", "router:\n  - a:1\n  - b:1\n");
  auto r = ParseCommandLine("gateway", kGateway, {"--config", path, "--router", "c:1"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config.routers, std::vector<std::string>{"c:1"});
}

TEST(ConfigTest, BadYaml) {
  ServerConfig c;
  auto unknown = ApplyYaml("max_num_seq: 3\n", "cfg.yaml", &c);
  EXPECT_NE(std::string(unknown.message()).find("cfg.yaml"), std::string::npos);
  EXPECT_NE(std::string(unknown.message()).find("max_num_seq"), std::string::npos);
  EXPECT_NE(std::string(unknown.message()).find("--max-num-seqs"), std::string::npos);
  auto bad_value = ApplyYaml("dtype: int8\n", "cfg.yaml", &c);
  EXPECT_NE(std::string(bad_value.message()).find("bfloat16"), std::string::npos);
  EXPECT_FALSE(ApplyYaml("port: [1, 2]\n", "cfg.yaml", &c).ok());
  EXPECT_FALSE(ApplyYaml("- a\n- b\n", "cfg.yaml", &c).ok());
  EXPECT_FALSE(ApplyYaml("port: 80\n  bad indent: [\n", "cfg.yaml", &c).ok());
  EXPECT_TRUE(ApplyYaml("", "empty.yaml", &c).ok());
}

TEST(ConfigTest, CheckConfigRoundTripsAndMasksKeys) {
  auto r = ParseCommandLine("gateway", kGateway,
                            {"--router", "r:1", "--api-key", "sk-secret", "--port", "9000",
                             "--check-config"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->check_config);
  std::string yaml = DescribeConfig(r->config, kGateway);
  EXPECT_EQ(yaml.find("sk-secret"), std::string::npos);
  EXPECT_NE(yaml.find("port: \"9000\""), std::string::npos);
  // What --check-config prints (without the masked key) parses back.
  ServerConfig back;
  std::string without_key;
  std::istringstream in(yaml);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("api-key:", 0) != 0) without_key += line + "\n";
  }
  ASSERT_TRUE(ApplyYaml(without_key, "printed", &back).ok());
  EXPECT_EQ(back.port, 9000);
  EXPECT_EQ(back.routers, std::vector<std::string>{"r:1"});
}

TEST(ConfigTest, HelpListsOnlyTheSubcommandsFlags) {
  std::string worker = HelpText("worker", kWorker);
  EXPECT_NE(worker.find("--worker-port"), std::string::npos);
  EXPECT_EQ(worker.find("--max-num-seqs"), std::string::npos);
  std::string serve = HelpText("serve", kServe);
  EXPECT_NE(serve.find("--device"), std::string::npos);
  EXPECT_NE(serve.find("--max-num-seqs"), std::string::npos);
}

TEST(ConfigTest, PositionalArgumentsAreKept) {
  auto r = ParseCommandLine("verify", 0, {"/models/x"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->positional, std::vector<std::string>{"/models/x"});
}

TEST(ConfigTest, ResolvedMaxNumBatchedTokens) {
  struct Case {
    int flag;
    int max_model_len;
    int max_num_seqs;
    int want;
  };
  // The model length no longer raises the budget (chunked prefill); the
  // number of sequences does (each needs a token per step).
  for (const Case& c : {Case{0, 0, 256, 8192}, Case{0, 4096, 256, 8192}, Case{0, 32768, 256, 8192},
                        Case{0, 32768, 10000, 10000}, Case{2048, 32768, 256, 2048}}) {
    ServerConfig config;
    config.max_num_batched_tokens = c.flag;
    config.max_model_len = c.max_model_len;
    config.max_num_seqs = c.max_num_seqs;
    EXPECT_EQ(ResolvedMaxNumBatchedTokens(config), c.want)
        << c.flag << " " << c.max_model_len << " " << c.max_num_seqs;
  }
}

}  // namespace
}  // namespace tpserve
