#include "common/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

using nlohmann::json;

absl::Status KeyError(const std::string& source, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": key \"", key, "\" ", what));
}

// A number from the RoPE object, reported as "<object>.<key>". Absent or null
// leaves *out unchanged.
absl::Status ReadRopeNumber(const json& rope, const std::string& source, const std::string& prefix,
                            const std::string& key, double* out) {
  auto it = rope.find(key);
  if (it == rope.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return KeyError(source, prefix + key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

// YaRN's magnitude correction (HF transformers' get_mscale).
double YarnMscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

// The YaRN fields of `rope` (named `prefix` in errors), as HF transformers 5
// resolves them; then the served length becomes original * factor.
absl::Status ReadYarn(const json& j, const json& rope, const std::string& source,
                      const std::string& prefix, ModelConfig* c) {
  RopeScaling& r = c->rope_scaling;
  r.type = RopeType::kYarn;
  double original = c->max_position_embeddings;
  if (auto s = ReadRopeNumber(rope, source, prefix, "original_max_position_embeddings", &original);
      !s.ok()) {
    return s;
  }
  // HF gives a top-level original_max_position_embeddings priority (Phi-3 style).
  if (auto s = ReadRopeNumber(j, source, "", "original_max_position_embeddings", &original); !s.ok()) {
    return s;
  }
  if (original != std::floor(original) || original < 1 || original > (1 << 30)) {
    return KeyError(source, prefix + "original_max_position_embeddings",
                    absl::StrCat("must be an integer in [1, 2^30], got ", original));
  }
  r.original_max_position_embeddings = static_cast<int>(original);
  auto f = rope.find("factor");
  if (f == rope.end()) return KeyError(source, prefix + "factor", "is missing; YaRN needs it");
  // null: the ratio of the two lengths, as HF computes it.
  r.factor = static_cast<double>(c->max_position_embeddings) / r.original_max_position_embeddings;
  if (auto s = ReadRopeNumber(rope, source, prefix, "factor", &r.factor); !s.ok()) return s;
  const double scaled = std::floor(r.original_max_position_embeddings * r.factor);
  if (!(r.factor >= 1.0) || scaled > (1 << 30)) {
    return KeyError(source, prefix + "factor",
                    absl::StrCat("must be >= 1 and keep original_max_position_embeddings * factor "
                                 "within 2^30, got ", r.factor));
  }
  double attention_factor = 0, mscale = 0, mscale_all_dim = 0;
  if (auto s = ReadRopeNumber(rope, source, prefix, "attention_factor", &attention_factor); !s.ok()) {
    return s;
  }
  if (auto s = ReadRopeNumber(rope, source, prefix, "mscale", &mscale); !s.ok()) return s;
  if (auto s = ReadRopeNumber(rope, source, prefix, "mscale_all_dim", &mscale_all_dim); !s.ok()) {
    return s;
  }
  if (attention_factor < 0) {
    return KeyError(source, prefix + "attention_factor",
                    absl::StrCat("must be > 0, got ", attention_factor));
  }
  if (attention_factor > 0) {
    r.attention_factor = attention_factor;
  } else if (mscale != 0 && mscale_all_dim != 0) {
    r.attention_factor = YarnMscale(r.factor, mscale) / YarnMscale(r.factor, mscale_all_dim);
  } else {
    r.attention_factor = YarnMscale(r.factor, 1.0);
  }
  // HF reads these with `or`: null and 0 both mean the default.
  double beta_fast = 0, beta_slow = 0;
  if (auto s = ReadRopeNumber(rope, source, prefix, "beta_fast", &beta_fast); !s.ok()) return s;
  if (auto s = ReadRopeNumber(rope, source, prefix, "beta_slow", &beta_slow); !s.ok()) return s;
  if (beta_fast != 0) r.beta_fast = beta_fast;
  if (beta_slow != 0) r.beta_slow = beta_slow;
  if (!(r.beta_slow > 0) || r.beta_fast < r.beta_slow) {
    return KeyError(source, prefix + "beta_fast",
                    absl::StrCat("must be >= beta_slow > 0, got beta_fast ", r.beta_fast,
                                 ", beta_slow ", r.beta_slow));
  }
  if (auto t = rope.find("truncate"); t != rope.end() && !t->is_null()) {
    if (!t->is_boolean()) return KeyError(source, prefix + "truncate", "must be a boolean");
    r.truncate = t->get<bool>();
  }
  c->max_position_embeddings = static_cast<int>(scaled);
  return absl::OkStatus();
}

}  // namespace

// As in HF transformers 5: a non-empty rope_scaling (classic layout, e.g. the
// Qwen2 cards' YaRN block) wins over rope_parameters (newer layout), and a
// theta inside the object over the top-level one.
absl::Status ParseRopeConfig(const json& j, const std::string& source, ModelConfig* c) {
  if (auto s = ReadRopeNumber(j, source, "", "rope_theta", &c->rope_theta); !s.ok()) return s;
  if (!(c->rope_theta > 0)) {
    return KeyError(source, "rope_theta", absl::StrCat("must be > 0, got ", c->rope_theta));
  }
  const json* rope = nullptr;
  std::string prefix;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) return KeyError(source, key, "must be an object or null");
    if (it->empty()) continue;
    rope = &*it;
    prefix = absl::StrCat(key, ".");
    break;
  }
  double partial = 1.0;
  if (auto s = ReadRopeNumber(j, source, "", "partial_rotary_factor", &partial); !s.ok()) return s;
  if (rope != nullptr) {
    if (auto s = ReadRopeNumber(*rope, source, prefix, "partial_rotary_factor", &partial); !s.ok()) {
      return s;
    }
  }
  if (partial != 1.0) {
    return KeyError(source, "partial_rotary_factor",
                    absl::StrCat("is ", partial, "; only full-width RoPE (1.0) is supported"));
  }
  if (rope == nullptr) return absl::OkStatus();
  for (const auto& [key, value] : rope->items()) {
    if (value.is_object()) {
      return KeyError(source, prefix + key,
                      "is an object; per-layer-type RoPE parameters are not supported");
    }
  }
  double theta = c->rope_theta;
  if (auto s = ReadRopeNumber(*rope, source, prefix, "rope_theta", &theta); !s.ok()) return s;
  if (!(theta > 0)) return KeyError(source, prefix + "rope_theta", absl::StrCat("must be > 0, got ", theta));
  c->rope_theta = theta;
  // "rope_type" (current) or "type" (older configs); null means default.
  std::string type_key = prefix + "rope_type";
  auto type = rope->find("rope_type");
  if (type == rope->end() || type->is_null()) {
    type = rope->find("type");
    type_key = prefix + "type";
  }
  if (type == rope->end() || type->is_null()) return absl::OkStatus();
  if (!type->is_string()) return KeyError(source, type_key, "must be a string");
  const std::string name = type->get<std::string>();
  if (name == "default") return absl::OkStatus();
  if (name == "yarn") return ReadYarn(j, *rope, source, prefix, c);
  return KeyError(source, type_key,
                  absl::StrCat("is \"", name, "\"; supported RoPE types: default, yarn"));
}

RopeTable MakeRopeTable(int head_dim, double theta, const RopeScaling& scaling) {
  const int half = head_dim / 2;
  RopeTable t;
  t.inv_freq.resize(half);
  if (scaling.type == RopeType::kDefault) {
    for (int i = 0; i < half; ++i) {
      t.inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim));
    }
    return t;
  }
  // YaRN: pairs that turn more than beta_fast times over the original context
  // keep their frequency (extrapolation), those under beta_slow turns are
  // divided by `factor` (interpolation), with a linear ramp between.
  const double dim = head_dim;
  auto correction_dim = [&](double rotations) {
    return dim * std::log(scaling.original_max_position_embeddings / (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  double low = correction_dim(scaling.beta_fast), high = correction_dim(scaling.beta_slow);
  if (scaling.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // HF's guard against a zero-width ramp
  // float32 from here on, in HF's order of operations.
  const float factor = static_cast<float>(scaling.factor);
  const float low_f = static_cast<float>(low), width = static_cast<float>(high - low);
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float pos_freq = static_cast<float>(std::pow(theta, static_cast<double>(exponent)));
    const float extrapolated = 1.0f / pos_freq;
    const float interpolated = 1.0f / (factor * pos_freq);
    const float ramp = std::clamp((static_cast<float>(i) - low_f) / width, 0.0f, 1.0f);
    const float keep = 1.0f - ramp;
    t.inv_freq[i] = interpolated * (1.0f - keep) + extrapolated * keep;
  }
  t.attention_factor = static_cast<float>(scaling.attention_factor);
  return t;
}

}  // namespace tpserve
