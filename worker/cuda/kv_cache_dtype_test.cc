#include "worker/cuda/kv_cache_dtype.h"

#include <string>

#include "gtest/gtest.h"

namespace tpserve::worker::cuda {
namespace {

TEST(KvCacheDtypeTest, Choices) {
  EXPECT_EQ(*ChooseKvCacheDtype("auto", "NVIDIA A800-SXM4-80GB", 8, 0), KvCacheDtype::kBf16);
  EXPECT_EQ(*ChooseKvCacheDtype("fp8", "NVIDIA H200", 9, 0), KvCacheDtype::kFp8E4m3);
  EXPECT_EQ(*ChooseKvCacheDtype("fp8_e4m3", "NVIDIA L40S", 8, 9), KvCacheDtype::kFp8E4m3);
  EXPECT_EQ(KvCacheElementBytes(KvCacheDtype::kBf16), 2);
  EXPECT_EQ(KvCacheElementBytes(KvCacheDtype::kFp8E4m3), 1);
}

TEST(KvCacheDtypeTest, RefusedWithoutFp8NamingTheGpu) {
  const auto s = ChooseKvCacheDtype("fp8", "NVIDIA A800-SXM4-80GB", 8, 0);
  ASSERT_FALSE(s.ok());
  const std::string m(s.status().message());
  EXPECT_NE(m.find("NVIDIA A800-SXM4-80GB is sm_80"), std::string::npos) << m;
  EXPECT_NE(m.find("--kv-cache-dtype auto"), std::string::npos) << m;
  EXPECT_FALSE(ChooseKvCacheDtype("fp8", "NVIDIA A10", 8, 6).ok());
}

TEST(KvCacheDtypeTest, UnknownValueNamesTheChoices) {
  const auto s = ChooseKvCacheDtype("fp8_e5m2", "NVIDIA H200", 9, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("(auto, fp8, fp8_e4m3)"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace tpserve::worker::cuda
