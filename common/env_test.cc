#include "common/env.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

constexpr char kName[] = "TPSERVE_ENV_TEST_VARIABLE";

class EnvTest : public ::testing::Test {
 protected:
  void TearDown() override { unsetenv(kName); }
  void Set(const char* v) { ASSERT_EQ(setenv(kName, v, 1), 0); }
};

TEST_F(EnvTest, ValueIsNulloptOnlyWhenUnset) {
  EXPECT_FALSE(EnvValue(kName).has_value());
  Set("");
  EXPECT_EQ(EnvValue(kName), "");
  Set("reg");
  EXPECT_EQ(EnvValue(kName), "reg");
}

TEST_F(EnvTest, IntInRangeFallsBackOnAnythingElse) {
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 128);  // unset
  Set("0");
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 0);
  Set("4096");
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 4096);
  Set("4097");
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 128);
  Set("-1");
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 128);
  Set("abc");  // atoi would have read 0
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 128);
  Set("12x");
  EXPECT_EQ(EnvIntInRange(kName, 0, 4096, 128), 128);
  Set("");
  EXPECT_EQ(EnvIntInRange(kName, 1, 128, 128), 128);
  Set("32");
  EXPECT_EQ(EnvIntInRange(kName, 1, 128, 128), 32);
}

TEST_F(EnvTest, SwitchTakesExactlyZeroAndOne) {
  EXPECT_TRUE(EnvSwitch(kName, true));  // unset
  EXPECT_FALSE(EnvSwitch(kName, false));
  Set("0");
  EXPECT_FALSE(EnvSwitch(kName, true));
  Set("1");
  EXPECT_TRUE(EnvSwitch(kName, false));
  Set("yes");
  EXPECT_TRUE(EnvSwitch(kName, true));
  EXPECT_FALSE(EnvSwitch(kName, false));
  Set("10");
  EXPECT_FALSE(EnvSwitch(kName, false));
}

}  // namespace
}  // namespace tpserve
