#include "common/verify/verify.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/safetensors/writer.h"
#include "common/verify/sha256.h"
#include "gtest/gtest.h"

namespace tpserve::verify {
namespace {

namespace fs = std::filesystem;
constexpr char kFixture[] = "tests/fixtures/tiny-qwen2";
constexpr char kChatFixture[] = "tests/fixtures/tiny-qwen2-chat";
constexpr char kYarnFixture[] = "tests/fixtures/tiny-qwen2-yarn";

// A writable copy of the tiny-qwen2 fixture.
fs::path CopyFixture(const std::string& name) {
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kFixture)) {
    fs::copy_file(e.path(), dir / e.path().filename());
  }
  return dir;
}

void WriteManifest(const fs::path& dir) {
  std::ofstream out(dir / "SHA256SUMS");
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == "SHA256SUMS") continue;
    out << *Sha256File(e.path().string()) << "  " << e.path().filename().string() << "\n";
  }
}

bool HasErrorWith(const VerifyReport& r, const std::string& a, const std::string& b = "") {
  for (const auto& e : r.errors) {
    if (e.find(a) != std::string::npos && e.find(b) != std::string::npos) return true;
  }
  return false;
}

std::string Dump(const VerifyReport& r) {
  std::ostringstream out;
  PrintVerifyReport(r, out);
  return out.str();
}

TEST(VerifyTest, FixturesPass) {
  for (const char* dir : {kFixture, kChatFixture, kYarnFixture}) {
    const VerifyReport r = VerifyModelDir(dir);
    EXPECT_TRUE(r.ok()) << Dump(r);
    std::ostringstream out;
    EXPECT_EQ(PrintVerifyReport(r, out), 0);
    EXPECT_NE(out.str().find("no SHA256SUMS"), std::string::npos);
  }
  EXPECT_EQ(VerifyModelDir(kFixture).num_tensors, 27);
  EXPECT_EQ(VerifyModelDir(kChatFixture).num_tensors, 26);  // tied: no lm_head
  EXPECT_NE(Dump(VerifyModelDir(kYarnFixture)).find("YaRN x4 over 128 positions: serves 512"), std::string::npos)
      << Dump(VerifyModelDir(kYarnFixture));
}

TEST(VerifyTest, ManifestMatches) {
  const fs::path dir = CopyFixture("manifest_ok");
  WriteManifest(dir);
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(r.ok()) << Dump(r);
  EXPECT_EQ(r.files_hashed, 9);  // configs, index, 4 shards, goldens
}

TEST(VerifyTest, CorruptedDataFailsChecksumAndFiniteness) {
  const fs::path dir = CopyFixture("corrupt");
  WriteManifest(dir);
  // Overwrite the last two bytes (the last bf16 of the last tensor) with NaN.
  const fs::path shard = dir / "model-00004-of-00004.safetensors";
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    const char nan_bf16[2] = {static_cast<char>(0xC0), static_cast<char>(0x7F)};
    f.write(nan_bf16, 2);
  }
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "model-00004-of-00004.safetensors", "does not match SHA256SUMS"))
      << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "NaN/Inf")) << Dump(r);
  std::ostringstream out;
  EXPECT_EQ(PrintVerifyReport(r, out), 1);
  EXPECT_NE(out.str().find("FAILED"), std::string::npos);
}

TEST(VerifyTest, MissingAndTruncatedShards) {
  const fs::path dir = CopyFixture("shards");
  fs::remove(dir / "model-00001-of-00004.safetensors");
  fs::resize_file(dir / "model-00003-of-00004.safetensors", 1000);
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(HasErrorWith(r, "model-00001-of-00004.safetensors", "does not exist")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "model-00003-of-00004.safetensors", "past the end")) << Dump(r);
}

TEST(VerifyTest, ConfigFromAnotherModel) {
  const fs::path dir = CopyFixture("wrong_config");
  std::ifstream in(dir / "config.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  config.replace(config.find("\"intermediate_size\": 512"), 24, "\"intermediate_size\": 384");
  std::ofstream(dir / "config.json", std::ios::trunc) << config;
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(HasErrorWith(r, "model.layers.0.mlp.gate_proj.weight", "[384, 256]")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "model.layers.1.mlp.down_proj.weight", "[256, 384]")) << Dump(r);
}

TEST(VerifyTest, MissingTensorAndBadManifest) {
  const fs::path dir = CopyFixture("missing_tensor");
  std::ifstream in(dir / "model.safetensors.index.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string index = text.str();
  const std::string line = "\"model.norm.weight\": \"model-00004-of-00004.safetensors\"";
  const size_t at = index.find(line);
  ASSERT_NE(at, std::string::npos);
  index.erase(index.rfind(',', at), at + line.size() - index.rfind(',', at));
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc) << index;
  std::ofstream(dir / "SHA256SUMS") << "not-a-hash  config.json\n"
                                    << std::string(64, 'a') << "  gone.safetensors\n";
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(HasErrorWith(r, "missing tensor \"model.norm.weight\"")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "SHA256SUMS:1", "malformed")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "gone.safetensors", "missing")) << Dump(r);
}

// Found while writing fuzz/verify_fuzzer.cc: a manifest naming a device (an absolute name
// replaces the folder) must not be read; /dev/zero used to hash forever.
TEST(VerifyTest, ManifestNamingADeviceIsRefused) {
  const fs::path dir = CopyFixture("manifest_device");
  std::ofstream(dir / "SHA256SUMS") << std::string(64, 'a') << "  /dev/zero\n";
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(HasErrorWith(r, "/dev/zero", "not a regular file")) << Dump(r);
}

// Found by fuzz/verify_fuzzer.cc: a name longer than the OS allows made
// std::filesystem throw out of VerifyModelDir (and Checkpoint::Open).
TEST(VerifyTest, OverlongNamesAreErrorsNotThrows) {
  const fs::path dir = CopyFixture("overlong_names");
  const std::string name(5000, 'n');
  std::ofstream(dir / "SHA256SUMS") << std::string(64, 'a') << "  " << name << "\n";
  std::ifstream in(dir / "model.safetensors.index.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string index = text.str();
  const std::string shard = "model-00004-of-00004.safetensors";
  index.replace(index.find(shard), shard.size(), name);
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc) << index;
  VerifyReport r;
  ASSERT_NO_THROW(r = VerifyModelDir(dir.string()));
  EXPECT_TRUE(HasErrorWith(r, "SHA256SUMS lists nnnn", "missing")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "names shard \"nnnn", "does not exist")) << Dump(r);
}

TEST(VerifyTest, NotADirectoryAndBrokenConfig) {
  EXPECT_FALSE(VerifyModelDir("/nonexistent/model").ok());
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / "broken_config";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"architectures\": [\"BertModel\"]}";
  const VerifyReport r = VerifyModelDir(dir.string());
  EXPECT_TRUE(HasErrorWith(r, "BertModel")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "neither model.safetensors")) << Dump(r);
}

}  // namespace
}  // namespace tpserve::verify

namespace tpserve::verify {
namespace {

constexpr const char* kQuantFixtures[] = {
    "tests/fixtures/tiny-qwen2-awq", "tests/fixtures/tiny-qwen2-gptq-int4",
    "tests/fixtures/tiny-qwen2-gptq-int8", "tests/fixtures/tiny-qwen2-fp8"};

TEST(VerifyQuantTest, QuantizedFixturesPass) {
  for (const char* dir : kQuantFixtures) {
    const VerifyReport r = VerifyModelDir(dir);
    EXPECT_TRUE(r.ok()) << Dump(r);
    EXPECT_EQ(r.num_tensors, 27) << dir;  // one per logical tensor, as unquantized
    for (const auto& w : r.warnings) EXPECT_EQ(w.find("is not used"), std::string::npos) << w;
    EXPECT_NE(Dump(r).find("14 linear layers stored quantized"), std::string::npos) << Dump(r);
  }
}

// A copy of a quantized fixture (links resolved) with config.json edited.
fs::path CopyWithConfig(const std::string& fixture, const std::string& name,
                        const std::string& from, const std::string& to) {
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(fixture)) {
    fs::copy_file(e.path(), dir / e.path().filename());  // follows links
  }
  std::ifstream in(dir / "config.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string config = text.str();
  const size_t at = config.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) config.replace(at, from.size(), to);
  std::ofstream(dir / "config.json", std::ios::trunc) << config;
  return dir;
}

TEST(VerifyQuantTest, ConfigMismatchesAreNamed) {
  // Group 64 in the config, 128 in the tensors: the zero points are named.
  VerifyReport r = VerifyModelDir(CopyWithConfig(kQuantFixtures[0], "awq_group",
                                                 "\"group_size\": 128", "\"group_size\": 64")
                                      .string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "\"model.layers.0.self_attn.q_proj.qzeros\" has shape [2, 32]",
                           "awq int4, group 64 needs [4, 32]"))
      << Dump(r);
  // int8 in the config, int4 packing in the tensors.
  r = VerifyModelDir(
      CopyWithConfig(kQuantFixtures[1], "gptq_bits", "\"bits\": 4", "\"bits\": 8").string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "\"model.layers.0.mlp.down_proj.qweight\" has shape [64, 256]",
                           "needs [128, 256]"))
      << Dump(r);
  // Block-wise FP8 is refused by name; an FP8 checkpoint under an AWQ config
  // shows its FP8 weights as what they are.
  r = VerifyModelDir(CopyWithConfig(kQuantFixtures[3], "fp8_plain", "\"quant_method\": \"fp8\"",
                                    "\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]")
                         .string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "\"weight_block_size\" is [128,128]")) << Dump(r);
  r = VerifyModelDir(CopyWithConfig(kQuantFixtures[3], "fp8_awq", "\"quant_method\": \"fp8\"",
                                    "\"quant_method\": \"awq\"")
                         .string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "non-float dtype F8_E4M3")) << Dump(r);
}

// A copy of tiny-qwen2 with `tensors` in one more shard the index names.
fs::path CopyWithExtraShard(const std::string& name, const std::vector<safetensors::TensorData>& tensors) {
  const fs::path dir = CopyFixture(name);
  EXPECT_TRUE(safetensors::WriteSafetensors((dir / "model-extra.safetensors").string(), tensors).ok());
  const fs::path index = dir / "model.safetensors.index.json";
  std::ifstream in(index);
  std::stringstream text;
  text << in.rdbuf();
  std::string json = text.str();
  std::string entries;
  for (const auto& t : tensors) entries += "\"" + t.name + "\": \"model-extra.safetensors\", ";
  const size_t at = json.find("\"weight_map\": {");
  EXPECT_NE(at, std::string::npos);
  json.insert(at + 15, entries);
  std::ofstream(index, std::ios::trunc) << json;
  return dir;
}

safetensors::TensorData Scale(const std::string& name, std::vector<float> values, std::vector<int64_t> shape = {}) {
  return safetensors::Float32Tensor(name, std::move(shape), values);
}

TEST(VerifyKvScalesTest, ScalesListedAndChecked) {
  VerifyReport r = VerifyModelDir(CopyWithExtraShard("kv_scales_ok", {
                                                         Scale("model.layers.0.self_attn.k_scale", {0.5f}),
                                                         Scale("model.layers.0.self_attn.v_scale", {0.25f}, {1}),
                                                         Scale("model.layers.1.self_attn.kv_scale", {2.0f}),
                                                     })
                                      .string());
  EXPECT_TRUE(r.ok()) << Dump(r);
  for (const auto& w : r.warnings) EXPECT_EQ(w.find("is not used"), std::string::npos) << w;
  EXPECT_NE(Dump(r).find("FP8 KV cache scales (3 tensors, used with --kv-cache-dtype fp8): k scales of 2/2 "
                         "layers, in [0.5, 2], v scales of 2/2 layers, in [0.25, 2]"),
            std::string::npos)
      << Dump(r);

  // Every bad one is reported, by name.
  r = VerifyModelDir(CopyWithExtraShard("kv_scales_bad", {
                                                             Scale("model.layers.0.self_attn.k_scale", {1, 2}, {2}),
                                                             Scale("model.layers.1.self_attn.v_scale", {0.0f}),
                                                         })
                         .string());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasErrorWith(r, "\"model.layers.0.self_attn.k_scale\" has shape [2]", "needs [] or [1]")) << Dump(r);
  EXPECT_TRUE(HasErrorWith(r, "\"model.layers.1.self_attn.v_scale\" element 0 is 0", "finite and > 0")) << Dump(r);
}

}  // namespace
}  // namespace tpserve::verify
