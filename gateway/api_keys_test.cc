#include "gateway/api_keys.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace tpserve::gateway {
namespace {

TEST(ApiKeysTest, OpenWhenNoKeys) {
  auto keys = ApiKeys::Load({}, "");
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->open());
  EXPECT_TRUE(keys->Check("").ok());
}

TEST(ApiKeysTest, BearerKeyChecked) {
  auto keys = ApiKeys::Load({"sk-one", "sk-two"}, "").value();
  EXPECT_TRUE(keys.Check("Bearer sk-one").ok());
  EXPECT_TRUE(keys.Check("bearer sk-two").ok());
  EXPECT_EQ(keys.Check("").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check("Bearer").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check("Bearer sk-on").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check("Bearer sk-one1").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check("Basic sk-one").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check("sk-one").code(), absl::StatusCode::kUnauthenticated);
}

TEST(ApiKeysTest, KeyFile) {
  std::string path = ::testing::TempDir() + "/keys.txt";
  {
    std::ofstream out(path);
    out << "# comment\n  sk-file  \n\n";
  }
  auto keys = ApiKeys::Load({}, path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->Check("Bearer sk-file").ok());
  EXPECT_FALSE(keys->Check("Bearer # comment").ok());
  EXPECT_EQ(ApiKeys::Load({}, path + ".missing").status().code(), absl::StatusCode::kNotFound);
  std::string empty = ::testing::TempDir() + "/empty.txt";
  std::ofstream(empty) << "\n";
  EXPECT_EQ(ApiKeys::Load({}, empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ApiKeysTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace tpserve::gateway
