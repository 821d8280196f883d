#include "common/model/model_config.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

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
      {Minimal("Qwen2ForCausalLM", R"(, "rope_scaling": {"type": "yarn"})"), "rope_scaling.factor"},
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

TEST(ModelConfigTest, YarnFixture) {
  auto c = LoadModelConfig("tests/fixtures/tiny-qwen2-yarn");
  ASSERT_TRUE(c.ok()) << c.status();
  const RopeScaling& r = c->rope_scaling;
  EXPECT_EQ(r.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(r.factor, 4.0);
  EXPECT_EQ(r.original_max_position_embeddings, 128);
  EXPECT_DOUBLE_EQ(r.attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_DOUBLE_EQ(r.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(r.beta_slow, 1.0);
  EXPECT_TRUE(r.truncate);
  // max_model_len follows the scaled length: 4 x 128.
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
}

TEST(ModelConfigTest, YarnKeyNamesAndLayouts) {
  const std::string cases[] = {
      // The Qwen2 model cards' block ("type"), and the newer key name.
      R"(, "rope_theta": 1e6, "rope_scaling": {"type": "yarn", "factor": 4.0,
            "original_max_position_embeddings": 32768})",
      R"(, "rope_theta": 1e6, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
            "original_max_position_embeddings": 32768})",
      // transformers 5's layout: theta inside rope_parameters.
      R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
            "original_max_position_embeddings": 32768})",
      // A non-empty rope_scaling wins over rope_parameters (as in HF).
      R"(, "rope_theta": 1e6, "rope_parameters": {"rope_type": "default"},
          "rope_scaling": {"type": "yarn", "factor": 4, "original_max_position_embeddings": 32768})",
  };
  for (const std::string& extra : cases) {
    auto c = ParseModelConfig(Minimal("Qwen2ForCausalLM", R"(, "max_position_embeddings": 32768)" + extra),
                              "m/config.json");
    ASSERT_TRUE(c.ok()) << extra << ": " << c.status();
    EXPECT_EQ(c->rope_scaling.type, RopeType::kYarn) << extra;
    EXPECT_DOUBLE_EQ(c->rope_theta, 1e6) << extra;
    EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 4.0) << extra;
    EXPECT_EQ(c->max_position_embeddings, 131072) << extra;
  }
}

TEST(ModelConfigTest, YarnDefaultsAsTransformers) {
  auto yarn = [](const std::string& fields) {
    return ParseModelConfig(
        Minimal("Qwen2ForCausalLM", R"(, "max_position_embeddings": 4096, "rope_scaling": {"type": "yarn", )" +
                                        fields + "}"),
        "m/config.json");
  };
  // No original length: the config's max_position_embeddings.
  auto c = yarn(R"("factor": 2.0)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(c->max_position_embeddings, 8192);
  // factor null: max_position_embeddings / original.
  c = yarn(R"("factor": null, "original_max_position_embeddings": 1024)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 4.0);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  // An explicit attention_factor wins; betas of 0 or null mean the defaults.
  c = yarn(R"("factor": 8, "attention_factor": 1.5, "beta_fast": 0, "beta_slow": null, "truncate": false)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_scaling.attention_factor, 1.5);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_slow, 1.0);
  EXPECT_FALSE(c->rope_scaling.truncate);
  // mscale / mscale_all_dim (DeepSeek style): a ratio of two corrections.
  c = yarn(R"("factor": 40, "mscale": 0.707, "mscale_all_dim": 1.0, "beta_fast": 16, "beta_slow": 2)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NEAR(c->rope_scaling.attention_factor,
              (0.1 * 0.707 * std::log(40.0) + 1) / (0.1 * std::log(40.0) + 1), 1e-12);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.beta_slow, 2.0);
  EXPECT_EQ(c->max_position_embeddings, 40 * 4096);
  // A top-level original_max_position_embeddings wins (HF's Phi-3 rule).
  c = ParseModelConfig(Minimal("Qwen2ForCausalLM", R"(, "max_position_embeddings": 4096,
      "original_max_position_embeddings": 2048, "rope_scaling": {"type": "yarn", "factor": 2,
      "original_max_position_embeddings": 1024})"),
                       "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 2048);
  EXPECT_EQ(c->max_position_embeddings, 4096);
}

TEST(ModelConfigTest, Qwen2CardYarnScalesMaxModelLen) {
  std::ifstream in("tests/fixtures/shapes/qwen2-72b-instruct/config.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string json = text.str();
  const size_t close = json.rfind('}');
  ASSERT_NE(close, std::string::npos);
  json.insert(close, R"(, "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768,
                                           "type": "yarn"})");
  auto c = ParseModelConfig(json, "qwen2-72b/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_position_embeddings, 131072);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 32768);
}

TEST(ModelConfigTest, DefaultRopeAndQwen25KeysAccepted) {
  // Qwen2.5-7B-Instruct's config.json as published: sliding_window set but
  // use_sliding_window false, max_window_layers, no rope_scaling.
  const std::string qwen25 = R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 152064)";
  const std::string extras[] = {
      "}",
      R"(, "rope_scaling": null})",
      R"(, "rope_scaling": {}})",
      R"(, "rope_scaling": {"rope_type": "default"}})",
      R"(, "rope_scaling": {"type": "default"}})",
      R"(, "rope_scaling": {"rope_type": null, "factor": 2.0}})",
      R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}})",
      R"(, "rope_parameters": null})",
  };
  for (const std::string& extra : extras) {
    auto c = ParseModelConfig(qwen25 + extra, "qwen2.5/config.json");
    ASSERT_TRUE(c.ok()) << extra << ": " << c.status();
    EXPECT_EQ(c->rope_scaling.type, RopeType::kDefault) << extra;
    EXPECT_EQ(c->max_position_embeddings, 32768) << extra;
    EXPECT_DOUBLE_EQ(c->rope_theta, 1e6) << extra;
  }
  // The same config with the model card's YaRN block serves 131072 tokens.
  auto c = ParseModelConfig(
      qwen25 + R"(, "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}})",
      "qwen2.5/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_position_embeddings, 131072);
}

TEST(ModelConfigTest, OtherRopeTypesAreRefusedByName) {
  struct Case {
    std::string extra, key, type;
  };
  const Case cases[] = {
      {R"("rope_scaling": {"type": "linear", "factor": 2.0})", "rope_scaling.type", "linear"},
      {R"("rope_scaling": {"rope_type": "dynamic", "factor": 2.0})", "rope_scaling.rope_type", "dynamic"},
      {R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})",
       "rope_scaling.rope_type", "llama3"},
      {R"("rope_scaling": {"type": "longrope", "short_factor": [1], "long_factor": [2]})",
       "rope_scaling.type", "longrope"},
      {R"("rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]})", "rope_scaling.type", "mrope"},
      {R"("rope_parameters": {"rope_type": "su", "rope_theta": 10000})", "rope_parameters.rope_type", "su"},
  };
  for (const Case& k : cases) {
    auto c = ParseModelConfig(Minimal("Qwen2ForCausalLM", ", " + k.extra), "m/config.json");
    ASSERT_FALSE(c.ok()) << k.extra;
    const std::string msg(c.status().message());
    EXPECT_NE(msg.find("m/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"" + k.key + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"" + k.type + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("default, yarn"), std::string::npos) << msg;  // says what is supported
  }
}

TEST(ModelConfigTest, BadYarnValuesNameTheKey) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"type": "yarn", "original_max_position_embeddings": 64})", "rope_scaling.factor"},
      {R"({"type": "yarn", "factor": 0.5})", "rope_scaling.factor"},
      {R"({"type": "yarn", "factor": "4"})", "rope_scaling.factor"},
      {R"({"type": "yarn", "factor": 1e9})", "rope_scaling.factor"},
      {R"({"type": "yarn", "factor": 4, "original_max_position_embeddings": -1})",
       "rope_scaling.original_max_position_embeddings"},
      {R"({"type": "yarn", "factor": 4, "original_max_position_embeddings": 10.5})",
       "rope_scaling.original_max_position_embeddings"},
      {R"({"type": "yarn", "factor": 4, "attention_factor": -1})", "rope_scaling.attention_factor"},
      {R"({"type": "yarn", "factor": 4, "beta_fast": 1, "beta_slow": 32})", "rope_scaling.beta_fast"},
      {R"({"type": "yarn", "factor": 4, "truncate": "yes"})", "rope_scaling.truncate"},
      {R"({"type": "yarn", "factor": 4, "partial_rotary_factor": 0.5})", "partial_rotary_factor"},
      {R"({"type": 7})", "rope_scaling.type"},
      {R"("yarn")", "rope_scaling"},
      {R"({"full_attention": {"rope_type": "yarn", "factor": 4}})", "rope_scaling.full_attention"},
  };
  for (const auto& [rope, key] : cases) {
    auto c = ParseModelConfig(Minimal("Qwen2ForCausalLM", R"(, "rope_scaling": )" + rope),
                              "m/config.json");
    ASSERT_FALSE(c.ok()) << rope;
    const std::string msg(c.status().message());
    EXPECT_NE(msg.find("m/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"" + key + "\""), std::string::npos) << rope << ": " << msg;
  }
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

// HF's rule: generation_config's list replaces config.json's, never merges.
TEST(GenerationConfigTest, EosTokenIdsPreferGenerationConfig) {
  ModelConfig config;
  config.eos_token_ids = {2};
  GenerationConfig gen;
  EXPECT_EQ(EosTokenIds(config, gen), std::vector<int>{2});
  gen.eos_token_ids = {7, 9};
  EXPECT_EQ(EosTokenIds(config, gen), (std::vector<int>{7, 9}));
  config.eos_token_ids.clear();
  EXPECT_EQ(EosTokenIds(config, gen), (std::vector<int>{7, 9}));
  gen.eos_token_ids.clear();
  EXPECT_TRUE(EosTokenIds(config, gen).empty());
}

TEST(GenerationConfigTest, MissingFileIsEmpty) {
  auto g = LoadGenerationConfig("/nonexistent");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->eos_token_ids.empty());
}

}  // namespace
}  // namespace tpserve
