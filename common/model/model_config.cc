#include "common/model/model_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/rope.h"

namespace tpserve {
namespace {

using nlohmann::json;

absl::Status KeyError(const std::string& source, const std::string& key,
                      const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": key \"", key, "\" ", what));
}

// Reads a positive integer field. `required` fields must be present.
absl::Status ReadInt(const json& j, const std::string& source, const std::string& key,
                     bool required, int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return KeyError(source, key, "is missing");
    return absl::OkStatus();
  }
  if (!it->is_number_integer()) return KeyError(source, key, "must be an integer");
  const int64_t v = it->get<int64_t>();
  if (v <= 0 || v > (int64_t{1} << 30)) {
    return KeyError(source, key, absl::StrCat("must be in [1, 2^30], got ", v));
  }
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status ReadPositiveDouble(const json& j, const std::string& source,
                                const std::string& key, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return KeyError(source, key, "must be a number");
  const double v = it->get<double>();
  if (!(v > 0)) return KeyError(source, key, absl::StrCat("must be > 0, got ", v));
  *out = v;
  return absl::OkStatus();
}

// "eos_token_id" is an int, a list of ints, or null.
absl::Status ReadIdList(const json& j, const std::string& source, const std::string& key,
                        std::vector<int>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  out->clear();
  if (it->is_number_integer()) {
    out->push_back(it->get<int>());
    return absl::OkStatus();
  }
  if (!it->is_array()) return KeyError(source, key, "must be an integer or a list of integers");
  for (const json& e : *it) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0) {
      return KeyError(source, key, "must contain only non-negative integers");
    }
    out->push_back(e.get<int>());
  }
  return absl::OkStatus();
}

absl::Status ReadOptionalInt(const json& j, const std::string& source, const std::string& key,
                             std::optional<int>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return KeyError(source, key, "must be an integer");
  *out = it->get<int>();
  return absl::OkStatus();
}

absl::Status ReadOptionalDouble(const json& j, const std::string& source,
                                const std::string& key, std::optional<double>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return KeyError(source, key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::StatusOr<json> ParseObject(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": top level must be a JSON object"));
  }
  return j;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ss.str();
}

// Architectures whose tensors follow the Qwen2/Llama layout this project
// implements; the bool says whether q/k/v carry biases.
struct KnownArchitecture {
  const char* name;
  bool attention_bias;
};
constexpr KnownArchitecture kArchitectures[] = {
    {"Qwen2ForCausalLM", true},
    {"LlamaForCausalLM", false},
    {"MistralForCausalLM", false},
};

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source) {
  auto parsed = ParseObject(json_text, source);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  ModelConfig c;

  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
    return KeyError(source, "architectures", "must be a non-empty list of strings");
  }
  c.architecture = (*arch)[0].get<std::string>();
  bool known = false;
  for (const auto& a : kArchitectures) {
    if (c.architecture == a.name) {
      known = true;
      c.attention_bias = a.attention_bias;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": architecture \"", c.architecture,
        "\" is not supported (supported: Qwen2ForCausalLM, LlamaForCausalLM, MistralForCausalLM)"));
  }
  if (auto it = j.find("attention_bias"); it != j.end() && it->is_boolean()) {
    // Llama-family configs may state it explicitly.
    c.attention_bias = it->get<bool>();
  }
  if (auto it = j.find("model_type"); it != j.end() && it->is_string()) {
    c.model_type = it->get<std::string>();
  }
  if (auto it = j.find("hidden_act"); it != j.end() && it->is_string() &&
      it->get<std::string>() != "silu") {
    return KeyError(source, "hidden_act",
                    absl::StrCat("is \"", it->get<std::string>(), "\"; only \"silu\" is supported"));
  }

  if (auto s = ReadInt(j, source, "vocab_size", true, &c.vocab_size); !s.ok()) return s;
  if (auto s = ReadInt(j, source, "hidden_size", true, &c.hidden_size); !s.ok()) return s;
  if (auto s = ReadInt(j, source, "intermediate_size", true, &c.intermediate_size); !s.ok()) return s;
  if (auto s = ReadInt(j, source, "num_hidden_layers", true, &c.num_hidden_layers); !s.ok()) return s;
  if (auto s = ReadInt(j, source, "num_attention_heads", true, &c.num_attention_heads); !s.ok()) {
    return s;
  }
  c.num_key_value_heads = c.num_attention_heads;  // MHA when absent, as in HF
  if (auto s = ReadInt(j, source, "num_key_value_heads", false, &c.num_key_value_heads); !s.ok()) {
    return s;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return KeyError(source, "num_key_value_heads",
                    absl::StrCat("(", c.num_key_value_heads, ") must divide num_attention_heads (",
                                 c.num_attention_heads, ")"));
  }
  if (c.hidden_size % c.num_attention_heads != 0 && !j.contains("head_dim")) {
    return KeyError(source, "num_attention_heads",
                    absl::StrCat("(", c.num_attention_heads, ") must divide hidden_size (",
                                 c.hidden_size, ") when head_dim is not given"));
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (auto s = ReadInt(j, source, "head_dim", false, &c.head_dim); !s.ok()) return s;
  if (c.head_dim % 2 != 0) {
    return KeyError(source, "head_dim", absl::StrCat("must be even for RoPE, got ", c.head_dim));
  }
  c.max_position_embeddings = 32768;
  if (auto s = ReadInt(j, source, "max_position_embeddings", false, &c.max_position_embeddings);
      !s.ok()) {
    return s;
  }
  if (auto s = ReadPositiveDouble(j, source, "rms_norm_eps", &c.rms_norm_eps); !s.ok()) return s;

  if (auto s = ParseRopeConfig(j, source, &c); !s.ok()) return s;
  if (auto sw = j.find("use_sliding_window"); sw != j.end() && sw->is_boolean() && sw->get<bool>()) {
    return KeyError(source, "use_sliding_window", "is true; sliding-window attention is not supported");
  }

  if (auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return KeyError(source, "tie_word_embeddings", "must be a boolean");
    c.tie_word_embeddings = it->get<bool>();
  }
  const char* dtype_key = j.contains("dtype") ? "dtype" : "torch_dtype";
  if (auto it = j.find(dtype_key); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return KeyError(source, dtype_key, "must be a string");
    c.torch_dtype = it->get<std::string>();
    if (c.torch_dtype != "bfloat16" && c.torch_dtype != "float16" && c.torch_dtype != "float32") {
      return KeyError(source, dtype_key,
                      absl::StrCat("is \"", c.torch_dtype,
                                   "\"; expected bfloat16, float16 or float32"));
    }
  }
  if (auto s = ReadIdList(j, source, "eos_token_id", &c.eos_token_ids); !s.ok()) return s;
  if (auto s = ReadOptionalInt(j, source, "bos_token_id", &c.bos_token_id); !s.ok()) return s;
  if (auto it = j.find("quantization_config"); it != j.end() && !it->is_null()) {
    auto q = ParseQuantConfig(*it, source);
    if (!q.ok()) return q.status();
    c.quantization = *q;
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  auto text = ReadFile(file);
  if (!text.ok()) return text.status();
  return ParseModelConfig(*text, file);
}

absl::StatusOr<GenerationConfig> ParseGenerationConfig(const std::string& json_text,
                                                       const std::string& source) {
  auto parsed = ParseObject(json_text, source);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  GenerationConfig g;
  if (auto s = ReadIdList(j, source, "eos_token_id", &g.eos_token_ids); !s.ok()) return s;
  if (auto s = ReadOptionalInt(j, source, "bos_token_id", &g.bos_token_id); !s.ok()) return s;
  if (auto s = ReadOptionalInt(j, source, "pad_token_id", &g.pad_token_id); !s.ok()) return s;
  if (auto s = ReadOptionalDouble(j, source, "temperature", &g.temperature); !s.ok()) return s;
  if (auto s = ReadOptionalDouble(j, source, "top_p", &g.top_p); !s.ok()) return s;
  if (auto s = ReadOptionalInt(j, source, "top_k", &g.top_k); !s.ok()) return s;
  if (auto s = ReadOptionalDouble(j, source, "min_p", &g.min_p); !s.ok()) return s;
  if (auto s = ReadOptionalDouble(j, source, "repetition_penalty", &g.repetition_penalty);
      !s.ok()) {
    return s;
  }
  if (auto s = ReadOptionalInt(j, source, "max_new_tokens", &g.max_new_tokens); !s.ok()) return s;
  if (auto it = j.find("do_sample"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return KeyError(source, "do_sample", "must be a boolean");
    g.do_sample = it->get<bool>();
  }
  return g;
}

absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& dir) {
  const std::string file = (std::filesystem::path(dir) / "generation_config.json").string();
  if (!std::filesystem::exists(file)) return GenerationConfig{};
  auto text = ReadFile(file);
  if (!text.ok()) return text.status();
  return ParseGenerationConfig(*text, file);
}

std::vector<int> EosTokenIds(const ModelConfig& config, const GenerationConfig& generation) {
  return !generation.eos_token_ids.empty() ? generation.eos_token_ids : config.eos_token_ids;
}

}  // namespace tpserve
