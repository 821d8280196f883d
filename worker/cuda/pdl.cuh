// Programmatic dependent launch (Hopper): a kernel launched with
// LaunchPdl may start while the kernel before it on the stream is still
// finishing. It must call PdlWait() before it reads anything an earlier
// kernel wrote or writes anything an earlier kernel reads; work that only
// touches weights (constant during a step) may come before it. PdlTrigger()
// lets the next kernel launch early (once every block of this one has
// called it or exited). In a decode step of ~250 small kernels this hides
// each kernel's launch and ramp behind the previous one's tail, and lets
// the GEMVs start streaming weights before their input is ready. Both
// instructions are no-ops for a kernel launched the ordinary way, so every
// kernel that calls them can also be launched with <<<>>>.
//
// Only code compiled for sm_90 or newer has the two instructions: the same
// binary also carries sm_80/86/89 machine code (tools/cuda.bzl), and a
// compute_80 PTX build JIT-compiled on a Hopper runs without them. A kernel
// without PdlWait() must not be launched early (it could read its input
// before the kernel before it, perhaps a cuBLAS kernel that triggers
// early, has flushed it), so LaunchPdl asks, per device, which code the
// driver loaded for this file's kernels.
#ifndef TPSERVE_WORKER_CUDA_PDL_CUH_
#define TPSERVE_WORKER_CUDA_PDL_CUH_

#include <cuda_runtime.h>

#include <atomic>
#include <utility>

#include "worker/cuda/cuda_check.h"

namespace tpserve::worker::cuda {

__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Deliberately internal to each .cu that includes this header: every file is
// its own CUDA module, so the probe reports the code loaded for that file.
namespace {

__global__ void PdlProbeKernel() {}

// The code the driver runs for this file's kernels on `device`:
// ptx_version 90 means compiled from compute_90 (or 90a) PTX, and
// binary_version the machine code's arch (90 on an H200, also when the
// driver JIT-compiled compute_80 PTX for it). Zeros when the binary has no
// code this GPU can run.
struct KernelCode {
  int ptx_version = 0, binary_version = 0;
};

inline KernelCode LoadedKernelCode(int device) {
  int previous = 0;
  KernelCode code;
  cudaFuncAttributes attr;
  if (cudaGetDevice(&previous) != cudaSuccess) return code;
  if (previous != device && cudaSetDevice(device) != cudaSuccess) return code;
  if (cudaFuncGetAttributes(&attr, PdlProbeKernel) == cudaSuccess) {
    code.ptx_version = attr.ptxVersion;
    code.binary_version = attr.binaryVersion;
  } else {
    cudaGetLastError();  // no code for this GPU: reported by the caller, not by the next launch check
  }
  if (previous != device) cudaSetDevice(previous);
  return code;
}

// Whether this file's kernels carry griddepcontrol on the current device;
// asked once per device (cudaFuncGetAttributes loads the module).
inline bool KernelsHavePdl() {
  constexpr int kMaxDevices = 64;
  static std::atomic<signed char> known[kMaxDevices] = {};  // 0 unknown, 1 yes, -1 no
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  if (device >= kMaxDevices) return LoadedKernelCode(device).ptx_version >= 90;
  signed char k = known[device].load(std::memory_order_relaxed);
  if (k == 0) {
    k = LoadedKernelCode(device).ptx_version >= 90 ? 1 : -1;
    known[device].store(k, std::memory_order_relaxed);
  }
  return k > 0;
}

}  // namespace

// Launches `kernel` like <<<grid, block, smem, stream>>>, allowing it to
// overlap the previous kernel when PdlActive() (a decode step) and the
// device runs this file's kernels with the PDL instructions (sm_90+ code);
// otherwise it is an ordinary launch, with no launch attribute at all. The
// kernel must follow the PdlWait() rule above.
template <typename... KernelArgs, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = PdlActive() && KernelsHavePdl() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_PDL_CUH_
