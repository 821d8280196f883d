#include "common/verify/verify.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/model/model_config.h"
#include "common/model/model_tensors.h"
#include "common/quant/kv_scales.h"
#include "common/quant/quant_linear.h"
#include "common/safetensors/checkpoint.h"
#include "common/safetensors/safetensors_file.h"
#include "common/verify/sha256.h"

namespace tpserve::verify {
namespace {

namespace fs = std::filesystem;
using safetensors::Checkpoint;
using safetensors::TensorView;

constexpr char kManifest[] = "SHA256SUMS";

void AddError(VerifyReport* r, const std::string& e) {
  if (std::find(r->errors.begin(), r->errors.end(), e) == r->errors.end()) r->errors.push_back(e);
}

// Counts NaN/Inf values, converting in chunks so memory stays bounded.
int64_t CountNonFinite(const TensorView& t) {
  if (!safetensors::IsFloat(t.dtype)) return 0;
  constexpr size_t kChunk = size_t{1} << 20;
  const size_t es = safetensors::DTypeSize(t.dtype);
  const size_t n = static_cast<size_t>(t.numel());
  // No larger than the tensor: a 4 MB buffer per small tensor (norms, biases)
  // made verify of a small model slow.
  // Not zeroed: every element read is written by ConvertToFloat32 first.
  const auto buf = std::make_unique_for_overwrite<float[]>(std::min(kChunk, n));
  int64_t bad = 0;
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t m = std::min(kChunk, n - i);
    safetensors::ConvertToFloat32(t.dtype, t.data + i * es, m, buf.get());
    for (size_t j = 0; j < m; ++j) bad += !std::isfinite(buf[j]);
  }
  return bad;
}

// The quantized layer behind the logical weight `e` (qweight/qzeros/scales/
// g_idx or FP8 weight/weight_scale/input_scale): shapes, dtypes, g_idx and
// scale values against the config. False when `e` is not stored quantized.
bool CheckQuantized(const ModelConfig& config, const Checkpoint& ckpt, const ExpectedTensor& e,
                    std::set<std::string>* expected, VerifyReport* r, int* ok) {
  const QuantConfig& quant = config.quantization;
  if (!quant.enabled() || e.shape.size() != 2 || !e.name.ends_with(".weight")) return false;
  const std::string prefix = e.name.substr(0, e.name.size() - 7);
  if (!IsQuantizedLinear(quant, ckpt, prefix)) return false;
  auto specs = QuantLinearSpecs(quant, prefix, e.shape[0], e.shape[1]);
  if (specs.ok()) {
    for (const QuantTensorSpec& spec : *specs) expected->insert(spec.name);
  }
  auto layer = QuantizedLinear::Open(quant, ckpt, prefix, e.shape[0], e.shape[1]);
  if (!layer.ok()) {
    AddError(r, std::string(layer.status().message()));
  } else {
    ++*ok;
    r->tensor_bytes += layer->stored_bytes();
  }
  return true;
}

// The FP8 KV cache's scale tensors (common/quant/kv_scales.h): each checked
// whatever --kv-cache-dtype a server will use, and listed.
void CheckKvScales(const ModelConfig& config, const Checkpoint& ckpt, std::set<std::string>* expected,
                   VerifyReport* r) {
  bool bad = false;
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    for (const QuantTensorSpec& spec : KvScaleSpecs(l)) {
      expected->insert(spec.name);
      if (!ckpt.Has(spec.name)) continue;
      if (auto value = ReadKvScale(ckpt, spec); !value.ok()) {
        AddError(r, std::string(value.status().message()));
        bad = true;
      }
    }
  }
  if (bad) return;
  auto scales = ReadKvCacheScales(ckpt, config.num_hidden_layers);
  if (scales.ok() && scales->tensors > 0) {
    r->passed.push_back(absl::StrCat("FP8 KV cache scales (", scales->tensors, " tensors, used with ",
                                     "--kv-cache-dtype fp8): ", scales->Describe()));
  }
}

void CheckTensors(const ModelConfig& config, const Checkpoint& ckpt, VerifyReport* r) {
  std::set<std::string> expected;
  int ok = 0, quantized = 0;
  for (const ExpectedTensor& e : ExpectedTensors(config)) {
    expected.insert(e.name);
    if (e.optional && !ckpt.Has(e.name)) continue;
    if (CheckQuantized(config, ckpt, e, &expected, r, &ok)) {
      ++quantized;
      continue;
    }
    auto view = ckpt.GetWithShape(e.name, e.shape);
    if (!view.ok()) {
      AddError(r, std::string(view.status().message()));
      continue;
    }
    if (!safetensors::IsFloat(view->dtype)) {
      AddError(r, absl::StrCat(view->file, ": tensor \"", e.name, "\" has non-float dtype ",
                               safetensors::DTypeName(view->dtype)));
      continue;
    }
    if (const int64_t bad = CountNonFinite(*view); bad > 0) {
      AddError(r, absl::StrCat(view->file, ": tensor \"", e.name, "\" holds ", bad,
                               " NaN/Inf values"));
      continue;
    }
    ++ok;
    r->tensor_bytes += static_cast<int64_t>(view->nbytes);
  }
  r->num_tensors = ok;
  if (r->errors.empty()) {
    r->passed.push_back(absl::StrCat(ok, " tensors present with the shapes the config needs, ",
                                     "all values finite (", r->tensor_bytes, " bytes)"));
    if (config.quantization.enabled()) {
      r->passed.push_back(absl::StrCat(config.quantization.Describe(), ": ", quantized,
                                       " linear layers stored quantized with the shapes, dtypes ",
                                       "and scales the config needs"));
    }
  }
  // After the weights' lines; it adds the scale tensors to `expected`.
  CheckKvScales(config, ckpt, &expected, r);
  for (const std::string& name : ckpt.names()) {
    if (!expected.count(name)) {
      r->warnings.push_back(absl::StrCat("tensor \"", name, "\" is not used by ",
                                         config.architecture));
    }
  }
}

void CheckManifest(const std::string& dir, VerifyReport* r) {
  const fs::path manifest = fs::path(dir) / kManifest;
  if (!fs::exists(manifest)) {
    r->warnings.push_back(absl::StrCat("no ", kManifest, " manifest: file checksums not checked"));
    return;
  }
  std::ifstream in(manifest);
  std::string line;
  int line_no = 0, matched = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    // "<64 hex>  <name>" (text mode) or "<64 hex> *<name>" (binary mode).
    const bool hex_ok = line.size() > 66 &&
                        std::all_of(line.begin(), line.begin() + 64, [](char c) {
                          return std::isxdigit(static_cast<unsigned char>(c));
                        }) &&
                        line[64] == ' ' && (line[65] == ' ' || line[65] == '*');
    if (!hex_ok) {
      AddError(r, absl::StrCat(manifest.string(), ":", line_no,
                               ": malformed line (expected \"<sha256 hex>  <file name>\")"));
      continue;
    }
    std::string want = line.substr(0, 64);
    std::transform(want.begin(), want.end(), want.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    const std::string name = line.substr(66);
    const fs::path path = fs::path(dir) / name;
    // The error_code overloads: a name the OS refuses (too long) must be an
    // error in the report, not a filesystem_error thrown out of verify.
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      AddError(r, absl::StrCat(kManifest, " lists ", name, ", which is missing",
                               ec ? " (" + ec.message() + ")" : ""));
      continue;
    }
    // A device such as /dev/zero (an absolute name replaces `dir`) would be
    // hashed forever: only plain files are checked.
    if (!fs::is_regular_file(path, ec)) {
      AddError(r, absl::StrCat(kManifest, " lists ", name, ", which is not a regular file"));
      continue;
    }
    auto got = Sha256File(path.string());
    if (!got.ok()) {
      AddError(r, std::string(got.status().message()));
      continue;
    }
    ++r->files_hashed;
    if (*got != want) {
      AddError(r, absl::StrCat(name, ": SHA-256 ", *got, " does not match ", kManifest, " (", want,
                               "); the file is corrupt or from another revision"));
    } else {
      ++matched;
    }
  }
  if (matched == r->files_hashed && matched > 0) {
    r->passed.push_back(absl::StrCat(matched, " files match ", kManifest));
  }
}

// Reports every shard the index names that does not exist (Checkpoint::Open
// stops at the first problem).
void CheckIndexShards(const std::string& dir, VerifyReport* r) {
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::exists(index_path)) return;
  std::ifstream in(index_path);
  nlohmann::json index = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return;  // Checkpoint::Open reports the malformed index
  }
  std::set<std::string> shards;
  for (const auto& shard : index["weight_map"]) {
    if (shard.is_string()) shards.insert(shard.get<std::string>());
  }
  for (const std::string& shard : shards) {
    std::error_code ec;  // e.g. a name too long: reported, not thrown
    if (!fs::exists(fs::path(dir) / shard, ec)) {
      AddError(r, absl::StrCat(index_path.string(), ": names shard \"", shard,
                               "\", which does not exist"));
    }
  }
}

}  // namespace

VerifyReport VerifyModelDir(const std::string& dir) {
  VerifyReport r;
  r.dir = dir;
  if (!fs::is_directory(dir)) {
    r.errors.push_back(absl::StrCat(dir, ": not a directory"));
    return r;
  }
  auto config = LoadModelConfig(dir);
  if (config.ok()) {
    std::string line = absl::StrCat("config.json: ", config->architecture, ", ",
                                    config->num_hidden_layers, " layers, hidden ",
                                    config->hidden_size, ", vocab ", config->vocab_size);
    if (config->rope_scaling.type == RopeType::kYarn) {
      absl::StrAppend(&line, ", YaRN x", config->rope_scaling.factor, " over ",
                      config->rope_scaling.original_max_position_embeddings, " positions: serves ",
                      config->max_position_embeddings);
    }
    r.passed.push_back(std::move(line));
  } else {
    r.errors.push_back(std::string(config.status().message()));
  }
  auto gen = LoadGenerationConfig(dir);
  if (!gen.ok()) r.errors.push_back(std::string(gen.status().message()));

  // Every weight file on its own first, so that one broken shard does not
  // hide another.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 12 && name.ends_with(".safetensors") && name.starts_with("model")) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    auto file = safetensors::SafetensorsFile::Open(f.string());
    if (!file.ok()) AddError(&r, std::string(file.status().message()));
  }
  CheckIndexShards(dir, &r);
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) {
    AddError(&r, std::string(ckpt.status().message()));
  } else {
    r.passed.push_back(absl::StrCat((*ckpt)->files().size(), " safetensors file(s): headers, ",
                                    "extents and index valid"));
    if (config.ok()) CheckTensors(*config, **ckpt, &r);
  }
  CheckManifest(dir, &r);
  return r;
}

int PrintVerifyReport(const VerifyReport& report, std::ostream& out) {
  out << "Verifying " << report.dir << "\n";
  for (const auto& p : report.passed) out << "  ok      " << p << "\n";
  for (const auto& w : report.warnings) out << "  warning " << w << "\n";
  for (const auto& e : report.errors) out << "  ERROR   " << e << "\n";
  if (report.ok()) {
    out << "OK: " << report.num_tensors << " tensors, " << report.files_hashed
        << " files checksummed\n";
    return 0;
  }
  out << "FAILED: " << report.errors.size() << " error(s)\n";
  return 1;
}

int RunVerify(const std::string& dir, std::ostream& out) {
  return PrintVerifyReport(VerifyModelDir(dir), out);
}

}  // namespace tpserve::verify
