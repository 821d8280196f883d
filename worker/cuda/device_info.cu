#include "worker/cuda/device_info.h"

#include "absl/strings/str_cat.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/gemv.h"
#include "worker/cuda/gemv_int.h"
#include "worker/cuda/pdl.cuh"

namespace tpserve::worker::cuda {
namespace {

// "139.8" for bytes in GiB, one decimal.
std::string GiB(int64_t bytes) {
  const int64_t tenths = (bytes * 10 + (int64_t{1} << 29)) >> 30;
  return absl::StrCat(tenths / 10, ".", tenths % 10);
}

std::string PdlLine(const DeviceInfo& d) {
  if (d.pdl) return "on for decode steps";
  if (d.kernel_ptx_version >= 90) return "off (TPSERVE_PDL=0)";
  return absl::StrCat("off (needs sm_90+ code; this device runs code from compute_", d.kernel_ptx_version, ")");
}

}  // namespace

absl::StatusOr<DeviceInfo> GetDeviceInfo(int device) {
  DeviceInfo d;
  d.device = device;
  cudaDeviceProp prop;
  TP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  d.name = prop.name;
  d.major = prop.major;
  d.minor = prop.minor;
  d.num_sms = prop.multiProcessorCount;
  d.smem_per_block_optin = static_cast<int>(prop.sharedMemPerBlockOptin);
  d.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
  const KernelCode code = LoadedKernelCode(device);
  if (code.ptx_version == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no tpserve kernel code loads on CUDA device ", device, " (", d.name, ", compute capability ", d.major, ".",
        d.minor, "): this binary was built for other GPUs; see docs/gpus.md for the supported ones and "
        "--define=cuda_archs in docs/developing.md"));
  }
  d.kernel_ptx_version = code.ptx_version;
  d.kernel_binary_version = code.binary_version;
  d.pdl = code.ptx_version >= 90 && PdlEnabled();
  return d;
}

absl::StatusOr<DeviceInfo> GetCurrentDeviceInfo() {
  int device = 0;
  TP_CUDA_CHECK(cudaGetDevice(&device));
  return GetDeviceInfo(device);
}

std::string DescribeDevice(const DeviceInfo& d) {
  return absl::StrCat(
      d.name, ": sm_", d.major, d.minor, ", ", d.num_sms, " SMs, ", GiB(d.total_memory), " GiB, ",
      d.smem_per_block_optin / 1024, " KiB shared memory per block; kernels: sm_", d.kernel_binary_version,
      " code from compute_", d.kernel_ptx_version, " PTX; programmatic dependent launch ", PdlLine(d),
      "; decode attention: split-KV for ", DecodeBlocksPerSm() * d.num_sms, " blocks (", DecodeBlocksPerSm(),
      " per SM); decode GEMV up to ", kGemvFastRows, " rows (on tensor cores int4 up to ",
      kGemvInt4MmaMaxRows, " in passes of ", kGemvIntMmaMaxRows, ", int8 up to ", kGemvIntMmaMaxRows,
      "), cuBLASLt above");
}

}  // namespace tpserve::worker::cuda
