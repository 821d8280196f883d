// Server-side TLS for the gateway: vLLM's --ssl-certfile, --ssl-keyfile and
// --ssl-ca-certs, on OpenSSL (Debian's libssl, which cpp-httplib uses too).
#ifndef TPSERVE_GATEWAY_TLS_CONTEXT_H_
#define TPSERVE_GATEWAY_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tpserve::gateway {

using TlsContext = std::shared_ptr<SSL_CTX>;

// A TLS 1.2+ server context with the certificate chain and private key (PEM
// files). With `ca_certs`, clients must present a certificate signed by one
// of those CAs (mutual TLS). Unreadable or mismatched files are an error
// naming the file.
absl::StatusOr<TlsContext> CreateServerTlsContext(const std::string& certfile,
                                                  const std::string& keyfile,
                                                  const std::string& ca_certs);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_TLS_CONTEXT_H_
