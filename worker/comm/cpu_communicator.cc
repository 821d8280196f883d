// CpuCommunicator's collectives: frame exchange over the mesh, reductions in
// rank order, failure and abort handling.
#include "worker/comm/cpu_communicator.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace tpserve::worker {
namespace {

constexpr uint32_t kFrameMagic = 0x54504631;  // "TPF1"

enum class Op : uint32_t { kAllReduce = 1, kAllGather = 2, kBroadcast = 3 };

// Precedes every payload, so a peer that makes a different call (or is out of
// step) is reported instead of silently corrupting data.
struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint32_t op = 0;
  uint64_t seq = 0;
  uint64_t bytes = 0;
};

float Bf16ToFloat(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;  // NaN
  bits += 0x7fff + ((bits >> 16) & 1);                  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

// out = sum over ranks (in rank order) of parts[r], element type T with the
// accumulation done in Acc.
template <typename T, typename Acc, typename Load, typename Store>
void SumInRankOrder(const std::vector<const char*>& parts, size_t count,
                    void* out, Load load, Store store) {
  T* dst = static_cast<T*>(out);
  for (size_t i = 0; i < count; ++i) {
    Acc acc = load(reinterpret_cast<const T*>(parts[0])[i]);
    for (size_t r = 1; r < parts.size(); ++r) {
      acc += load(reinterpret_cast<const T*>(parts[r])[i]);
    }
    dst[i] = store(acc);
  }
}

}  // namespace

struct CpuCommunicator::PeerIo {
  int peer = -1;
  // Outgoing frame (header then payload); absent when send == nullptr.
  FrameHeader out_header;
  const char* send = nullptr;
  size_t sent = 0;  // bytes of header + payload written
  // Incoming frame; absent when recv == nullptr.
  FrameHeader in_header;
  char* recv = nullptr;
  size_t recv_len = 0;
  size_t received = 0;  // bytes of header + payload read

  bool send_done() const {
    return send == nullptr || sent == sizeof(FrameHeader) + out_header.bytes;
  }
  bool recv_done() const {
    return recv == nullptr || received == sizeof(FrameHeader) + recv_len;
  }
};

namespace {

// The transfers of an all-to-all: this rank sends `send` to every peer, and
// peer p's `bytes` land at gathered + p * bytes (AllReduceSum, AllGather).
std::vector<CpuCommunicator::PeerIo> AllToAllIos(int rank, int world_size, Op op, uint64_t seq,
                                                 const char* send, char* gathered,
                                                 size_t bytes) {
  std::vector<CpuCommunicator::PeerIo> ios;
  for (int p = 0; p < world_size; ++p) {
    if (p == rank) continue;
    CpuCommunicator::PeerIo io;
    io.peer = p;
    io.out_header = {kFrameMagic, static_cast<uint32_t>(op), seq, bytes};
    io.send = send;
    io.recv = gathered + p * bytes;
    io.recv_len = bytes;
    ios.push_back(io);
  }
  return ios;
}

}  // namespace

CpuCommunicator::CpuCommunicator(int rank, int world_size, CpuCommOptions options)
    : rank_(rank), world_size_(world_size), options_(options),
      peers_(world_size), abort_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

CpuCommunicator::~CpuCommunicator() = default;

absl::Status CpuCommunicator::Fail(absl::Status status) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_.ok()) failure_ = status;
  return status;
}

absl::Status CpuCommunicator::BeginOp(uint64_t* seq) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) return failure_;
  }
  if (aborted_.load()) return absl::UnavailableError("communicator aborted");
  *seq = next_seq_++;
  return absl::OkStatus();
}

absl::Status CpuCommunicator::Exchange(std::vector<PeerIo>& ios,
                                       const char* op_name, uint64_t seq) {
  const absl::Time deadline = absl::Now() + options_.op_timeout;
  const std::string what = absl::StrCat(op_name, " #", seq);
  while (true) {
    // Progress every transfer as far as the sockets allow.
    for (PeerIo& io : ios) {
      const int fd = peers_[io.peer].get();
      while (!io.send_done()) {
        const size_t total = sizeof(FrameHeader) + io.out_header.bytes;
        const char* src = io.sent < sizeof(FrameHeader)
                              ? reinterpret_cast<const char*>(&io.out_header) + io.sent
                              : io.send + (io.sent - sizeof(FrameHeader));
        const size_t chunk = io.sent < sizeof(FrameHeader)
                                 ? sizeof(FrameHeader) - io.sent
                                 : total - io.sent;
        const ssize_t rc = ::send(fd, src, chunk, MSG_NOSIGNAL);
        if (rc > 0) {
          io.sent += static_cast<size_t>(rc);
        } else if (rc < 0 && (errno == EAGAIN || errno == EINTR)) {
          break;
        } else {
          if (aborted_.load()) return absl::UnavailableError("communicator aborted");
          return Fail(absl::UnavailableError(absl::StrCat(
              what, ": lost rank ", io.peer, " (", std::strerror(errno), ")")));
        }
      }
      while (!io.recv_done()) {
        char* dst = io.received < sizeof(FrameHeader)
                        ? reinterpret_cast<char*>(&io.in_header) + io.received
                        : io.recv + (io.received - sizeof(FrameHeader));
        const size_t chunk = io.received < sizeof(FrameHeader)
                                 ? sizeof(FrameHeader) - io.received
                                 : sizeof(FrameHeader) + io.recv_len - io.received;
        const ssize_t rc = ::recv(fd, dst, chunk, 0);
        if (rc > 0) {
          io.received += static_cast<size_t>(rc);
          if (io.received == sizeof(FrameHeader)) {
            const FrameHeader& h = io.in_header;
            if (h.magic != kFrameMagic || h.op != io.out_header.op ||
                h.seq != seq || h.bytes != io.recv_len) {
              return Fail(absl::InternalError(absl::StrCat(
                  what, " of ", io.recv_len, " bytes: rank ", io.peer,
                  " made a different call (op ", h.op, " #", h.seq, ", ",
                  h.bytes, " bytes); the ranks are out of step")));
            }
          }
        } else if (rc < 0 && (errno == EAGAIN || errno == EINTR)) {
          break;
        } else {
          if (aborted_.load()) return absl::UnavailableError("communicator aborted");
          return Fail(absl::UnavailableError(absl::StrCat(
              what, ": lost rank ", io.peer, " (",
              rc == 0 ? "connection closed; process gone?" : std::strerror(errno),
              ")")));
        }
      }
    }
    std::vector<pollfd> fds;
    std::vector<int> pending;
    for (const PeerIo& io : ios) {
      short events = 0;
      if (!io.send_done()) events |= POLLOUT;
      if (!io.recv_done()) events |= POLLIN;
      if (events != 0) {
        fds.push_back({peers_[io.peer].get(), events, 0});
        pending.push_back(io.peer);
      }
    }
    if (fds.empty()) return absl::OkStatus();
    fds.push_back({abort_fd_.get(), POLLIN, 0});
    const int rc = ::poll(fds.data(), fds.size(), PollTimeoutMs(deadline));
    if (rc < 0 && errno != EINTR) {
      return Fail(absl::InternalError(absl::StrCat(what, ": poll: ", std::strerror(errno))));
    }
    if (fds.back().revents != 0 || aborted_.load()) {
      return absl::UnavailableError(absl::StrCat(what, ": communicator aborted"));
    }
    if (rc == 0 && absl::Now() >= deadline) {
      std::vector<std::string> names;
      for (int p : pending) names.push_back(absl::StrCat("rank ", p));
      return Fail(absl::DeadlineExceededError(absl::StrCat(
          what, ": no progress from ", absl::StrJoin(names, ", "), " within ",
          absl::ToInt64Milliseconds(options_.op_timeout), " ms")));
    }
  }
}

absl::Status CpuCommunicator::AllReduceSum(void* data, size_t count,
                                           CommDType dtype, void* /*stream*/) {
  uint64_t seq = 0;
  TP_RETURN_IF_ERROR(BeginOp(&seq));
  if (world_size_ == 1 || count == 0) return absl::OkStatus();
  const size_t bytes = count * CommDTypeSize(dtype);
  std::vector<char> scratch(bytes * world_size_);
  std::memcpy(scratch.data() + rank_ * bytes, data, bytes);
  std::vector<PeerIo> ios = AllToAllIos(rank_, world_size_, Op::kAllReduce, seq,
                                        static_cast<const char*>(data), scratch.data(), bytes);
  TP_RETURN_IF_ERROR(Exchange(ios, "AllReduceSum", seq));
  std::vector<const char*> parts(world_size_);
  for (int r = 0; r < world_size_; ++r) parts[r] = scratch.data() + r * bytes;
  switch (dtype) {
    case CommDType::kFloat32:
      SumInRankOrder<float, float>(parts, count, data, [](float v) { return v; },
                                   [](float v) { return v; });
      break;
    case CommDType::kInt32:
      SumInRankOrder<int32_t, int64_t>(
          parts, count, data, [](int32_t v) { return static_cast<int64_t>(v); },
          [](int64_t v) { return static_cast<int32_t>(v); });
      break;
    case CommDType::kBFloat16:
      SumInRankOrder<uint16_t, float>(parts, count, data, Bf16ToFloat, FloatToBf16);
      break;
    case CommDType::kFloat16:
      SumInRankOrder<_Float16, float>(
          parts, count, data, [](_Float16 v) { return static_cast<float>(v); },
          [](float v) { return static_cast<_Float16>(v); });
      break;
  }
  return absl::OkStatus();
}

absl::Status CpuCommunicator::AllGather(const void* send, void* recv,
                                        size_t count, CommDType dtype,
                                        void* /*stream*/) {
  uint64_t seq = 0;
  TP_RETURN_IF_ERROR(BeginOp(&seq));
  const size_t bytes = count * CommDTypeSize(dtype);
  char* out = static_cast<char*>(recv);
  std::memmove(out + rank_ * bytes, send, bytes);
  if (world_size_ == 1 || count == 0) return absl::OkStatus();
  std::vector<PeerIo> ios =
      AllToAllIos(rank_, world_size_, Op::kAllGather, seq, out + rank_ * bytes, out, bytes);
  return Exchange(ios, "AllGather", seq);
}

absl::Status CpuCommunicator::Broadcast(void* data, size_t count,
                                        CommDType dtype, int root,
                                        void* /*stream*/) {
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Broadcast root ", root, " is out of range [0, ", world_size_, ")"));
  }
  uint64_t seq = 0;
  TP_RETURN_IF_ERROR(BeginOp(&seq));
  if (world_size_ == 1 || count == 0) return absl::OkStatus();
  const size_t bytes = count * CommDTypeSize(dtype);
  std::vector<PeerIo> ios;
  const FrameHeader header{kFrameMagic, static_cast<uint32_t>(Op::kBroadcast), seq,
                           bytes};
  if (rank_ == root) {
    for (int p = 0; p < world_size_; ++p) {
      if (p == rank_) continue;
      PeerIo io;
      io.peer = p;
      io.out_header = header;
      io.send = static_cast<const char*>(data);
      ios.push_back(io);
    }
  } else {
    PeerIo io;
    io.peer = root;
    io.out_header = header;  // what we expect to receive
    io.recv = static_cast<char*>(data);
    io.recv_len = bytes;
    ios.push_back(io);
  }
  return Exchange(ios, "Broadcast", seq);
}

void CpuCommunicator::Abort(const std::string& reason) {
  (void)Fail(absl::UnavailableError(absl::StrCat("communicator aborted: ", reason)));
  aborted_.store(true);
  const uint64_t one = 1;
  if (abort_fd_.valid() && ::write(abort_fd_.get(), &one, sizeof(one)) < 0) {
    // The eventfd counter cannot overflow from one write; nothing to do.
  }
  // Shutting the sockets down (not closing them: a call may still be using
  // the descriptors) makes every peer see EOF at once.
  for (const Fd& fd : peers_) {
    if (fd.valid()) ::shutdown(fd.get(), SHUT_RDWR);
  }
}

absl::Status CpuCommunicator::Health() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) return failure_;
  }
  std::vector<pollfd> fds;
  std::vector<int> ranks;
  for (int p = 0; p < world_size_; ++p) {
    if (p == rank_) continue;
    fds.push_back({peers_[p].get(), POLLRDHUP, 0});
    ranks.push_back(p);
  }
  if (fds.empty()) return absl::OkStatus();
  if (::poll(fds.data(), fds.size(), 0) > 0) {
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
        return Fail(absl::UnavailableError(absl::StrCat(
            "lost rank ", ranks[i], ": its connection closed (process gone?)")));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tpserve::worker
