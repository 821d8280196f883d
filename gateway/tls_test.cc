// Gateway TLS (--ssl-certfile, --ssl-keyfile, --ssl-ca-certs) with keys and
// certificates made by OpenSSL when the test runs.
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>

#include "gateway/gateway_server.h"
#include "gateway/testing/gateway_fixture.h"
#include "gateway/testing/raw_http.h"

namespace tpserve::gateway {
namespace {

// A key and a certificate signed by `issuer` (self-signed when null).
struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string key_file;
  std::string cert_file;

  ~Identity() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void MakeIdentity(const std::string& name, bool ca, const Identity* issuer, Identity* out) {
  out->key = EVP_EC_gen("P-256");
  ASSERT_NE(out->key, nullptr);
  out->cert = X509_new();
  X509_set_version(out->cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(out->cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(out->cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(out->cert), 3600);
  X509_set_pubkey(out->cert, out->key);
  X509_NAME* subject = X509_get_subject_name(out->cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert : out->cert;
  X509_set_issuer_name(out->cert, X509_get_subject_name(issuer_cert));
  AddExtension(out->cert, issuer_cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (!ca) AddExtension(out->cert, issuer_cert, NID_subject_alt_name, "IP:127.0.0.1");
  ASSERT_GT(X509_sign(out->cert, issuer != nullptr ? issuer->key : out->key, EVP_sha256()), 0);
  const std::string dir = ::testing::TempDir();
  out->key_file = dir + "/" + name + ".key";
  out->cert_file = dir + "/" + name + ".crt";
  FILE* f = fopen(out->key_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, out->key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
  f = fopen(out->cert_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, out->cert);
  fclose(f);
}

class TlsTest : public testing::GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    MakeIdentity("ca", true, nullptr, &ca_);
    MakeIdentity("server", false, &ca_, &server_);
    MakeIdentity("client", false, &ca_, &client_);
    MakeIdentity("other-ca", true, nullptr, &other_ca_);
    MakeIdentity("stranger", false, &other_ca_, &stranger_);
    config_.ssl_certfile = server_.cert_file;
    config_.ssl_keyfile = server_.key_file;
  }

  // An HTTPS client that checks the server against our CA.
  std::unique_ptr<httplib::SSLClient> Client(const Identity* as = nullptr) {
    auto cli = as == nullptr
                   ? std::make_unique<httplib::SSLClient>("127.0.0.1", port())
                   : std::make_unique<httplib::SSLClient>("127.0.0.1", port(), as->cert_file,
                                                          as->key_file);
    cli->set_ca_cert_path(ca_.cert_file.c_str());
    cli->enable_server_certificate_verification(true);
    cli->set_connection_timeout(2);
    cli->set_read_timeout(5);
    return cli;
  }

  // GatewayFixture::StartGateway polls /health over plain HTTP.
  void StartTlsGateway() {
    ServerConfig config = config_;
    config.routers = {router_->address()};
    auto server = GatewayServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    gateway_ = std::move(server).value();
  }

  bool Healthy(const Identity* as = nullptr) {
    for (int i = 0; i < 200; ++i) {
      auto res = Client(as)->Get("/health");
      if (res && res->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  Identity ca_, server_, client_, other_ca_, stranger_;
};

TEST_F(TlsTest, ServesHttps) {
  StartTlsGateway();
  ASSERT_TRUE(Healthy());
  auto res = Client()->Post("/v1/completions", R"({"model": "tiny", "prompt": "x", "max_tokens": 3})",
                            "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->body.find("text_completion"), std::string::npos);
  // Plain HTTP on the TLS port gets no HTTP answer.
  EXPECT_NE(testing::Request(port(), "GET", "/health").status, 200);
  // Still served afterwards.
  EXPECT_EQ(Client()->Get("/health")->status, 200);
}

TEST_F(TlsTest, ClientCertificatesWhenCaCertsAreGiven) {
  config_.ssl_ca_certs = ca_.cert_file;
  StartTlsGateway();
  ASSERT_TRUE(Healthy(&client_));
  EXPECT_FALSE(Client()->Get("/health"));            // no certificate
  EXPECT_FALSE(Client(&stranger_)->Get("/health"));  // signed by another CA
  EXPECT_EQ(Client(&client_)->Get("/health")->status, 200);
}

TEST_F(TlsTest, BadKeyOrCertificateFailsStartUp) {
  config_.ssl_keyfile = client_.key_file;  // not the certificate's key
  auto server = GatewayServer::Start([&] {
    ServerConfig c = config_;
    c.routers = {router_->address()};
    return c;
  }());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("--ssl-keyfile"), std::string::npos)
      << server.status();
  config_.ssl_keyfile = "";
  server = GatewayServer::Start([&] {
    ServerConfig c = config_;
    c.routers = {router_->address()};
    return c;
  }());
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find("--ssl-keyfile"), std::string::npos);
}

}  // namespace
}  // namespace tpserve::gateway
