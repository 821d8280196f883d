// Generation against the fake router: messages that wait for a slow consumer
// become one event with the same text, and an abort ends every sequence with
// its status and cancels the router calls.
#include "gateway/generation.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/text/tokenizer.h"
#include "gateway/testing/fake_router.h"

namespace tpserve::gateway {
namespace {

using testing::FakeRouter;
using testing::FakeRouterScript;

constexpr char kModelDir[] = "tests/fixtures/tiny-qwen2-chat";
constexpr char kReply[] = "One, two, three, four, five, six, seven, eight.";

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = TextService::Load(kModelDir, "").value();
    auto ids = text::Tokenizer::Load(kModelDir).value()->Encode(kReply, false);
    reply_.assign(ids.begin(), ids.end());
  }

  void StartRouter(FakeRouterScript script) {
    router_ = FakeRouter::Start(testing::TinyChatModelInfo(), std::move(script)).value();
    pool_ = RouterPool::Create({router_->address()}).value();
    pool_->PollOnce();
  }

  std::unique_ptr<Generation> NewGeneration(int n) {
    std::vector<SequenceSpec> specs(n);
    for (int i = 0; i < n; ++i) {
      specs[i].index = i;
      specs[i].prompt_token_ids = {1, 2, 3};
      specs[i].sampling.set_max_tokens(1000);
    }
    return std::make_unique<Generation>(pool_.get(), text_.get(), nullptr, "req", std::move(specs),
                                        std::chrono::steady_clock::now());
  }

  std::unique_ptr<TextService> text_;
  std::vector<int> reply_;
  std::unique_ptr<FakeRouter> router_;
  std::unique_ptr<RouterPool> pool_;
};

TEST_F(GenerationTest, MessagesWaitingForASlowConsumerBecomeOneEvent) {
  FakeRouterScript script;
  script.reply_tokens = reply_;
  StartRouter(script);
  auto gen = NewGeneration(1);
  gen->Start();
  // Every message (one per token, then EOS) arrives before the first Next:
  // wait for the fake to finish the call, then for the bytes to land.
  for (int i = 0; i < 500 && (router_->requests().empty() || router_->active() > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::vector<SequenceEvent> events;
  SequenceEvent e;
  while (gen->Next(&e)) events.push_back(e);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].error.ok()) << events[0].error;
  EXPECT_EQ(events[0].text, kReply);
  EXPECT_EQ(events[0].finish_reason, "stop");
  EXPECT_EQ(events[0].usage.completion_tokens, static_cast<int>(reply_.size()) + 1);
}

TEST_F(GenerationTest, AStreamReadAsItArrivesKeepsOneEventPerMessage) {
  FakeRouterScript script;
  script.reply_tokens = reply_;
  script.token_delay = std::chrono::milliseconds(30);
  StartRouter(script);
  auto gen = NewGeneration(1);
  gen->Start();
  std::string text;
  int events = 0;
  SequenceEvent e;
  while (gen->Next(&e)) {
    ASSERT_TRUE(e.error.ok()) << e.error;
    text += e.text;
    ++events;
  }
  EXPECT_EQ(text, kReply);
  // 30 ms apart, a waiting consumer sees nearly every message on its own.
  EXPECT_GT(events, static_cast<int>(reply_.size()) / 2);
}

TEST_F(GenerationTest, AbortEndsEverySequenceWithItsStatusAndCancelsTheCalls) {
  FakeRouterScript script;
  script.reply_tokens = std::vector<int>(200, reply_[0]);
  script.token_delay = std::chrono::milliseconds(50);
  StartRouter(script);
  auto gen = NewGeneration(3);
  gen->Start();
  SequenceEvent e;
  ASSERT_TRUE(gen->Next(&e));
  ASSERT_TRUE(e.error.ok()) << e.error;
  std::thread aborter([&] { gen->Abort(absl::UnavailableError("the gateway is shutting down")); });
  std::vector<bool> failed(3, false);
  while (gen->Next(&e)) {
    if (e.error.ok()) continue;
    EXPECT_EQ(e.error.code(), absl::StatusCode::kUnavailable) << e.error;
    EXPECT_FALSE(failed[e.index]) << "two errors for choice " << e.index;
    failed[e.index] = true;
  }
  aborter.join();
  EXPECT_EQ(failed, std::vector<bool>(3, true));
  EXPECT_TRUE(router_->WaitForCancelled(3, std::chrono::seconds(2)));
}

TEST_F(GenerationTest, RegistryAbortsRunningAndLaterGenerations) {
  FakeRouterScript script;
  script.reply_tokens = std::vector<int>(200, reply_[0]);
  script.token_delay = std::chrono::milliseconds(50);
  StartRouter(script);
  GenerationRegistry registry;
  std::vector<SequenceSpec> specs(1);
  specs[0].prompt_token_ids = {1, 2, 3};
  auto running = std::make_unique<Generation>(pool_.get(), text_.get(), nullptr, "a", specs,
                                              std::chrono::steady_clock::now(), &registry);
  running->Start();
  EXPECT_EQ(registry.size(), 1);
  EXPECT_FALSE(registry.WaitIdle(std::chrono::milliseconds(50)));
  registry.AbortAll(absl::UnavailableError("draining"));
  auto late = std::make_unique<Generation>(pool_.get(), text_.get(), nullptr, "b", specs,
                                           std::chrono::steady_clock::now(), &registry);
  late->Start();
  for (Generation* g : {running.get(), late.get()}) {
    SequenceEvent e;
    absl::Status last;
    while (g->Next(&e)) last = e.error;
    EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
  }
  running.reset();
  late.reset();
  EXPECT_TRUE(registry.WaitIdle(std::chrono::milliseconds(0)));
}

}  // namespace
}  // namespace tpserve::gateway
