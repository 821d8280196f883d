#include "worker/service/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/comm/cpu_communicator.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/model/cpu_backend.h"

namespace tpserve::worker {
namespace {

// Set when the CUDA backend's factory is linked in (see CreateBackend).
constexpr bool kCudaBackendBuilt = false;

}  // namespace

absl::StatusOr<std::string> ResolveDeviceKind(const std::string& device) {
  if (device == "cpu") return std::string("cpu");
  if (device != "cuda" && device != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device must be auto, cpu or cuda, got '", device, "'"));
  }
  const int gpus = VisibleCudaDevices();
  if (gpus > 0 && kCudaBackendBuilt) return std::string("cuda");
  if (device == "auto") return std::string("cpu");
  if (gpus == 0) {
    return absl::FailedPreconditionError(
        "--device cuda: this process sees no CUDA device (check the driver and "
        "CUDA_VISIBLE_DEVICES, or use --device cpu)");
  }
  return absl::UnimplementedError(
      "--device cuda: this build has no CUDA backend yet; use --device cpu");
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& kind,
                                                       int rank) {
  (void)rank;
  // Every CPU rank is alike: the rank only matters for picking a GPU.
  if (kind == "cpu") return CreateCpuBackend();
  return absl::UnimplementedError(absl::StrCat("no backend for device '", kind, "'"));
}

std::unique_ptr<CommFactory> CreateCommFactory(const std::string& kind,
                                               absl::Duration op_timeout) {
  if (kind == "cuda") return std::make_unique<NcclCommFactory>(op_timeout);
  CpuCommOptions options;
  options.op_timeout = op_timeout;
  return std::make_unique<CpuCommFactory>(options);
}

}  // namespace tpserve::worker
