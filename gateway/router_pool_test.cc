#include "gateway/router_pool.h"

#include <gtest/gtest.h>

#include <thread>

#include "gateway/testing/fake_router.h"

namespace tpserve::gateway {
namespace {

using testing::FakeRouter;

std::unique_ptr<FakeRouter> StartFake() {
  auto r = FakeRouter::Start(testing::TinyChatModelInfo(), {});
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(r).value();
}

TEST(RouterPoolTest, RejectsEmptyAndMalformed) {
  EXPECT_EQ(RouterPool::Create({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RouterPool::Create({"nohostport"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RouterPoolTest, PicksLeastLoadedAndLearnsModelInfo) {
  auto a = StartFake();
  auto b = StartFake();
  a->SetLoad(10, 5);
  b->SetLoad(1, 0);
  RouterPoolOptions options;
  options.poll_interval = std::chrono::milliseconds(20);
  auto pool = RouterPool::Create({a->address(), b->address()}, options).value();
  pool->PollOnce();
  ASSERT_TRUE(pool->AnyReady());
  ASSERT_TRUE(pool->model_info().has_value());
  EXPECT_EQ(pool->model_info()->vocab_size(), 151936);
  for (int p = 0; p < 20; ++p) {
    std::vector<int> prompt = {p, p + 1, p + 2};
    EXPECT_EQ(pool->Pick(prompt, {}), 1);
  }
  // Excluding the best leaves the other one; excluding both leaves nothing.
  EXPECT_EQ(pool->Pick(std::vector<int>{1}, {1}), 0);
  EXPECT_EQ(pool->Pick(std::vector<int>{1}, {0, 1}), std::nullopt);
}

TEST(RouterPoolTest, CloseLoadsUsePrefixAffinity) {
  auto a = StartFake();
  auto b = StartFake();
  auto c = StartFake();
  auto pool = RouterPool::Create({a->address(), b->address(), c->address()}).value();
  pool->PollOnce();
  // Equal loads: the same prefix always maps to the same router, and
  // different prefixes spread over all of them.
  std::vector<int> seen(3, 0);
  for (int p = 0; p < 60; ++p) {
    std::vector<int> prompt = {p, 7, 7, 7};
    auto first = pool->Pick(prompt, {});
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(pool->Pick(prompt, {}), first);
    ++seen[*first];
  }
  for (int count : seen) EXPECT_GT(count, 5);
}

TEST(RouterPoolTest, NotReadyRoutersAreAvoided) {
  auto a = StartFake();
  auto b = StartFake();
  a->SetState(tpserve::v1::SERVING_STATE_STARTING);
  auto pool = RouterPool::Create({a->address(), b->address()}).value();
  pool->PollOnce();
  for (int p = 0; p < 10; ++p) EXPECT_EQ(pool->Pick(std::vector<int>{p}, {}), 1);
  pool->MarkUnavailable(1);
  // Nothing ready: fall back to any router rather than refusing outright.
  EXPECT_TRUE(pool->Pick(std::vector<int>{1}, {}).has_value());
  auto snapshot = pool->Snapshot();
  ASSERT_EQ(snapshot.size(), 2u);
  EXPECT_FALSE(snapshot[0].ready);
}

TEST(RouterPoolTest, UnreachableRouterIsNotReady) {
  RouterPoolOptions options;
  options.rpc_timeout = std::chrono::milliseconds(200);
  auto pool = RouterPool::Create({"127.0.0.1:1"}, options).value();
  pool->PollOnce();
  EXPECT_FALSE(pool->AnyReady());
  EXPECT_FALSE(pool->model_info().has_value());
}

}  // namespace
}  // namespace tpserve::gateway
