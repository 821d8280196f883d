// `tpserve workers`: every tensor-parallel rank of one replica in one
// container. Starts one `tpserve worker` process per rank, all seeing the
// same GPUs (rank r uses device r), so that NCCL can use NVLink/P2P between
// them and ranks can share CUDA IPC buffers; the Kubernetes manifests run it
// in place of one container per rank (docs/deploy.md).
#ifndef TPSERVE_CLI_WORKER_GROUP_H_
#define TPSERVE_CLI_WORKER_GROUP_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace tpserve::cli {

struct WorkerGroupPlan {
  int world_size = 1;
  std::vector<int> worker_ports;                     // per rank
  std::vector<int> metrics_ports;                    // per rank; empty when off
  std::vector<std::vector<std::string>> worker_argv;  // per rank
};

// Rank r listens on --worker-port + r (and --metrics-port + r when metrics
// are on); every other worker setting is handed to each rank unchanged.
// Refuses --rank (the group has them all), port ranges that overflow or
// overlap, and fewer CUDA_VISIBLE_DEVICES entries than ranks.
absl::StatusOr<WorkerGroupPlan> PlanWorkerGroup(const ServerConfig& config,
                                                const std::string& self_path);

}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_WORKER_GROUP_H_
