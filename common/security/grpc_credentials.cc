#include "common/security/grpc_credentials.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tpserve {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag,
                                    const char* marker) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read '", path, "'"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string pem = ss.str();
  if (!absl::StrContains(pem, "-----BEGIN ") || !absl::StrContains(pem, marker)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": '", path, "' holds no PEM ", marker, " block"));
  }
  return pem;
}

}  // namespace

absl::StatusOr<std::unique_ptr<InternalTls>> LoadInternalTls(const ServerConfig& c) {
  const int set = !c.internal_ssl_ca_certs.empty() + !c.internal_ssl_certfile.empty() +
                  !c.internal_ssl_keyfile.empty();
  if (set == 0) {
    if (!c.internal_ssl_target_name.empty()) {
      return absl::InvalidArgumentError(
          "--internal-ssl-target-name needs --internal-ssl-ca-certs, "
          "--internal-ssl-certfile and --internal-ssl-keyfile");
    }
    return std::unique_ptr<InternalTls>();
  }
  if (set != 3) {
    return absl::InvalidArgumentError(
        "internal mutual TLS needs all three of --internal-ssl-ca-certs, "
        "--internal-ssl-certfile and --internal-ssl-keyfile");
  }
  auto tls = std::make_unique<InternalTls>();
  auto ca = ReadPem(c.internal_ssl_ca_certs, "internal-ssl-ca-certs", "CERTIFICATE");
  if (!ca.ok()) return ca.status();
  auto cert = ReadPem(c.internal_ssl_certfile, "internal-ssl-certfile", "CERTIFICATE");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(c.internal_ssl_keyfile, "internal-ssl-keyfile", "PRIVATE KEY");
  if (!key.ok()) return key.status();
  tls->ca_pem = *std::move(ca);
  tls->cert_pem = *std::move(cert);
  tls->key_pem = *std::move(key);
  tls->target_name = c.internal_ssl_target_name;
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> InternalServerCredentials(const InternalTls* tls) {
  if (tls == nullptr) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls->ca_pem;
  options.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> InternalChannelCredentials(const InternalTls* tls) {
  if (tls == nullptr) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca_pem;
  options.pem_private_key = tls->key_pem;
  options.pem_cert_chain = tls->cert_pem;
  return grpc::SslCredentials(options);
}

grpc::ChannelArguments InternalChannelArguments(const InternalTls* tls) {
  grpc::ChannelArguments args;
  if (tls != nullptr && !tls->target_name.empty()) {
    args.SetSslTargetNameOverride(tls->target_name);
  }
  return args;
}

std::string InternalListenAddress(const ServerConfig& config, int port) {
  const std::string& host = config.internal_host;
  if (absl::StrContains(host, ":") && !absl::StartsWith(host, "[")) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace tpserve
