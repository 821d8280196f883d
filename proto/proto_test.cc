// Round-trips of the contracts through the wire format: what one side writes,
// the other reads back unchanged.
#include <gtest/gtest.h>

#include "proto/router.pb.h"
#include "proto/worker.pb.h"

namespace tpserve::v1 {
namespace {

template <typename T>
T RoundTrip(const T& in) {
  std::string wire;
  EXPECT_TRUE(in.SerializeToString(&wire));
  T out;
  EXPECT_TRUE(out.ParseFromString(wire));
  return out;
}

TEST(ProtoTest, GenerateRequestRoundTrip) {
  GenerateRequest req;
  req.set_request_id("chatcmpl-1");
  for (int id : {151644, 872, 198, 9707}) req.add_prompt_token_ids(id);
  SamplingParams* s = req.mutable_sampling();
  s->set_temperature(0.9f);
  s->set_top_p(0.7f);
  s->set_top_k(20);
  s->set_seed(1234);
  s->set_max_tokens(512);
  s->add_stop_token_ids(151645);
  s->set_repetition_penalty(1.05f);
  s->set_top_logprobs(5);
  req.set_priority(-3);
  req.set_deadline_unix_ms(1700000000123);

  GenerateRequest out = RoundTrip(req);
  EXPECT_EQ(out.request_id(), "chatcmpl-1");
  ASSERT_EQ(out.prompt_token_ids_size(), 4);
  EXPECT_EQ(out.prompt_token_ids(0), 151644);
  EXPECT_FLOAT_EQ(out.sampling().temperature(), 0.9f);
  EXPECT_EQ(out.sampling().top_k(), 20);
  ASSERT_TRUE(out.sampling().has_seed());
  EXPECT_EQ(out.sampling().seed(), 1234u);
  EXPECT_EQ(out.sampling().stop_token_ids(0), 151645);
  EXPECT_EQ(out.priority(), -3);
  EXPECT_EQ(out.deadline_unix_ms(), 1700000000123);
}

TEST(ProtoTest, UnsetSeedStaysUnset) {
  SamplingParams s;
  s.set_temperature(1.0f);
  EXPECT_FALSE(RoundTrip(s).has_seed());
  s.set_seed(0);  // zero is a real seed, distinct from "unset"
  EXPECT_TRUE(RoundTrip(s).has_seed());
}

TEST(ProtoTest, GenerateResponseWithLogprobsAndUsage) {
  GenerateResponse resp;
  resp.add_token_ids(42);
  TokenLogprob* lp = resp.add_logprobs();
  lp->set_token_id(42);
  lp->set_logprob(-0.25f);
  TopLogprob* top = lp->add_top();
  top->set_token_id(42);
  top->set_logprob(-0.25f);
  resp.set_finish_reason(FINISH_REASON_STOP);
  resp.set_stop_token_id(151645);
  resp.mutable_usage()->set_prompt_tokens(10);
  resp.mutable_usage()->set_completion_tokens(3);
  resp.mutable_usage()->set_cached_tokens(8);

  GenerateResponse out = RoundTrip(resp);
  EXPECT_EQ(out.finish_reason(), FINISH_REASON_STOP);
  EXPECT_TRUE(out.has_stop_token_id());
  EXPECT_EQ(out.logprobs(0).top(0).token_id(), 42);
  EXPECT_EQ(out.usage().cached_tokens(), 8);
}

TEST(ProtoTest, StepRequestIncrementalFields) {
  StepRequest step;
  step.set_step_id(7);
  NewSequence* ns = step.add_new_sequences();
  ns->set_seq_id(1);
  for (int i = 0; i < 20; ++i) ns->add_token_ids(i);
  ns->set_num_prompt_tokens(20);
  ns->set_num_computed_tokens(16);
  ns->set_num_scheduled_tokens(4);
  ns->add_block_table(3);
  ns->add_block_table(9);
  RunningSequence* rs = step.add_running_sequences();
  rs->set_seq_id(2);
  rs->set_num_scheduled_tokens(1);
  rs->add_new_block_ids(11);
  step.add_finished_seq_ids(5);

  StepRequest out = RoundTrip(step);
  EXPECT_EQ(out.step_id(), 7u);
  EXPECT_EQ(out.new_sequences(0).token_ids_size(), 20);
  EXPECT_EQ(out.new_sequences(0).block_table(1), 9);
  EXPECT_EQ(out.running_sequences(0).new_block_ids(0), 11);
  EXPECT_EQ(out.finished_seq_ids(0), 5u);
}

TEST(ProtoTest, ModelInfoInHealth) {
  HealthResponse h;
  h.set_state(SERVING_STATE_READY);
  h.mutable_model()->set_max_model_len(32768);
  h.mutable_model()->add_eos_token_ids(151645);
  h.mutable_model()->add_eos_token_ids(151643);
  h.set_tensor_parallel_size(8);
  HealthResponse out = RoundTrip(h);
  EXPECT_EQ(out.state(), SERVING_STATE_READY);
  EXPECT_EQ(out.model().eos_token_ids_size(), 2);
  EXPECT_EQ(out.tensor_parallel_size(), 8);
}

}  // namespace
}  // namespace tpserve::v1
