#include "worker/service/model_fingerprint.h"

#include "gtest/gtest.h"

namespace tpserve::worker {
namespace {

TEST(ModelFingerprintTest, StableAndSensitiveToFormatAndSeed) {
  auto a = ModelFingerprint("tests/fixtures/tiny-qwen2", "auto", 0);
  auto b = ModelFingerprint("tests/fixtures/tiny-qwen2", "safetensors", 7);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->size(), 16);
  EXPECT_EQ(*a, *b);  // the seed only matters for dummy weights
  auto d0 = ModelFingerprint("tests/fixtures/tiny-qwen2", "dummy", 0);
  auto d1 = ModelFingerprint("tests/fixtures/tiny-qwen2/config.json", "dummy", 1);
  ASSERT_TRUE(d0.ok() && d1.ok());
  EXPECT_NE(*a, *d0);
  EXPECT_NE(*d0, *d1);
  auto chat = ModelFingerprint("tests/fixtures/tiny-qwen2-chat", "auto", 0);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_NE(*a, *chat);
}

TEST(ModelFingerprintTest, MissingConfigIsNotFound) {
  auto f = ModelFingerprint("/nonexistent", "auto", 0);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tpserve::worker
