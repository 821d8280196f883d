#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace tpserve::worker {
namespace {

ncclDataType_t ToNccl(CommDType dtype) {
  switch (dtype) {
    case CommDType::kFloat32: return ncclFloat32;
    case CommDType::kBFloat16: return ncclBfloat16;
    case CommDType::kFloat16: return ncclFloat16;
    case CommDType::kInt32: return ncclInt32;
  }
  return ncclFloat32;
}

absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

// How often a pending NCCL operation is polled. The first kSpinFor of a
// wait spins instead: enqueueing a collective on a non-blocking
// communicator usually finishes within microseconds, and sleeping the poll
// interval after each one cost ~290 us per collective (47 ms per eager
// 72B step at TP=4, measured by tpserve_collective_bench on 4xH200).
constexpr absl::Duration kPollInterval = absl::Microseconds(200);
constexpr absl::Duration kSpinFor = absl::Microseconds(500);

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
};

int VisibleCudaDevices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

absl::StatusOr<std::string> NcclCommunicator::CreateUniqueId() {
  ncclUniqueId id;
  const ncclResult_t rc = ncclGetUniqueId(&id);
  if (rc != ncclSuccess) {
    return absl::UnavailableError(
        absl::StrCat("ncclGetUniqueId: ", ncclGetErrorString(rc)));
  }
  return std::string(id.internal, sizeof(id.internal));
}

NcclCommunicator::NcclCommunicator(int rank, int world_size, int device)
    : rank_(rank), world_size_(world_size), device_(device),
      impl_(std::make_unique<Impl>()) {}

NcclCommunicator::~NcclCommunicator() {
  // Abort never blocks on peers (Destroy can, when one is gone).
  if (impl_->comm != nullptr) ncclCommAbort(impl_->comm);
}

absl::Status NcclCommunicator::Check(int result, const char* what) {
  const auto rc = static_cast<ncclResult_t>(result);
  if (rc == ncclSuccess || rc == ncclInProgress) return absl::OkStatus();
  absl::Status s = absl::UnavailableError(absl::StrCat(
      what, " failed on rank ", rank_, ": ", ncclGetErrorString(rc),
      impl_->comm ? absl::StrCat(" (", ncclGetLastError(impl_->comm), ")") : ""));
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) failure_ = s;
  return s;
}

absl::Status NcclCommunicator::WaitIdle(absl::Time deadline, const char* what) {
  const absl::Time spin_until = absl::Now() + kSpinFor;
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(impl_->comm, &state);
    if (rc != ncclSuccess) return Check(rc, "ncclCommGetAsyncError");
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return Check(state, what);
    if (aborted_.load()) return absl::UnavailableError("communicator aborted");
    if (absl::Now() >= deadline) {
      absl::Status s = absl::DeadlineExceededError(absl::StrCat(
          what, " on rank ", rank_, " did not complete in time (a peer did not join "
          "or is stuck); communicator aborted"));
      Abort(std::string(s.message()));
      return s;
    }
    if (absl::Now() >= spin_until) absl::SleepFor(kPollInterval);
  }
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    int rank, int world_size, const std::string& unique_id, int device,
    absl::Duration timeout) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", rank, " is outside [0, ", world_size, ")"));
  }
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NCCL unique id must be ", sizeof(id.internal), " bytes, got ",
        unique_id.size(), " (was it made by a CPU worker?)"));
  }
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  TP_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  auto comm = std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(rank, world_size, device));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  const absl::Time deadline = absl::Now() + timeout;
  TP_RETURN_IF_ERROR(comm->Check(
      ncclCommInitRankConfig(&comm->impl_->comm, world_size, id, rank, &config),
      "ncclCommInitRankConfig"));
  TP_RETURN_IF_ERROR(comm->WaitIdle(deadline, "ncclCommInitRankConfig"));
  spdlog::info("NCCL communicator up: rank {} of {} on device {}", rank, world_size,
               device);
  return comm;
}

absl::Status NcclCommunicator::AllReduceSum(void* data, size_t count,
                                            CommDType dtype, void* stream) {
  TP_RETURN_IF_ERROR(Health());
  TP_RETURN_IF_ERROR(Check(ncclAllReduce(data, data, count, ToNccl(dtype), ncclSum,
                                         impl_->comm, static_cast<cudaStream_t>(stream)),
                           "ncclAllReduce"));
  return WaitIdle(absl::Now() + absl::Seconds(60), "ncclAllReduce enqueue");
}

absl::Status NcclCommunicator::AllGather(const void* send, void* recv, size_t count,
                                         CommDType dtype, void* stream) {
  TP_RETURN_IF_ERROR(Health());
  TP_RETURN_IF_ERROR(Check(ncclAllGather(send, recv, count, ToNccl(dtype), impl_->comm,
                                         static_cast<cudaStream_t>(stream)),
                           "ncclAllGather"));
  return WaitIdle(absl::Now() + absl::Seconds(60), "ncclAllGather enqueue");
}

absl::Status NcclCommunicator::Broadcast(void* data, size_t count, CommDType dtype,
                                         int root, void* stream) {
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Broadcast root ", root, " is outside [0, ", world_size_, ")"));
  }
  TP_RETURN_IF_ERROR(Health());
  TP_RETURN_IF_ERROR(Check(ncclBroadcast(data, data, count, ToNccl(dtype), root,
                                         impl_->comm, static_cast<cudaStream_t>(stream)),
                           "ncclBroadcast"));
  return WaitIdle(absl::Now() + absl::Seconds(60), "ncclBroadcast enqueue");
}

absl::Status NcclCommunicator::Synchronize(void* stream, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const auto s = static_cast<cudaStream_t>(stream);
  while (true) {
    const cudaError_t err = cudaStreamQuery(s);
    if (err == cudaSuccess) return absl::OkStatus();
    if (err != cudaErrorNotReady) return CudaStatus(err, "cudaStreamQuery");
    TP_RETURN_IF_ERROR(Health());
    if (absl::Now() >= deadline) {
      absl::Status st = absl::DeadlineExceededError(absl::StrCat(
          "rank ", rank_, ": collectives did not finish within ",
          absl::ToInt64Milliseconds(timeout), " ms (a peer is gone or stuck)"));
      Abort(std::string(st.message()));
      return st;
    }
    absl::SleepFor(kPollInterval);
  }
}

void NcclCommunicator::Abort(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.ok()) {
      failure_ = absl::UnavailableError(absl::StrCat("communicator aborted: ", reason));
    }
  }
  if (!aborted_.exchange(true) && impl_->comm != nullptr) {
    ncclCommAbort(impl_->comm);
    impl_->comm = nullptr;
  }
}

void NcclCommunicator::AddHealthCheck(std::function<absl::Status()> check) {
  std::lock_guard<std::mutex> lock(mu_);
  health_checks_.push_back(std::move(check));
}

absl::Status NcclCommunicator::Health() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) return failure_;
    for (const auto& check : health_checks_) {
      absl::Status s = check();
      if (!s.ok()) return s;
    }
  }
  if (impl_->comm == nullptr) return absl::UnavailableError("communicator aborted");
  ncclResult_t state = ncclSuccess;
  if (ncclCommGetAsyncError(impl_->comm, &state) != ncclSuccess ||
      (state != ncclSuccess && state != ncclInProgress)) {
    return absl::UnavailableError(absl::StrCat(
        "NCCL reports an asynchronous error on rank ", rank_, ": ",
        ncclGetErrorString(state), " (", ncclGetLastError(impl_->comm),
        "); a peer is probably gone"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NcclCommFactory::CreateUniqueId() {
  return NcclCommunicator::CreateUniqueId();
}

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommFactory::Join(
    int rank, int world_size, const std::string& unique_id, absl::Duration timeout) {
  const int devices = VisibleCudaDevices();
  if (devices == 0) {
    return absl::FailedPreconditionError("NCCL needs a CUDA device and this process sees none");
  }
  device_ = rank % devices;
  TP_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                      NcclCommunicator::Create(rank, world_size, unique_id, device_,
                                               timeout));
  return std::unique_ptr<Communicator>(std::move(comm));
}

absl::Status NcclCommFactory::AllGatherHost(Communicator& comm, const void* send,
                                            void* recv, size_t bytes) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&comm);
  if (nccl == nullptr) {
    return absl::InternalError("NcclCommFactory::AllGatherHost needs an NCCL communicator");
  }
  return NcclAllGatherHost(*nccl, send, recv, bytes, op_timeout_);
}

absl::Status NcclAllGatherHost(NcclCommunicator& comm, const void* send, void* recv,
                               size_t bytes, absl::Duration timeout) {
  // NCCL moves device memory only: stage through a device buffer, in int32
  // words (CommDType has no byte type) with a zero-padded tail.
  const size_t words = (bytes + 3) / 4;
  const int world = comm.world_size();
  std::vector<int32_t> host_in(words, 0), host_out(words * world, 0);
  std::memcpy(host_in.data(), send, bytes);
  TP_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(comm.device()), "cudaSetDevice"));
  int32_t* dev = nullptr;
  TP_RETURN_IF_ERROR(CudaStatus(
      cudaMalloc(reinterpret_cast<void**>(&dev), words * (world + 1) * 4), "cudaMalloc"));
  int32_t* dev_in = dev + words * world;
  absl::Status s = CudaStatus(
      cudaMemcpy(dev_in, host_in.data(), words * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  if (s.ok()) s = comm.AllGather(dev_in, dev, words, CommDType::kInt32, nullptr);
  if (s.ok()) s = comm.Synchronize(nullptr, timeout);
  if (s.ok()) {
    s = CudaStatus(cudaMemcpy(host_out.data(), dev, words * world * 4,
                              cudaMemcpyDeviceToHost),
                   "cudaMemcpy");
  }
  cudaFree(dev);
  TP_RETURN_IF_ERROR(s);
  for (int r = 0; r < world; ++r) {
    std::memcpy(static_cast<char*>(recv) + r * bytes, host_out.data() + r * words, bytes);
  }
  return absl::OkStatus();
}

}  // namespace tpserve::worker
