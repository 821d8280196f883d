// The seam between the worker service and the compute backends: which
// device kind "auto" means on this machine, and how a backend and its
// communicator factory are made for a kind. The only file of the service
// that names concrete backends.
#ifndef TPSERVE_WORKER_SERVICE_BACKEND_FACTORY_H_
#define TPSERVE_WORKER_SERVICE_BACKEND_FACTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/comm/comm_factory.h"
#include "worker/backend/backend.h"

namespace tpserve::worker {

// "cpu" -> "cpu"; "cuda" -> "cuda" if a device is visible
// (FAILED_PRECONDITION otherwise); "auto" -> "cuda" when a device is
// visible, else "cpu".
absl::StatusOr<std::string> ResolveDeviceKind(const std::string& device);

// A fresh backend of `kind` ("cpu" | "cuda") for the process serving `rank`
// (CUDA: device rank % visible devices).
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& kind,
                                                       int rank);

// The communicator factory matching `kind`; `op_timeout` bounds each
// collective wait.
std::unique_ptr<CommFactory> CreateCommFactory(const std::string& kind,
                                               absl::Duration op_timeout);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_SERVICE_BACKEND_FACTORY_H_
