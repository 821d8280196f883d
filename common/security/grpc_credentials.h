// Credentials for tpserve's internal gRPC links (gateway -> router -> workers).
// Without the --internal-ssl-* files every link is plaintext, and `tpserve
// serve` keeps router and workers on loopback. With them, every server asks
// for and verifies a client certificate signed by the CA, and every client
// verifies the server's: mutual TLS, so only holders of a certificate from
// the deployment's CA can call Router.Generate or Worker.Step.
#ifndef TPSERVE_COMMON_SECURITY_GRPC_CREDENTIALS_H_
#define TPSERVE_COMMON_SECURITY_GRPC_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace tpserve {

// The PEM material of the internal mutual-TLS settings, read and checked.
struct InternalTls {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // Name the peer's certificate must carry (empty: the host of the address).
  std::string target_name;
};

// Reads the three --internal-ssl-* files. nullopt-like empty result (no TLS)
// when none is set; INVALID_ARGUMENT naming the flag when only some are set or
// a file cannot be read or holds no PEM block.
absl::StatusOr<std::unique_ptr<InternalTls>> LoadInternalTls(const ServerConfig& config);

// Server side: mutual TLS requiring a client certificate from the CA, or
// insecure credentials when `tls` is null.
std::shared_ptr<grpc::ServerCredentials> InternalServerCredentials(const InternalTls* tls);

// Client side: TLS presenting our certificate and verifying the server's
// against the CA, or insecure credentials when `tls` is null. The returned
// arguments carry the target-name override when one is configured; add any
// other channel arguments to them.
std::shared_ptr<grpc::ChannelCredentials> InternalChannelCredentials(const InternalTls* tls);
grpc::ChannelArguments InternalChannelArguments(const InternalTls* tls);

// The address the router and worker gRPC servers (and their /metrics) listen
// on for `port`: --internal-host, bracketed when it is an IPv6 literal.
std::string InternalListenAddress(const ServerConfig& config, int port);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_SECURITY_GRPC_CREDENTIALS_H_
