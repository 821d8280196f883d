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
#ifndef TPSERVE_WORKER_CUDA_PDL_CUH_
#define TPSERVE_WORKER_CUDA_PDL_CUH_

#include <cuda_runtime.h>

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

// Launches `kernel` like <<<grid, block, smem, stream>>>, allowing it to
// overlap the previous kernel when PdlActive() (a decode step). The kernel must follow the
// PdlWait() rule above.
template <typename... KernelArgs, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = PdlActive() ? 1 : 0;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_PDL_CUH_
