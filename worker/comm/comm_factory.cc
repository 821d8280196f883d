#include "worker/comm/comm_factory.h"

#include <cstring>
#include <vector>

#include "common/status_macros.h"

namespace tpserve::worker {

absl::StatusOr<std::string> CpuCommFactory::CreateUniqueId() {
  TP_ASSIGN_OR_RETURN(std::unique_ptr<CpuRendezvous> rv, CpuRendezvous::Create());
  std::lock_guard<std::mutex> lock(mu_);
  rendezvous_ = std::move(rv);
  return rendezvous_->unique_id();
}

absl::StatusOr<std::unique_ptr<Communicator>> CpuCommFactory::Join(
    int rank, int world_size, const std::string& unique_id,
    absl::Duration timeout) {
  std::unique_ptr<CpuRendezvous> rv;
  if (rank == 0) {
    std::lock_guard<std::mutex> lock(mu_);
    // The listener is used once: a retried handshake needs a new id.
    rv = std::move(rendezvous_);
  }
  TP_ASSIGN_OR_RETURN(std::unique_ptr<CpuCommunicator> comm,
                      CpuCommunicator::Create(rank, world_size, unique_id, timeout,
                                              rv.get(), options_));
  return std::unique_ptr<Communicator>(std::move(comm));
}

absl::Status CpuCommFactory::AllGatherHost(Communicator& comm, const void* send,
                                           void* recv, size_t bytes) {
  // Host buffers are what the CPU communicator takes; bytes travel as int32
  // words plus a padded tail.
  const size_t words = (bytes + 3) / 4;
  std::vector<int32_t> in(words, 0), out(words * comm.world_size(), 0);
  std::memcpy(in.data(), send, bytes);
  TP_RETURN_IF_ERROR(comm.AllGather(in.data(), out.data(), words,
                                    CommDType::kInt32, nullptr));
  for (int r = 0; r < comm.world_size(); ++r) {
    std::memcpy(static_cast<char*>(recv) + r * bytes, out.data() + r * words, bytes);
  }
  return absl::OkStatus();
}

}  // namespace tpserve::worker
