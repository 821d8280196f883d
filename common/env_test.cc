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
  struct Case {
    const char* value;
    int lo, hi, want;  // fallback 128
  };
  const Case cases[] = {
      {"0", 0, 4096, 0},      {"4096", 0, 4096, 4096}, {"4097", 0, 4096, 128}, {"-1", 0, 4096, 128},
      {"abc", 0, 4096, 128},  // atoi would have read 0
      {"12x", 0, 4096, 128},  {"", 1, 128, 128},       {"32", 1, 128, 32},
  };
  for (const Case& c : cases) {
    Set(c.value);
    EXPECT_EQ(EnvIntInRange(kName, c.lo, c.hi, 128), c.want)
        << "\"" << c.value << "\" in [" << c.lo << ", " << c.hi << "]";
  }
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
