// Structured output through a real CPU worker: the tiny chat checkpoint has
// random weights, so only the grammar mask can make its output valid.
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/text/tokenizer.h"
#include "gtest/gtest.h"
#include "structured/spec.h"
#include "structured/testing.h"
#include "worker/model/cpu_backend.h"
#include "worker/service/worker_server.h"

namespace tpserve::worker {
namespace {

constexpr char kModel[] = "tests/fixtures/tiny-qwen2-chat";
constexpr int kBlockSize = 16;

class StructuredOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerConfig config;
    config.worker_port = 0;
    auto server = WorkerServer::StartWith(config, "cpu", [](int) { return CreateCpuBackend(); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::Worker::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                    grpc::InsecureChannelCredentials()));
    grpc::ClientContext c1, c2, c3;
    v1::LoadModelRequest load;
    load.set_model_path(kModel);
    load.set_max_model_len(1024);
    load.set_block_size(kBlockSize);
    v1::LoadModelResponse loaded;
    ASSERT_TRUE(stub_->LoadModel(&c1, load, &loaded).ok());
    for (int id : loaded.model().eos_token_ids()) eos_.push_back(id);
    v1::ProfileMemoryRequest profile;
    profile.set_cpu_kv_cache_bytes(64 << 20);
    v1::ProfileMemoryResponse profiled;
    ASSERT_TRUE(stub_->ProfileMemory(&c2, profile, &profiled).ok());
    v1::InitCacheRequest init;
    init.set_num_blocks(64);
    v1::InitCacheResponse inited;
    ASSERT_TRUE(stub_->InitCache(&c3, init, &inited).ok());
  }

  // Generates one sequence step by step until EOS or `max_tokens`; returns
  // the output ids.
  std::vector<int32_t> Generate(const std::string& spec, float temperature, int max_tokens) {
    grpc::ClientContext ctx;
    auto stream = stub_->StepStream(&ctx);
    const std::vector<int32_t> prompt = {9707, 11, 1879, 0};
    v1::StepRequest step;
    step.set_step_id(1);
    v1::NewSequence* ns = step.add_new_sequences();
    const uint64_t seq_id = ++seq_id_;
    ns->set_seq_id(seq_id);
    ns->mutable_token_ids()->Add(prompt.begin(), prompt.end());
    ns->set_num_prompt_tokens(prompt.size());
    ns->set_num_scheduled_tokens(prompt.size());
    ns->add_block_table(0);
    ns->mutable_sampling()->set_temperature(temperature);
    ns->mutable_sampling()->set_seed(5);
    ns->mutable_sampling()->set_structured_output(spec);
    std::vector<int32_t> out;
    int blocks = 1;
    for (int i = 0; i < max_tokens; ++i) {
      EXPECT_TRUE(stream->Write(step));
      v1::StepResponse r;
      EXPECT_TRUE(stream->Read(&r));
      EXPECT_EQ(r.error_code(), 0) << r.error_message();
      if (r.sampled_size() != 1) break;
      out.push_back(r.sampled(0).token_id());
      if (std::find(eos_.begin(), eos_.end(), out.back()) != eos_.end()) break;
      step.Clear();
      step.set_step_id(i + 2);
      v1::RunningSequence* rs = step.add_running_sequences();
      rs->set_seq_id(seq_id);
      rs->set_num_scheduled_tokens(1);
      // The new token's position needs a block.
      if (static_cast<int>(prompt.size() + out.size()) > blocks * kBlockSize) rs->add_new_block_ids(blocks++);
    }
    step.Clear();
    step.set_step_id(max_tokens + 2);
    step.add_finished_seq_ids(seq_id);
    v1::StepResponse done;
    EXPECT_TRUE(stream->Write(step) && stream->Read(&done));
    stream->WritesDone();
    stream->Finish();
    return out;
  }

  std::unique_ptr<WorkerServer> server_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  std::vector<int32_t> eos_;
  uint64_t seq_id_ = 0;
};

TEST_F(StructuredOutputTest, RandomWeightsWriteValidDocumentsThenEos) {
  auto tokenizer = text::Tokenizer::Load(kModel);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<std::string> specs = {
      structured::JsonSchemaSpec(nlohmann::ordered_json::parse(
          R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
              "n": {"type": "integer", "minimum": -50, "maximum": 50},
              "kind": {"enum": ["a", "b"]}, "ok": {"type": "boolean"}},
              "required": ["name", "n", "kind", "ok"]})")),
      structured::RegexSpec("[0-9]{3}-[a-z]{2,4}"),
      structured::ChoiceSpec({"yes", "no"}),
  };
  for (const std::string& spec : specs) {
    for (float temperature : {0.0f, 1.0f}) {
      const std::vector<int32_t> out = Generate(spec, temperature, 200);
      ASSERT_FALSE(out.empty());
      EXPECT_NE(std::find(eos_.begin(), eos_.end(), out.back()), eos_.end())
          << spec << " did not end with EOS within 200 tokens";
      std::string text;
      for (size_t i = 0; i + 1 < out.size(); ++i) text += (*tokenizer)->TokenBytes(out[i]);
      auto grammar = structured::GrammarFromSpec(spec);
      ASSERT_TRUE(grammar.ok());
      EXPECT_TRUE(structured::testing::Matches(*grammar, text)) << spec << " T=" << temperature << ": " << text;
    }
  }
}

}  // namespace
}  // namespace tpserve::worker
