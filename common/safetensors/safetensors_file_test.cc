#include "common/safetensors/safetensors_file.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/safetensors/tensor_read.h"
#include "gtest/gtest.h"

namespace tpserve::safetensors {
namespace {

constexpr char kShard[] = "tests/fixtures/tiny-qwen2-chat/model-00002-of-00002.safetensors";
constexpr char kGoldens[] = "tests/fixtures/tiny-qwen2/goldens.safetensors";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WriteTmp(const std::string& name, const std::string& bytes) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

// Copies the fixture shard with its JSON header edited by `edit`.
std::string WithHeader(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = ReadAll(kShard);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  edit(header);
  const std::string text = header.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  return WriteTmp(name, out + text + bytes.substr(8 + n));
}

// Opening must fail with a message that contains every one of `needles`.
void ExpectOpenError(const std::string& path, std::initializer_list<std::string> needles) {
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok()) << path;
  const std::string msg(file.status().message());
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
}

TEST(SafetensorsFileTest, OpensFixtureShard) {
  auto file = SafetensorsFile::Open(kShard);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->names().size(), 25u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  auto t = (*file)->Get("model.layers.0.mlp.down_proj.weight");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->dtype, DType::kBF16);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(t->nbytes, 64u * 128 * 2);
  auto missing = (*file)->Get("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("\"nope\""), std::string::npos);
}

TEST(SafetensorsFileTest, ReadsGoldenDtypes) {
  auto file = SafetensorsFile::Open(kGoldens);
  ASSERT_TRUE(file.ok()) << file.status();
  auto ids = ReadInt32(*(*file)->Get("p1.input_ids"));
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 5u);
  auto f32 = ReadFloat32(*(*file)->Get("p0.last_logits"));
  auto f64 = ReadFloat32(*(*file)->Get("p0.last_logits_f64"));
  ASSERT_TRUE(f32.ok() && f64.ok());
  ASSERT_EQ(f32->size(), 4096u);
  for (size_t i = 0; i < f32->size(); ++i) EXPECT_NEAR((*f32)[i], (*f64)[i], 1e-3);
  EXPECT_FALSE(ReadFloat32(*(*file)->Get("p1.input_ids")).ok());
}

TEST(SafetensorsFileTest, TooShortFile) {
  ExpectOpenError(WriteTmp("short.safetensors", "abc"), {"too short"});
}

TEST(SafetensorsFileTest, HeaderLengthPastEof) {
  ExpectOpenError(WriteTmp("trunc_header.safetensors", ReadAll(kShard).substr(0, 200)),
                  {"header length", "past the end"});
}

TEST(SafetensorsFileTest, MalformedHeaderJson) {
  std::string bytes = ReadAll(kShard);
  bytes[8 + 1] = '!';  // breaks the first key's opening quote
  ExpectOpenError(WriteTmp("bad_json.safetensors", bytes), {"not a valid JSON"});
}

TEST(SafetensorsFileTest, TensorExtentPastEof) {
  const std::string bytes = ReadAll(kShard);
  ExpectOpenError(WriteTmp("trunc_data.safetensors", bytes.substr(0, bytes.size() - 100)),
                  {"tensor \"", "past the end"});
}

TEST(SafetensorsFileTest, OverlappingTensors) {
  const std::string path = WithHeader("overlap.safetensors", [](nlohmann::json& h) {
    h["model.layers.0.self_attn.v_proj.weight"]["data_offsets"] =
        h["model.layers.0.self_attn.k_proj.weight"]["data_offsets"];
  });
  ExpectOpenError(path, {"overlap", "model.layers.0.self_attn.k_proj.weight",
                         "model.layers.0.self_attn.v_proj.weight"});
}

TEST(SafetensorsFileTest, UnknownDtype) {
  const std::string path = WithHeader("dtype.safetensors", [](nlohmann::json& h) {
    h["model.norm.weight"]["dtype"] = "Q4_K";
  });
  ExpectOpenError(path, {"model.norm.weight", "unknown dtype \"Q4_K\""});
}

TEST(SafetensorsFileTest, ExtentNotMatchingShape) {
  const std::string path = WithHeader("shape.safetensors", [](nlohmann::json& h) {
    h["model.norm.weight"]["shape"] = {65};
  });
  ExpectOpenError(path, {"model.norm.weight", "needs 130"});
}

TEST(SafetensorsFileTest, MissingFile) {
  auto file = SafetensorsFile::Open("/nonexistent/x.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tpserve::safetensors
