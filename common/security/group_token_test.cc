#include "common/security/group_token.h"

#include <set>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

TEST(GroupTokenTest, NewTokensAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string t = NewGroupToken();
    ASSERT_TRUE(ValidateGroupToken(t).ok()) << t;
    EXPECT_EQ(t.size(), 32u);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(GroupTokenTest, ValidateRefusesShortLongAndNonHex) {
  EXPECT_EQ(ValidateGroupToken("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGroupToken(std::string(31, 'a')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGroupToken(std::string(129, 'a')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateGroupToken(std::string(128, 'f')).ok());
  std::string upper(32, 'a');
  upper[5] = 'A';
  EXPECT_EQ(ValidateGroupToken(upper).code(), absl::StatusCode::kInvalidArgument);
  std::string nul(32, '0');
  nul[31] = '\0';
  EXPECT_EQ(ValidateGroupToken(nul).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tpserve
