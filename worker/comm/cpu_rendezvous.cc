// CpuRendezvous and CpuCommunicator::Create: how the full mesh is built.
#include <sys/eventfd.h>

#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/comm/cpu_communicator.h"

namespace tpserve::worker {
namespace {

constexpr uint32_t kHelloMagic = 0x54504831;  // "TPH1"
constexpr uint32_t kReplyMagic = 0x54505231;  // "TPR1"
constexpr int kMaxWorld = 64;
constexpr size_t kTokenBytes = 16;
constexpr char kIdPrefix[] = "tpcpu1";
// A connection that says nothing is dropped after this long, so a stray
// client cannot stall the rendezvous.
constexpr absl::Duration kHelloTimeout = absl::Seconds(5);

// First message on every connection: who is calling, for which group.
struct Hello {
  uint32_t magic = kHelloMagic;
  int32_t rank = -1;
  int32_t world_size = 0;
  int32_t listen_port = 0;
  uint8_t token[kTokenBytes] = {};
};

// Answer to a Hello: accepted (with rank 0's table of listening ports) or
// rejected with a reason.
struct Reply {
  uint32_t magic = kReplyMagic;
  int32_t ok = 0;
  int32_t ports[kMaxWorld] = {};
  char message[200] = {};
};

struct ParsedId {
  std::string host;
  int port = 0;
  uint8_t token[kTokenBytes] = {};
};

std::string Hex(const uint8_t* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

absl::StatusOr<ParsedId> ParseId(const std::string& id) {
  std::vector<std::string> parts = absl::StrSplit(id, ':');
  ParsedId out;
  if (parts.size() != 4 || parts[0] != kIdPrefix ||
      !absl::SimpleAtoi(parts[2], &out.port) || out.port <= 0 ||
      out.port > 65535 || parts[3].size() != 2 * kTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a CPU communicator id: '", id,
        "' (expected tpcpu1:<host>:<port>:<32 hex digits> from rank 0's "
        "CreateUniqueId)"));
  }
  out.host = parts[1];
  for (size_t i = 0; i < kTokenBytes; ++i) {
    int value = 0;
    if (!absl::SimpleHexAtoi(parts[3].substr(2 * i, 2), &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad token in CPU communicator id '", id, "'"));
    }
    out.token[i] = static_cast<uint8_t>(value);
  }
  return out;
}

std::string RankName(int r) { return absl::StrCat("rank ", r); }

void SendReject(int fd, const std::string& message) {
  Reply reply;
  std::strncpy(reply.message, message.c_str(), sizeof(reply.message) - 1);
  (void)SendAll(fd, &reply, sizeof(reply), absl::Now() + absl::Seconds(1), -1,
                "joining rank");
}

// Reads and checks the Hello of a newly accepted connection.
absl::StatusOr<Hello> ReadHello(int fd, absl::Time deadline,
                                const uint8_t* token) {
  Hello hello;
  TP_RETURN_IF_ERROR(RecvAll(fd, &hello, sizeof(hello),
                             std::min(deadline, absl::Now() + kHelloTimeout),
                             -1, "joining rank"));
  if (hello.magic != kHelloMagic) {
    return absl::InvalidArgumentError("connection is not a tpserve CPU rank");
  }
  if (std::memcmp(hello.token, token, kTokenBytes) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", hello.rank, " joined with another group's id (token ",
        Hex(hello.token, kTokenBytes), ")"));
  }
  return hello;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuRendezvous>> CpuRendezvous::Create() {
  auto rv = std::unique_ptr<CpuRendezvous>(new CpuRendezvous());
  int port = 0;
  TP_ASSIGN_OR_RETURN(rv->listener_, ListenLoopback(&port));
  uint8_t token[kTokenBytes];
  std::random_device rd;
  for (size_t i = 0; i < kTokenBytes; ++i) token[i] = static_cast<uint8_t>(rd());
  rv->unique_id_ = absl::StrCat(kIdPrefix, ":127.0.0.1:", port, ":",
                                Hex(token, kTokenBytes));
  return rv;
}

absl::StatusOr<std::unique_ptr<CpuCommunicator>> CpuCommunicator::Create(
    int rank, int world_size, const std::string& unique_id,
    absl::Duration timeout, CpuRendezvous* rendezvous, CpuCommOptions options) {
  if (world_size < 1 || world_size > kMaxWorld) {
    return absl::InvalidArgumentError(absl::StrCat(
        "world_size must be in [1, ", kMaxWorld, "], got ", world_size));
  }
  if (rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank must be in [0, ", world_size, "), got ", rank));
  }
  TP_ASSIGN_OR_RETURN(ParsedId id, ParseId(unique_id));
  if (rank == 0 && (rendezvous == nullptr ||
                    rendezvous->unique_id() != unique_id)) {
    return absl::FailedPreconditionError(
        "rank 0 must join with the id its own CreateUniqueId returned");
  }
  const absl::Time deadline = absl::Now() + timeout;
  auto comm = std::unique_ptr<CpuCommunicator>(
      new CpuCommunicator(rank, world_size, options));
  const int abort_fd = comm->abort_fd_.get();
  std::vector<Fd>& peers = comm->peers_;

  if (rank == 0) {
    Reply table;
    table.ok = 1;
    std::string last_rejection;
    int joined = 0;
    while (joined < world_size - 1) {
      absl::StatusOr<Fd> conn = AcceptBefore(
          rendezvous->listener_.get(), deadline, abort_fd,
          absl::StrCat("the other ", world_size - 1 - joined, " rank(s)"));
      if (!conn.ok()) {
        return absl::Status(conn.status().code(),
                            absl::StrCat(conn.status().message(),
                                         last_rejection.empty() ? "" : "; last rejected join: ",
                                         last_rejection));
      }
      absl::StatusOr<Hello> hello = ReadHello(conn->get(), deadline, id.token);
      if (!hello.ok()) {
        last_rejection = std::string(hello.status().message());
        SendReject(conn->get(), last_rejection);
        continue;
      }
      std::string error;
      if (hello->world_size != world_size) {
        error = absl::StrCat("rank ", hello->rank, " joined with world_size ",
                             hello->world_size, " but rank 0 has ", world_size);
      } else if (hello->rank < 1 || hello->rank >= world_size) {
        error = absl::StrCat("joining rank ", hello->rank, " is out of range [1, ",
                             world_size, ")");
      } else if (peers[hello->rank].valid()) {
        error = absl::StrCat("rank ", hello->rank, " joined twice");
      }
      if (!error.empty()) {
        SendReject(conn->get(), error);
        return absl::InvalidArgumentError(error);
      }
      table.ports[hello->rank] = hello->listen_port;
      peers[hello->rank] = std::move(*conn);
      ++joined;
    }
    for (int r = 1; r < world_size; ++r) {
      TP_RETURN_IF_ERROR(SendAll(peers[r].get(), &table, sizeof(table), deadline,
                                 abort_fd, RankName(r)));
    }
  } else {
    int listen_port = 0;
    TP_ASSIGN_OR_RETURN(Fd listener, ListenLoopback(&listen_port));
    Hello hello;
    hello.rank = rank;
    hello.world_size = world_size;
    hello.listen_port = listen_port;
    std::memcpy(hello.token, id.token, kTokenBytes);
    TP_ASSIGN_OR_RETURN(peers[0], ConnectWithRetry(id.host, id.port, deadline,
                                                   abort_fd, RankName(0)));
    TP_RETURN_IF_ERROR(SendAll(peers[0].get(), &hello, sizeof(hello), deadline,
                               abort_fd, RankName(0)));
    Reply table;
    absl::Status got = RecvAll(peers[0].get(), &table, sizeof(table), deadline,
                               abort_fd, "rank 0 (waiting for all ranks to join)");
    if (!got.ok()) return got;
    if (table.magic != kReplyMagic || !table.ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank 0 rejected rank ", rank, ": ",
          std::string(table.message, strnlen(table.message, sizeof(table.message)))));
    }
    // Connect to the lower ranks, accept the higher ones: each pair once.
    for (int r = 1; r < rank; ++r) {
      TP_ASSIGN_OR_RETURN(peers[r], ConnectWithRetry("127.0.0.1", table.ports[r],
                                                     deadline, abort_fd, RankName(r)));
      TP_RETURN_IF_ERROR(SendAll(peers[r].get(), &hello, sizeof(hello), deadline,
                                 abort_fd, RankName(r)));
    }
    for (int n = rank + 1; n < world_size; ++n) {
      TP_ASSIGN_OR_RETURN(Fd conn, AcceptBefore(listener.get(), deadline, abort_fd,
                                                "a higher rank"));
      TP_ASSIGN_OR_RETURN(Hello peer, ReadHello(conn.get(), deadline, id.token));
      if (peer.rank <= rank || peer.rank >= world_size || peers[peer.rank].valid()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rank ", rank, " got an unexpected connection from rank ", peer.rank));
      }
      peers[peer.rank] = std::move(conn);
    }
  }
  // One empty collective confirms every link in both directions before the
  // group is declared up.
  int32_t probe = rank;
  std::vector<int32_t> all(world_size);
  TP_RETURN_IF_ERROR(comm->AllGather(&probe, all.data(), 1, CommDType::kInt32, nullptr));
  for (int r = 0; r < world_size; ++r) {
    if (all[r] != r) {
      return absl::InternalError(absl::StrCat("link check failed: slot ", r,
                                              " holds rank ", all[r]));
    }
  }
  spdlog::info("CPU communicator up: rank {} of {}", rank, world_size);
  return comm;
}

}  // namespace tpserve::worker
