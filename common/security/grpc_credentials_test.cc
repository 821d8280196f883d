// Mutual TLS on the internal links, with certificates made by the openssl
// command at test time: a client needs a certificate from the deployment's CA,
// and a server must present one matching the name the client expects.
#include "common/security/grpc_credentials.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/router.grpc.pb.h"

namespace tpserve {
namespace {

namespace fs = std::filesystem;

class HealthOnly : public v1::Router::Service {
  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*,
                      v1::HealthResponse* response) override {
    response->set_message("hello over tls");
    return grpc::Status::OK;
  }
};

// Runs a shell command; fails the test (and returns false) when it fails.
bool Shell(const std::string& cmd) {
  const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  EXPECT_EQ(rc, 0) << cmd;
  return rc == 0;
}

class GrpcCredentialsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new fs::path(fs::path(tmp != nullptr ? tmp : "/tmp") / "tpserve_tls");
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    MakeCa("ca");
    MakeCa("rogue");
    MakeCert("server", "ca", "IP:127.0.0.1,DNS:localhost");
    MakeCert("client", "ca", "DNS:tpserve-client");
    MakeCert("named", "ca", "DNS:tpserve-internal");
    MakeCert("intruder", "rogue", "DNS:tpserve-client");
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string P(const std::string& name) { return (*dir_ / name).string(); }

  static void MakeCa(const std::string& name) {
    Shell(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                     " -keyout ", P(name + ".key"), " -out ", P(name + ".pem"),
                     " -days 1 -subj /CN=", name));
  }
  static void MakeCert(const std::string& name, const std::string& ca, const std::string& san) {
    std::ofstream(P(name + ".ext")) << "subjectAltName=" << san << "\n";
    Shell(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                     " -keyout ", P(name + ".key"), " -out ", P(name + ".csr"),
                     " -subj /CN=", name));
    Shell(absl::StrCat("openssl x509 -req -in ", P(name + ".csr"), " -CA ", P(ca + ".pem"),
                     " -CAkey ", P(ca + ".key"), " -CAcreateserial -days 1 -out ",
                     P(name + ".pem"), " -extfile ", P(name + ".ext")));
  }

  static ServerConfig TlsConfig(const std::string& who, const std::string& ca = "ca") {
    ServerConfig c;
    c.internal_ssl_ca_certs = P(ca + ".pem");
    c.internal_ssl_certfile = P(who + ".pem");
    c.internal_ssl_keyfile = P(who + ".key");
    return c;
  }

  // Starts a Router service with `who`'s certificate under mutual TLS.
  void StartServer(const std::string& who) {
    auto tls = LoadInternalTls(TlsConfig(who));
    ASSERT_TRUE(tls.ok()) << tls.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", InternalServerCredentials(tls->get()), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> creds,
                    grpc::ChannelArguments args = {}) {
    auto stub = v1::Router::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), creds, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::HealthResponse response;
    grpc::Status s = stub->Health(&context, v1::HealthRequest(), &response);
    if (s.ok()) {
      EXPECT_EQ(response.message(), "hello over tls");
    }
    return s;
  }

  grpc::Status CallAs(const std::string& who, const std::string& ca = "ca",
                      const std::string& target_name = "") {
    ServerConfig c = TlsConfig(who, ca);
    c.internal_ssl_target_name = target_name;
    auto tls = LoadInternalTls(c);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return Call(InternalChannelCredentials(tls->get()), InternalChannelArguments(tls->get()));
  }

  static fs::path* dir_;
  HealthOnly service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

fs::path* GrpcCredentialsTest::dir_ = nullptr;

TEST_F(GrpcCredentialsTest, ClientWithCertificateFromTheCaIsServed) {
  StartServer("server");
  EXPECT_TRUE(CallAs("client").ok());
}

TEST_F(GrpcCredentialsTest, PlaintextClientIsRefused) {
  StartServer("server");
  EXPECT_FALSE(Call(grpc::InsecureChannelCredentials()).ok());
}

TEST_F(GrpcCredentialsTest, TlsClientWithoutCertificateIsRefused) {
  StartServer("server");
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = LoadInternalTls(TlsConfig("client")).value()->ca_pem;
  EXPECT_FALSE(Call(grpc::SslCredentials(options)).ok());
}

TEST_F(GrpcCredentialsTest, ClientCertificateFromAnotherCaIsRefused) {
  StartServer("server");
  // The intruder trusts our CA (so it accepts the server) but its own
  // certificate comes from another one.
  ServerConfig c = TlsConfig("intruder");
  auto tls = LoadInternalTls(c).value();
  tls->ca_pem = LoadInternalTls(TlsConfig("client")).value()->ca_pem;
  EXPECT_FALSE(Call(InternalChannelCredentials(tls.get())).ok());
}

TEST_F(GrpcCredentialsTest, ServerNameMustMatchUnlessOverridden) {
  StartServer("named");  // certificate for DNS:tpserve-internal only
  EXPECT_FALSE(CallAs("client").ok());
  EXPECT_TRUE(CallAs("client", "ca", "tpserve-internal").ok());
}

TEST_F(GrpcCredentialsTest, NoFilesMeansPlaintext) {
  auto tls = LoadInternalTls(ServerConfig());
  ASSERT_TRUE(tls.ok());
  EXPECT_EQ(tls->get(), nullptr);
}

TEST_F(GrpcCredentialsTest, IncompleteOrBadSettingsNameTheFlag) {
  ServerConfig c = TlsConfig("client");
  c.internal_ssl_keyfile.clear();
  auto s = LoadInternalTls(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("all three"), absl::string_view::npos) << s;

  c = TlsConfig("client");
  c.internal_ssl_certfile = P("missing.pem");
  s = LoadInternalTls(c).status();
  EXPECT_NE(s.message().find("--internal-ssl-certfile: cannot read"), absl::string_view::npos)
      << s;

  c = TlsConfig("client");
  c.internal_ssl_certfile = P("client.key");  // a key where a certificate belongs
  s = LoadInternalTls(c).status();
  EXPECT_NE(s.message().find("no PEM CERTIFICATE block"), absl::string_view::npos) << s;

  ServerConfig only_name;
  only_name.internal_ssl_target_name = "x";
  EXPECT_EQ(LoadInternalTls(only_name).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(InternalListenAddressTest, BracketsIpv6) {
  ServerConfig c;
  EXPECT_EQ(InternalListenAddress(c, 50051), "0.0.0.0:50051");
  c.internal_host = "::1";
  EXPECT_EQ(InternalListenAddress(c, 7), "[::1]:7");
  c.internal_host = "127.0.0.1";
  EXPECT_EQ(InternalListenAddress(c, 7), "127.0.0.1:7");
}

}  // namespace
}  // namespace tpserve
