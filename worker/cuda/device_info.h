// What the launch code and the start-up log need to know about a GPU, read
// from the device instead of assuming an H100/H200 (132 SMs, sm_90).
#ifndef TPSERVE_WORKER_CUDA_DEVICE_INFO_H_
#define TPSERVE_WORKER_CUDA_DEVICE_INFO_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve::worker::cuda {

struct DeviceInfo {
  int device = 0;
  std::string name;
  int major = 0, minor = 0;           // compute capability
  int num_sms = 0;
  int smem_per_block_optin = 0;       // bytes a block may use after opting in
  int64_t total_memory = 0;           // bytes
  // The code the driver loaded for tpserve's kernels (every .cu is built with
  // the same tools/cuda.bzl list): from compute_<ptx_version> PTX, as
  // sm_<binary_version> machine code. A compute_80 PTX build on an H200
  // reads 80 and 90.
  int kernel_ptx_version = 0;
  int kernel_binary_version = 0;
  // Decode steps launch with programmatic dependent launch (pdl.cuh): the
  // kernels are sm_90+ code and TPSERVE_PDL is not 0.
  bool pdl = false;
};

// Reads `device`'s properties (no allocation; the kernel probe loads one
// module).
absl::StatusOr<DeviceInfo> GetDeviceInfo(int device);

// The current device's (cudaGetDevice).
absl::StatusOr<DeviceInfo> GetCurrentDeviceInfo();

// One line for the start-up log: arch, SMs, memory and the kernel variants
// chosen for this device.
std::string DescribeDevice(const DeviceInfo& info);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_DEVICE_INFO_H_
