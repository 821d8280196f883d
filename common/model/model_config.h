// The model facts tpserve needs from a HuggingFace model folder:
// config.json (both the classic and the newer layout) and
// generation_config.json. Shared by gateway, router tooling, worker and the
// `verify` command.
#ifndef TPSERVE_COMMON_MODEL_MODEL_CONFIG_H_
#define TPSERVE_COMMON_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quant/quant_config.h"

namespace tpserve {

// The RoPE variants tpserve implements.
enum class RopeType { kDefault, kYarn };

// "rope_scaling" (classic layout) or "rope_parameters" (newer), with HF
// transformers' defaults filled in. Only YaRN fields exist so far.
struct RopeScaling {
  RopeType type = RopeType::kDefault;
  // Context extension factor (YaRN "factor").
  double factor = 1.0;
  // Pretraining context the frequency ramp is computed for; the config's
  // max_position_embeddings when the file does not say.
  int original_max_position_embeddings = 0;
  // Multiplies cos and sin (so q.k by its square): "attention_factor", else
  // from "mscale"/"mscale_all_dim", else 0.1 * ln(factor) + 1.
  double attention_factor = 1.0;
  // Rotation counts bounding the interpolation ramp (HF defaults 32 / 1).
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  // Round the ramp bounds to whole dimensions (HF default true).
  bool truncate = true;
};

// Architecture hyper-parameters from config.json.
struct ModelConfig {
  // e.g. "Qwen2ForCausalLM" (first entry of "architectures").
  std::string architecture;
  // "qwen2", "llama", ... ("model_type").
  std::string model_type;
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  // hidden_size / num_attention_heads unless config.json says "head_dim".
  int head_dim = 0;
  // Longest sequence the model serves, the default and upper bound of
  // --max-model-len: config.json's value, or under YaRN
  // original_max_position_embeddings * factor (what vLLM derives).
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  // "rope_theta" (classic) or "rope_parameters.rope_theta" (newer layout).
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // Qwen2 has q/k/v biases; Llama does not. Decided by the architecture.
  bool attention_bias = true;
  // "torch_dtype" (classic) or "dtype" (newer): "bfloat16", "float16", "float32".
  std::string torch_dtype = "bfloat16";
  // bos/eos from config.json, if present.
  std::vector<int> eos_token_ids;
  std::optional<int> bos_token_id;
  // "quantization_config" (AWQ / GPTQ / FP8 checkpoints); method kNone when
  // absent.
  QuantConfig quantization;
};

// Defaults from generation_config.json (all optional).
struct GenerationConfig {
  // "eos_token_id" may be an int or a list.
  std::vector<int> eos_token_ids;
  std::optional<int> bos_token_id;
  std::optional<int> pad_token_id;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<bool> do_sample;
  std::optional<int> max_new_tokens;
};

// Parses config.json text. Errors name the file (`source`) and the key.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source);

// Reads and parses <dir>/config.json, or a path to a config.json file.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Parses generation_config.json text.
absl::StatusOr<GenerationConfig> ParseGenerationConfig(
    const std::string& json_text, const std::string& source);

// Reads <dir>/generation_config.json; a missing file gives an empty config.
absl::StatusOr<GenerationConfig> LoadGenerationConfig(const std::string& dir);

// The ids that end a sequence, as HF transformers decides them:
// generation_config.json's eos_token_id when it has one, else config.json's.
// The one rule both backends' samplers (min_tokens masking) and the router's
// stop check (through the worker's Info) use.
std::vector<int> EosTokenIds(const ModelConfig& config, const GenerationConfig& generation);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_MODEL_CONFIG_H_
