#include "worker/service/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/comm/cpu_communicator.h"
#include "worker/comm/nccl_communicator.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/model/cpu_backend.h"

namespace tpserve::worker {
absl::StatusOr<std::string> ResolveDeviceKind(const std::string& device) {
  if (device == "cpu") return std::string("cpu");
  if (device != "cuda" && device != "auto") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device must be auto, cpu or cuda, got '", device, "'"));
  }
  const int gpus = VisibleCudaDevices();
  if (gpus > 0) return std::string("cuda");
  if (device == "auto") return std::string("cpu");
  return absl::FailedPreconditionError(
      "--device cuda: this process sees no CUDA device (check the driver and "
      "CUDA_VISIBLE_DEVICES, or use --device cpu)");
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& kind,
                                                       int rank) {
  // Every CPU rank is alike: the rank only matters for picking a GPU.
  if (kind == "cpu") return CreateCpuBackend();
  if (kind == "cuda") {
    const int gpus = VisibleCudaDevices();
    if (gpus == 0) {
      return absl::FailedPreconditionError("the CUDA backend needs a CUDA device; none is visible");
    }
    // Same device choice as NcclCommFactory::Join, so the backend and the
    // communicator of a rank share a GPU.
    return CreateCudaBackend(rank % gpus);
  }
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
