#include "common/quant/quant_config.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

using nlohmann::json;

absl::Status Bad(const std::string& source, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": quantization_config key \"", key, "\" ", what));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// An integer field; `fallback` when absent or null. `alias` is the older
// AutoAWQ spelling ("w_bit", "q_group_size").
absl::StatusOr<int> Int(const json& j, const std::string& source, const std::string& key,
                        const std::string& alias, int fallback) {
  auto it = j.find(key);
  std::string used = key;
  if ((it == j.end() || it->is_null()) && !alias.empty()) {
    it = j.find(alias);
    used = alias;
  }
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return Bad(source, used, absl::StrCat("must be an integer, got ", it->dump()));
  return it->get<int>();
}

absl::StatusOr<bool> Bool(const json& j, const std::string& source, const std::string& key,
                          bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Bad(source, key, absl::StrCat("must be a boolean, got ", it->dump()));
  return it->get<bool>();
}

absl::StatusOr<std::string> String(const json& j, const std::string& source, const std::string& key,
                                   const std::string& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) return Bad(source, key, absl::StrCat("must be a string, got ", it->dump()));
  return Lower(it->get<std::string>());
}

absl::Status ParseAwq(const json& j, const std::string& source, QuantConfig* q) {
  auto bits = Int(j, source, "bits", "w_bit", 4);
  if (!bits.ok()) return bits.status();
  if (*bits != 4) return Bad(source, "bits", absl::StrCat("is ", *bits, "; AWQ supports only 4"));
  q->bits = 4;
  auto group = Int(j, source, "group_size", "q_group_size", 128);
  if (!group.ok()) return group.status();
  if (*group <= 0 || *group % 8 != 0) {
    return Bad(source, "group_size", absl::StrCat("is ", *group, "; AWQ needs a positive multiple of 8"));
  }
  q->group_size = *group;
  auto zero = Bool(j, source, "zero_point", true);
  if (!zero.ok()) return zero.status();
  if (!*zero) return Bad(source, "zero_point", "is false; only AWQ with zero points is supported");
  auto version = String(j, source, "version", "gemm");
  if (!version.ok()) return version.status();
  if (*version != "gemm") {
    return Bad(source, "version",
               absl::StrCat("is \"", *version, "\"; only the \"gemm\" packing is supported"));
  }
  return absl::OkStatus();
}

absl::Status ParseGptq(const json& j, const std::string& source, QuantConfig* q) {
  auto bits = Int(j, source, "bits", "", 4);
  if (!bits.ok()) return bits.status();
  if (*bits != 4 && *bits != 8) {
    return Bad(source, "bits", absl::StrCat("is ", *bits, "; GPTQ supports 4 and 8"));
  }
  q->bits = *bits;
  auto group = Int(j, source, "group_size", "", 128);
  if (!group.ok()) return group.status();
  if (*group != -1 && (*group <= 0 || *group % q->pack_factor() != 0)) {
    return Bad(source, "group_size",
               absl::StrCat("is ", *group, "; expected -1 (per channel) or a positive multiple of ",
                            q->pack_factor()));
  }
  q->group_size = *group == -1 ? 0 : *group;
  auto desc = Bool(j, source, "desc_act", false);
  if (!desc.ok()) return desc.status();
  q->desc_act = *desc;
  auto sym = Bool(j, source, "sym", true);
  if (!sym.ok()) return sym.status();
  q->sym = *sym;
  auto format = String(j, source, "checkpoint_format", "gptq");
  if (!format.ok()) return format.status();
  if (*format == "gptq") {
    q->zero_offset = 1;
  } else if (*format == "gptq_v2") {
    q->zero_offset = 0;
  } else {
    return Bad(source, "checkpoint_format",
               absl::StrCat("is \"", *format, "\"; supported: \"gptq\", \"gptq_v2\""));
  }
  return absl::OkStatus();
}

absl::Status ParseFp8(const json& j, const std::string& source, QuantConfig* q) {
  q->bits = 8;
  auto scheme = String(j, source, "activation_scheme", "dynamic");
  if (!scheme.ok()) return scheme.status();
  if (*scheme != "dynamic" && *scheme != "static") {
    return Bad(source, "activation_scheme",
               absl::StrCat("is \"", *scheme, "\"; expected \"dynamic\" or \"static\""));
  }
  q->static_activations = *scheme == "static";
  if (auto it = j.find("weight_block_size"); it != j.end() && !it->is_null()) {
    return Bad(source, "weight_block_size",
               absl::StrCat("is ", it->dump(), "; block-wise FP8 scales are not supported ",
                            "(per-tensor and per-channel weight_scale are)"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* QuantMethodName(QuantMethod method) {
  switch (method) {
    case QuantMethod::kNone: return "none";
    case QuantMethod::kAwq: return "awq";
    case QuantMethod::kGptq: return "gptq";
    case QuantMethod::kFp8: return "fp8";
  }
  return "?";
}

std::string QuantConfig::Describe() const {
  switch (method) {
    case QuantMethod::kNone: return "not quantized";
    case QuantMethod::kFp8:
      return absl::StrCat("fp8 (e4m3), ", static_activations ? "static" : "dynamic",
                          " activation scales");
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
      return absl::StrCat(QuantMethodName(method), " int", bits, ", ",
                          group_size > 0 ? absl::StrCat("group ", group_size) : "per channel",
                          desc_act ? ", desc_act" : "");
  }
  return "?";
}

absl::StatusOr<QuantConfig> ParseQuantConfig(const json& j, const std::string& source) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": key \"quantization_config\" must be an object, got ", j.dump()));
  }
  auto method = String(j, source, "quant_method", "");
  if (!method.ok()) return method.status();
  QuantConfig q;
  absl::Status s;
  if (*method == "awq") {
    q.method = QuantMethod::kAwq;
    s = ParseAwq(j, source, &q);
  } else if (*method == "gptq") {
    q.method = QuantMethod::kGptq;
    s = ParseGptq(j, source, &q);
  } else if (*method == "fp8") {
    q.method = QuantMethod::kFp8;
    s = ParseFp8(j, source, &q);
  } else if (method->empty()) {
    return Bad(source, "quant_method", "is missing");
  } else {
    return Bad(source, "quant_method",
               absl::StrCat("is \"", *method,
                            "\", which is not supported (supported: awq, gptq, fp8)"));
  }
  if (!s.ok()) return s;
  return q;
}

}  // namespace tpserve
