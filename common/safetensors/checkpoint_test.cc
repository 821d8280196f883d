#include "common/safetensors/checkpoint.h"

#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/safetensors/writer.h"
#include "gtest/gtest.h"

namespace tpserve::safetensors {
namespace {

namespace fs = std::filesystem;
constexpr char kSharded4[] = "tests/fixtures/tiny-qwen2";
constexpr char kSharded2[] = "tests/fixtures/tiny-qwen2-chat";

// A fresh folder under TEST_TMPDIR with the fixture's files symlinked in.
std::string LinkedCopy(const std::string& name, const std::string& src) {
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src)) {
    fs::create_symlink(fs::absolute(e.path()), dir / e.path().filename());
  }
  return dir.string();
}

void RewriteIndex(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path path = fs::path(dir) / "model.safetensors.index.json";
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  in.close();
  edit(j);
  fs::remove(path);  // it is a symlink to the fixture
  std::ofstream(path) << j.dump(2);
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(CheckpointTest, OpensShardedFixtures) {
  auto four = Checkpoint::Open(kSharded4);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ((*four)->files().size(), 4u);
  EXPECT_EQ((*four)->names().size(), 27u);
  EXPECT_TRUE((*four)->Has("lm_head.weight"));
  auto two = Checkpoint::Open(kSharded2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ((*two)->files().size(), 2u);
  EXPECT_FALSE((*two)->Has("lm_head.weight"));  // tied
  auto embed = (*two)->GetWithShape("model.embed_tokens.weight", {151936, 64});
  ASSERT_TRUE(embed.ok()) << embed.status();
  EXPECT_EQ(embed->dtype, DType::kBF16);
}

TEST(CheckpointTest, MissingTensorAndWrongShape) {
  auto ckpt = Checkpoint::Open(kSharded2);
  ASSERT_TRUE(ckpt.ok());
  auto missing = (*ckpt)->Get("lm_head.weight");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Message(missing.status()).find("missing tensor \"lm_head.weight\""), std::string::npos);
  auto shape = (*ckpt)->GetWithShape("model.norm.weight", {128});
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(Message(shape.status()).find("[64]"), std::string::npos);
  EXPECT_NE(Message(shape.status()).find("[128]"), std::string::npos);
  EXPECT_NE(Message(shape.status()).find("model-00002-of-00002.safetensors"), std::string::npos);
}

TEST(CheckpointTest, IndexNamingMissingShard) {
  const std::string dir = LinkedCopy("missing_shard", kSharded4);
  fs::remove(fs::path(dir) / "model-00003-of-00004.safetensors");
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Message(ckpt.status()).find("model-00003-of-00004.safetensors"), std::string::npos);
  EXPECT_NE(Message(ckpt.status()).find("does not exist"), std::string::npos);
  EXPECT_NE(Message(ckpt.status()).find("model.safetensors.index.json"), std::string::npos);
}

TEST(CheckpointTest, IndexPointingAtWrongShard) {
  const std::string dir = LinkedCopy("wrong_shard", kSharded4);
  RewriteIndex(dir, [](nlohmann::json& j) {
    j["weight_map"]["lm_head.weight"] = "model-00001-of-00004.safetensors";
  });
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Message(ckpt.status()).find("\"lm_head.weight\""), std::string::npos);
  EXPECT_NE(Message(ckpt.status()).find("lacks it"), std::string::npos);
}

TEST(CheckpointTest, MalformedIndex) {
  const std::string dir = LinkedCopy("bad_index", kSharded4);
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  fs::remove(index);
  std::ofstream(index) << "{\"weight_map\": {";
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(Message(ckpt.status()).find("model.safetensors.index.json"), std::string::npos);
}

TEST(CheckpointTest, SingleFileAndEmptyFolder) {
  const fs::path dir = fs::path(std::getenv("TEST_TMPDIR")) / "single";
  fs::create_directories(dir);
  EXPECT_EQ(Checkpoint::Open(dir.string()).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(),
                               {Float32Tensor("a", {2, 2}, {1, 2, 3, 4}),
                                Float32Tensor("b", {3}, {5, 6, 7})})
                  .ok());
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->names(), (std::vector<std::string>{"a", "b"}));
  auto b = (*ckpt)->Get("b");
  ASSERT_TRUE(b.ok());
  float third;
  std::memcpy(&third, b->data + 8, 4);
  EXPECT_EQ(third, 7.0f);
}

}  // namespace
}  // namespace tpserve::safetensors
