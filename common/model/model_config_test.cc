#include "common/model/model_config.h"

#include <string>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

constexpr char kClassicDir[] = "tests/fixtures/tiny-qwen2";
constexpr char kNewerDir[] = "tests/fixtures/tiny-qwen2-chat";

TEST(ModelConfigTest, ClassicLayout) {
  auto c = LoadModelConfig(kClassicDir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c->model_type, "qwen2");
  EXPECT_EQ(c->vocab_size, 4096);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->intermediate_size, 512);
  EXPECT_EQ(c->num_hidden_layers, 2);
  EXPECT_EQ(c->num_attention_heads, 4);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{1});
  EXPECT_EQ(c->bos_token_id, 0);
}

TEST(ModelConfigTest, NewerLayoutWithRopeParameters) {
  auto c = LoadModelConfig(std::string(kNewerDir) + "/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->num_key_value_heads, 1);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{151645});
}

TEST(ModelConfigTest, RealShapesLoad) {
  // 896 / 14 = 64; 3584 / 28 = 128; 8192 / 64 = 128.
  const std::pair<const char*, int> cases[] = {
      {"qwen2-0.5b-instruct", 64}, {"qwen2-7b-instruct", 128}, {"qwen2-72b-instruct", 128}};
  for (const auto& [name, head_dim] : cases) {
    auto c = LoadModelConfig(std::string("tests/fixtures/shapes/") + name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->head_dim, head_dim) << name;
  }
}

std::string Minimal(const std::string& arch, const std::string& extra = "") {
  return R"({"architectures": [")" + arch +
         R"("], "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
             "num_hidden_layers": 1, "num_attention_heads": 2)" +
         extra + "}";
}

TEST(ModelConfigTest, LlamaHasNoBiasAndDefaultsKvHeads) {
  auto c = ParseModelConfig(Minimal("LlamaForCausalLM"), "x/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_TRUE(ParseModelConfig(Minimal("MistralForCausalLM"), "x").ok());
}

TEST(ModelConfigTest, UnknownArchitectureIsNamed) {
  auto c = ParseModelConfig(Minimal("GPT2LMHeadModel"), "x/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("GPT2LMHeadModel"), std::string::npos);
  EXPECT_NE(std::string(c.status().message()).find("x/config.json"), std::string::npos);
}

TEST(ModelConfigTest, ErrorsNameFileAndKey) {
  struct Case {
    std::string text;
    std::string key;
  };
  const Case cases[] = {
      {R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16})", "vocab_size"},
      {Minimal("Qwen2ForCausalLM", R"(, "num_key_value_heads": 3)"), "num_key_value_heads"},
      {Minimal("Qwen2ForCausalLM", R"(, "rope_theta": "big")"), "rope_theta"},
      {Minimal("Qwen2ForCausalLM", R"(, "rope_parameters": {"rope_theta": -1})"),
       "rope_parameters.rope_theta"},
      {Minimal("Qwen2ForCausalLM", R"(, "torch_dtype": "int8")"), "torch_dtype"},
      {Minimal("Qwen2ForCausalLM", R"(, "eos_token_id": "x")"), "eos_token_id"},
      {Minimal("Qwen2ForCausalLM", R"(, "hidden_size": -4)"), "hidden_size"},
      {R"({"vocab_size": 3})", "architectures"},
      {Minimal("Qwen2ForCausalLM", R"(, "use_sliding_window": true)"), "use_sliding_window"},
      {Minimal("Qwen2ForCausalLM", R"(, "rope_scaling": {"type": "yarn"})"), "rope_scaling"},
  };
  for (const Case& c : cases) {
    auto r = ParseModelConfig(c.text, "m/config.json");
    ASSERT_FALSE(r.ok()) << c.key;
    const std::string msg(r.status().message());
    EXPECT_NE(msg.find("m/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.key), std::string::npos) << msg;
  }
  EXPECT_FALSE(ParseModelConfig("{not json", "m/config.json").ok());
  EXPECT_FALSE(ParseModelConfig("[1,2]", "m/config.json").ok());
  EXPECT_EQ(LoadModelConfig("/nonexistent/dir").status().code(), absl::StatusCode::kNotFound);
}

TEST(GenerationConfigTest, EosAsListAndInt) {
  auto g = LoadGenerationConfig(kNewerDir);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->eos_token_ids, (std::vector<int>{151645, 151643}));
  EXPECT_EQ(g->pad_token_id, 151643);
  EXPECT_EQ(g->top_k, 20);
  ASSERT_TRUE(g->temperature.has_value());
  EXPECT_DOUBLE_EQ(*g->temperature, 0.7);
  EXPECT_EQ(g->do_sample, true);

  auto single = ParseGenerationConfig(R"({"eos_token_id": 7})", "g.json");
  ASSERT_TRUE(single.ok());
  EXPECT_EQ(single->eos_token_ids, std::vector<int>{7});
  EXPECT_FALSE(single->top_p.has_value());

  auto bad = ParseGenerationConfig(R"({"top_k": "many"})", "g.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("top_k"), std::string::npos);
}

TEST(GenerationConfigTest, MissingFileIsEmpty) {
  auto g = LoadGenerationConfig("/nonexistent");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->eos_token_ids.empty());
}

}  // namespace
}  // namespace tpserve
