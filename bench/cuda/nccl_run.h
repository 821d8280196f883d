// The common start of the multi-GPU bench binaries (one thread per GPU):
// enough visible GPUs, logging, an NCCL unique id (NCCL_NVLS_ENABLE comes from
// the environment; scripts/gpu/ exports 0).
#ifndef TPSERVE_BENCH_CUDA_NCCL_RUN_H_
#define TPSERVE_BENCH_CUDA_NCCL_RUN_H_

#include <cuda_runtime.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "common/logging.h"
#include "worker/comm/nccl_communicator.h"

namespace tpserve::bench {

// Returns the unique id for `tp` ranks, or prints why not and sets *exit_code
// (2: too few GPUs, 1: NCCL failed).
inline std::optional<std::string> StartNcclRun(int tp, std::string_view component, std::string_view log_level,
                                               int* exit_code) {
  int devices = 0;
  cudaGetDeviceCount(&devices);
  if (devices < tp) {
    std::fprintf(stderr, "error: --tp %d needs %d GPUs, %d visible\n", tp, tp, devices);
    *exit_code = 2;
    return std::nullopt;
  }
  (void)InitLogging(component, log_level);
  auto uid = worker::NcclCommunicator::CreateUniqueId();
  if (!uid.ok()) {
    std::fprintf(stderr, "error: %s\n", uid.status().ToString().c_str());
    *exit_code = 1;
    return std::nullopt;
  }
  return *uid;
}

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_CUDA_NCCL_RUN_H_
