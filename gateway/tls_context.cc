#include "gateway/tls_context.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace tpserve::gateway {
namespace {

// OpenSSL's reason for the last failure, for the error message.
std::string LastOpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::StatusOr<TlsContext> CreateServerTlsContext(const std::string& certfile,
                                                  const std::string& keyfile,
                                                  const std::string& ca_certs) {
  if (certfile.empty() || keyfile.empty()) {
    return absl::InvalidArgumentError("TLS needs both --ssl-certfile and --ssl-keyfile");
  }
  TlsContext ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + LastOpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Writes retry after WANT_WRITE from wherever the rest of the data is.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certfile.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ssl-certfile ", certfile, ": ", LastOpenSslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ssl-keyfile ", keyfile, ": ", LastOpenSslError()));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--ssl-keyfile ", keyfile,
                                                   " does not match --ssl-certfile ", certfile));
  }
  if (!ca_certs.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), ca_certs.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--ssl-ca-certs ", ca_certs, ": ", LastOpenSslError()));
    }
    // Tell clients which CAs are accepted, and refuse those without a
    // certificate from one of them.
    SSL_CTX_set_client_CA_list(ctx.get(), SSL_load_client_CA_file(ca_certs.c_str()));
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

}  // namespace tpserve::gateway
