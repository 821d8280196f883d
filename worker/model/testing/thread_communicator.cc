#include "worker/model/testing/thread_communicator.h"

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tpserve::worker::testing {

// One rank's view of a ThreadCommGroup. Every collective is: post this rank's
// buffer, barrier, read the peers' buffers, barrier (so nobody overwrites a
// buffer a peer is still reading).
class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(ThreadCommGroup* group, int rank) : group_(group), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return group_->world_size_; }

  absl::Status AllReduceSum(void* data, size_t count, CommDType dtype, void*) override {
    if (dtype != CommDType::kFloat32 && dtype != CommDType::kInt32) {
      return absl::UnimplementedError("thread communicator sums float32 and int32 only");
    }
    if (auto s = Post(data); !s.ok()) return s;
    std::vector<uint8_t> sum(count * 4);
    if (dtype == CommDType::kFloat32) {
      auto* out = reinterpret_cast<float*>(sum.data());
      // Same order on every rank, so all ranks get bit-identical sums.
      for (int r = 0; r < world_size(); ++r) {
        const float* in = static_cast<const float*>(group_->posted_[r]);
        for (size_t i = 0; i < count; ++i) out[i] = r == 0 ? in[i] : out[i] + in[i];
      }
    } else {
      auto* out = reinterpret_cast<int32_t*>(sum.data());
      for (int r = 0; r < world_size(); ++r) {
        const int32_t* in = static_cast<const int32_t*>(group_->posted_[r]);
        for (size_t i = 0; i < count; ++i) out[i] = r == 0 ? in[i] : out[i] + in[i];
      }
    }
    if (auto s = group_->Barrier(); !s.ok()) return s;
    std::memcpy(data, sum.data(), sum.size());
    return absl::OkStatus();
  }

  absl::Status AllGather(const void* send, void* recv, size_t count, CommDType dtype,
                         void*) override {
    if (auto s = Post(send); !s.ok()) return s;
    const size_t bytes = count * CommDTypeSize(dtype);
    for (int r = 0; r < world_size(); ++r) {
      std::memcpy(static_cast<uint8_t*>(recv) + r * bytes, group_->posted_[r], bytes);
    }
    return group_->Barrier();
  }

  absl::Status Broadcast(void* data, size_t count, CommDType dtype, int root, void*) override {
    if (root < 0 || root >= world_size()) {
      return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " out of range"));
    }
    if (auto s = Post(data); !s.ok()) return s;
    if (rank_ != root) std::memcpy(data, group_->posted_[root], count * CommDTypeSize(dtype));
    return group_->Barrier();
  }

  void Abort(const std::string& reason) override { group_->Abort(reason); }

  absl::Status Health() const override {
    std::lock_guard<std::mutex> lock(group_->mu_);
    if (group_->aborted_) return absl::UnavailableError(group_->abort_reason_);
    return absl::OkStatus();
  }

 private:
  absl::Status Post(const void* buffer) {
    {
      std::lock_guard<std::mutex> lock(group_->mu_);
      group_->posted_[rank_] = buffer;
    }
    return group_->Barrier();
  }

  ThreadCommGroup* group_;
  const int rank_;
};

ThreadCommGroup::ThreadCommGroup(int world_size, std::chrono::milliseconds timeout)
    : world_size_(world_size), timeout_(timeout), posted_(world_size, nullptr) {}

std::vector<std::unique_ptr<Communicator>> ThreadCommGroup::MakeCommunicators() {
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < world_size_; ++r) out.push_back(std::make_unique<ThreadCommunicator>(this, r));
  return out;
}

absl::Status ThreadCommGroup::Barrier() {
  std::unique_lock<std::mutex> lock(mu_);
  if (aborted_) return absl::UnavailableError(abort_reason_);
  const uint64_t gen = generation_;
  if (++arrived_ == world_size_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return absl::OkStatus();
  }
  const bool done = cv_.wait_for(lock, timeout_, [&] { return generation_ != gen || aborted_; });
  if (aborted_) return absl::UnavailableError(abort_reason_);
  if (!done) {
    // Leave the group unusable: the missing peer may arrive later and would
    // otherwise pair with the wrong collective.
    aborted_ = true;
    abort_reason_ = "thread communicator: a peer did not arrive in time";
    cv_.notify_all();
    return absl::DeadlineExceededError(abort_reason_);
  }
  return absl::OkStatus();
}

void ThreadCommGroup::Abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = true;
  abort_reason_ = reason.empty() ? "aborted" : reason;
  cv_.notify_all();
}

}  // namespace tpserve::worker::testing
