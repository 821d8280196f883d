#include "worker/comm/custom_allreduce.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/env.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace tpserve::worker {
namespace {

absl::Status Cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();  // not sticky: the caller falls back to NCCL
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

// What each rank tells the others at start-up (fixed size, all-gathered).
struct Exchange {
  int32_t ok = 0;  // this rank can take part
  int32_t pid = 0;
  int32_t blocks = 0;  // blocks per call it can run (its SMs, at most 64); the group takes the least
  char bus_id[32] = {};  // PCI bus id of its GPU, to find it in this process
  cudaIpcMemHandle_t handle = {};
  uint64_t ptr = 0;  // the buffer's address in its process
};


size_t RoundUp(size_t v, size_t to) { return (v + to - 1) / to * to; }

}  // namespace

// The host-mapped word kernels report a missing peer in.
struct CustomAllReduce::ErrorWord {
  volatile int* host = nullptr;
  int rank = 0;
  absl::Duration timeout;
  ~ErrorWord() {
    if (host != nullptr) cudaFreeHost(const_cast<int*>(host));
  }
  absl::Status Status() const {
    const int v = *host;
    if (v == 0) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(
        "custom all-reduce on rank ", rank, ": rank ", v - 1, " did not arrive within ",
        absl::FormatDuration(timeout), " (gone or stuck); the group must be re-initialised"));
  }
};

bool CustomAllReduceEnabled() {
  return EnvSwitch("TPSERVE_CUSTOM_ALLREDUCE", true);
}

absl::StatusOr<std::unique_ptr<CustomAllReduce>> CustomAllReduce::Create(NcclCommunicator& comm,
                                                                         const Options& options) {
  const int world = comm.world_size(), rank = comm.rank();
  if (world < 2) return nullptr;  // every rank sees the same world size: no exchange
  TP_RETURN_IF_ERROR(Cuda(cudaSetDevice(comm.device()), "cudaSetDevice"));
  std::unique_ptr<CustomAllReduce> ar(new CustomAllReduce());
  cuda::AllReduceGroup& g = ar->group_;
  g.rank = rank;
  g.world = world;
  g.max_bytes = RoundUp(std::max<size_t>(options.max_bytes, 16 * world), 16 * world);
  ar->one_shot_max_bytes_ = std::min(
      g.max_bytes, options.one_shot_max_bytes > 0 ? options.one_shot_max_bytes : DefaultOneShotMaxBytes(world));
  g.one_shot_stride = RoundUp(ar->one_shot_max_bytes_, 256);
  g.src_stride = RoundUp(g.max_bytes / world, 256);
  g.timeout_ns = absl::ToInt64Nanoseconds(options.timeout);
  ar->timeout_ = options.timeout;
  int sms = 0;
  TP_RETURN_IF_ERROR(Cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, comm.device()),
                          "cudaDeviceGetAttribute"));
  g.blocks = std::max(1, std::min(sms, cuda::kMaxAllReduceBlocks));
  ar->error_ = std::make_shared<ErrorWord>();
  ar->error_->rank = rank;
  ar->error_->timeout = options.timeout;

  Exchange mine;
  mine.pid = static_cast<int32_t>(getpid());
  mine.blocks = g.blocks;
  absl::Status local = CustomAllReduceEnabled()
                           ? absl::OkStatus()
                           : absl::FailedPreconditionError("TPSERVE_CUSTOM_ALLREDUCE=0");
  if (local.ok() && world > cuda::kMaxAllReduceRanks) {
    local = absl::FailedPreconditionError(absl::StrCat("world size ", world, " is over ", cuda::kMaxAllReduceRanks));
  }
  const size_t shared = RoundUp(cuda::AllReduceLayout::TotalBytes(g), 256);
  if (local.ok()) local = Cuda(cudaMalloc(&ar->own_buffer_, shared + cuda::AllReduceState::kBytes), "cudaMalloc");
  if (local.ok()) local = Cuda(cudaMemset(ar->own_buffer_, 0, shared + cuda::AllReduceState::kBytes), "cudaMemset");
  if (local.ok()) {  // one-shot slots start as "nothing arrived" (allreduce.h)
    const size_t begin = cuda::AllReduceLayout::OneShotOffset(g, 0, 0);
    local = Cuda(cudaMemset(static_cast<char*>(ar->own_buffer_) + begin, 0xFF,
                            cuda::AllReduceLayout::OneShotOffset(g, 3, 0) - begin),
                 "cudaMemset");
  }
  if (local.ok()) local = Cuda(cudaIpcGetMemHandle(&mine.handle, ar->own_buffer_), "cudaIpcGetMemHandle");
  if (local.ok()) {
    local = Cuda(cudaDeviceGetPCIBusId(mine.bus_id, sizeof(mine.bus_id), comm.device()), "cudaDeviceGetPCIBusId");
  }
  int* host_error = nullptr;
  if (local.ok()) local = Cuda(cudaHostAlloc(&host_error, sizeof(int), cudaHostAllocMapped), "cudaHostAlloc");
  if (host_error != nullptr) {
    *host_error = 0;
    ar->error_->host = host_error;
  }
  void* device_error = nullptr;
  if (local.ok()) local = Cuda(cudaHostGetDevicePointer(&device_error, host_error, 0), "cudaHostGetDevicePointer");
  // Zeroed flags must be in place before any peer can write them.
  if (local.ok()) local = Cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  mine.ok = local.ok() ? 1 : 0;
  mine.ptr = reinterpret_cast<uint64_t>(ar->own_buffer_);

  std::vector<Exchange> all(world);
  TP_RETURN_IF_ERROR(NcclAllGatherHost(comm, &mine, all.data(), sizeof(Exchange), absl::Minutes(2)));
  for (int p = 0; p < world; ++p) {
    if (all[p].ok == 0) {
      spdlog::info("custom all-reduce off (rank {} cannot take part{}); NCCL carries every all-reduce", p,
                   p == rank ? absl::StrCat(": ", local.message()) : "");
      return nullptr;
    }
  }
  for (const Exchange& e : all) g.blocks = std::min<int>(g.blocks, e.blocks);  // two-shot's flags pair blocks
  g.buffers[rank] = static_cast<char*>(ar->own_buffer_);
  g.state = reinterpret_cast<uint32_t*>(static_cast<char*>(ar->own_buffer_) + shared);
  g.host_error = static_cast<volatile int*>(device_error);
  for (int p = 0; p < world && local.ok(); ++p) {
    if (p == rank) continue;
    int dev = -1, can = 0;
    local = Cuda(cudaDeviceGetByPCIBusId(&dev, all[p].bus_id), "cudaDeviceGetByPCIBusId (peer GPU not visible)");
    if (local.ok()) local = Cuda(cudaDeviceCanAccessPeer(&can, comm.device(), dev), "cudaDeviceCanAccessPeer");
    if (local.ok() && !can) {
      local = absl::FailedPreconditionError(absl::StrCat("GPU ", comm.device(), " cannot access GPU ", dev));
    }
    if (!local.ok()) break;
    if (all[p].pid == mine.pid) {
      // The same process (threads per GPU): IPC cannot open its own handles,
      // and the address is valid here once peer access is on.
      const cudaError_t err = cudaDeviceEnablePeerAccess(dev, 0);
      if (err == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();
      } else {
        local = Cuda(err, "cudaDeviceEnablePeerAccess");
      }
      g.buffers[p] = reinterpret_cast<char*>(all[p].ptr);
    } else {
      void* mapped = nullptr;
      local = Cuda(cudaIpcOpenMemHandle(&mapped, all[p].handle, cudaIpcMemLazyEnablePeerAccess),
                   "cudaIpcOpenMemHandle");
      if (local.ok()) ar->opened_.push_back(mapped);
      g.buffers[p] = static_cast<char*>(mapped);
    }
  }
  // Every rank must agree before any of them launches a kernel.
  const int32_t ok = local.ok() ? 1 : 0;
  std::vector<int32_t> oks(world);
  TP_RETURN_IF_ERROR(NcclAllGatherHost(comm, &ok, oks.data(), sizeof(ok), absl::Minutes(2)));
  for (int p = 0; p < world; ++p) {
    if (oks[p] == 0) {
      spdlog::info("custom all-reduce off (rank {} cannot map its peers' buffers{}); NCCL carries every all-reduce",
                   p, p == rank ? absl::StrCat(": ", local.message()) : "");
      return nullptr;
    }
  }
  comm.AddHealthCheck([error = ar->error_] { return error->Status(); });
  spdlog::info("custom all-reduce on: rank {} of {}, up to {} KiB ({} KiB one-shot), {:.1f} MiB of shared buffer",
               rank, world, g.max_bytes >> 10, ar->one_shot_max_bytes_ >> 10, shared / 1048576.0);
  return ar;
}

CustomAllReduce::~CustomAllReduce() {
  for (void* p : opened_) cudaIpcCloseMemHandle(p);
  if (own_buffer_ != nullptr) cudaFree(own_buffer_);
}

absl::StatusOr<cuda::AllReduceAlgo> CustomAllReduce::Choose(size_t count) const {
  const size_t bytes = count * sizeof(float);
  if (count % 4 == 0) {
    if (bytes <= one_shot_max_bytes_) return cuda::AllReduceAlgo::kOneShot;
    if (bytes <= group_.max_bytes && count % (4 * group_.world) == 0) return cuda::AllReduceAlgo::kTwoShot;
  }
  return absl::OutOfRangeError(absl::StrCat("custom all-reduce does not carry ", count, " values (up to ",
                                            group_.max_bytes / 4, ", a multiple of ", 4 * group_.world,
                                            " above ", one_shot_max_bytes_ / 4, ")"));
}

absl::Status CustomAllReduce::AllReduce(const float* in, float* out, size_t count, cudaStream_t stream) {
  TP_ASSIGN_OR_RETURN(const cuda::AllReduceAlgo algo, Choose(count));
  return AllReduce(in, out, count, algo, stream);
}

absl::Status CustomAllReduce::AllReduce(const float* in, float* out, size_t count, cuda::AllReduceAlgo algo,
                                        cudaStream_t stream) {
  TP_RETURN_IF_ERROR(Health());
  return cuda::LaunchAllReduce(group_, algo, in, out, count, stream);
}

absl::Status CustomAllReduce::AllReduceAddRmsNorm(const float* in, __nv_bfloat16* residual,
                                                  const __nv_bfloat16* weight, __nv_bfloat16* out, int rows,
                                                  int hidden, float eps, cudaStream_t stream) {
  TP_ASSIGN_OR_RETURN(const cuda::AllReduceAlgo algo, Choose(static_cast<size_t>(rows) * hidden));
  return AllReduceAddRmsNorm(in, residual, weight, out, rows, hidden, eps, algo, stream);
}

absl::Status CustomAllReduce::AllReduceAddRmsNorm(const float* in, __nv_bfloat16* residual,
                                                  const __nv_bfloat16* weight, __nv_bfloat16* out, int rows,
                                                  int hidden, float eps, cuda::AllReduceAlgo algo,
                                                  cudaStream_t stream) {
  TP_RETURN_IF_ERROR(Health());
  return cuda::LaunchAllReduceAddRmsNorm(group_, algo, in, residual, weight, out, rows, hidden, eps, stream);
}

absl::Status CustomAllReduce::Health() const { return error_->Status(); }

}  // namespace tpserve::worker
