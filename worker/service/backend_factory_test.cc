#include "worker/service/backend_factory.h"

#include "gtest/gtest.h"
#include "worker/comm/nccl_communicator.h"

namespace tpserve::worker {
namespace {

TEST(BackendFactoryTest, ResolvesDeviceKinds) {
  EXPECT_EQ(*ResolveDeviceKind("cpu"), "cpu");
  auto bad = ResolveDeviceKind("tpu");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  auto cuda = ResolveDeviceKind("cuda");
  if (VisibleCudaDevices() == 0) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(cuda.status().message().find("no CUDA device"), std::string::npos);
    EXPECT_EQ(*ResolveDeviceKind("auto"), "cpu");
  }
}

TEST(BackendFactoryTest, CpuBackendAndCommunicatorFactory) {
  auto backend = CreateBackend("cpu", 3);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->device(), "cpu");
  auto factory = CreateCommFactory("cpu", absl::Seconds(5));
  auto id = factory->CreateUniqueId();
  ASSERT_TRUE(id.ok());
  auto comm = factory->Join(0, 1, *id, absl::Seconds(5));
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->world_size(), 1);
}

}  // namespace
}  // namespace tpserve::worker
