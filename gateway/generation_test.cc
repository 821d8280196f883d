// Generation against the fake router: a consumer that falls behind holds the
// router back (reads pause) and gets the waiting messages as fewer events with
// the same text; an abort ends every sequence with its status and cancels the
// router calls; the registry aborts running and later generations.
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
  // The tokenizer loads once for every test.
  static void SetUpTestSuite() {
    text_ = TextService::Load(kModelDir, "").value().release();
    auto ids = text::Tokenizer::Load(kModelDir).value()->Encode(kReply, false);
    reply_ = new std::vector<int>(ids.begin(), ids.end());
  }
  static void TearDownTestSuite() {
    delete text_;
    delete reply_;
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
    return std::make_unique<Generation>(pool_.get(), text_, nullptr, "req", std::move(specs),
                                        std::chrono::steady_clock::now());
  }

  static inline TextService* text_ = nullptr;
  static inline std::vector<int>* reply_ = nullptr;
  std::unique_ptr<FakeRouter> router_;
  std::unique_ptr<RouterPool> pool_;
};

TEST_F(GenerationTest, ASlowConsumerHoldsTheRouterBackAndGetsFewerLargerEvents) {
  // Three times the reply: more messages (one per token, then EOS) than the
  // gateway reads ahead plus the stream's flow-control window.
  std::vector<int> tokens;
  std::string text;
  for (int i = 0; i < 3; ++i) {
    tokens.insert(tokens.end(), reply_->begin(), reply_->end());
    text += kReply;
  }
  FakeRouterScript script;
  script.reply_tokens = tokens;
  StartRouter(script);
  auto gen = NewGeneration(1);
  gen->Start();
  // Nobody takes the messages: reading pauses, the window fills, and the
  // router's writes wait instead of finishing the call.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(router_->active(), 1);
  std::vector<SequenceEvent> events;
  SequenceEvent e;
  while (gen->Next(&e)) events.push_back(e);
  ASSERT_FALSE(events.empty());
  std::string got;
  for (const SequenceEvent& ev : events) {
    ASSERT_TRUE(ev.error.ok()) << ev.error;
    got += ev.text;
  }
  EXPECT_EQ(got, text);
  EXPECT_EQ(events.back().finish_reason, "stop");
  EXPECT_EQ(events.back().usage.completion_tokens, static_cast<int>(tokens.size()) + 1);
  // What queued while nobody read went out together.
  EXPECT_LT(events.size(), tokens.size() + 1);
}

TEST_F(GenerationTest, AStreamReadAsItArrivesKeepsOneEventPerMessage) {
  FakeRouterScript script;
  script.reply_tokens = *reply_;
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
  EXPECT_GT(events, static_cast<int>(reply_->size()) / 2);
}

TEST_F(GenerationTest, AbortEndsEverySequenceWithItsStatusAndCancelsTheCalls) {
  FakeRouterScript script;
  script.reply_tokens = std::vector<int>(200, (*reply_)[0]);
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
  script.reply_tokens = std::vector<int>(200, (*reply_)[0]);
  script.token_delay = std::chrono::milliseconds(50);
  StartRouter(script);
  GenerationRegistry registry;
  std::vector<SequenceSpec> specs(1);
  specs[0].prompt_token_ids = {1, 2, 3};
  auto running = std::make_unique<Generation>(pool_.get(), text_, nullptr, "a", specs,
                                              std::chrono::steady_clock::now(), &registry);
  running->Start();
  EXPECT_EQ(registry.size(), 1);
  EXPECT_FALSE(registry.WaitIdle(std::chrono::milliseconds(50)));
  registry.AbortAll(absl::UnavailableError("draining"));
  auto late = std::make_unique<Generation>(pool_.get(), text_, nullptr, "b", specs,
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
