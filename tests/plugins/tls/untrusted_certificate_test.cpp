// A source whose server's certificate fails verification cannot be helped by asking again: it
// stops (the operator must add the CA or fix the server), with a status naming the certificate,
// instead of retrying forever. The server is a self-signed HTTPS Receiver on 127.0.0.1; the
// real `ferry` runs the real DuckHub and Tradecloud source plugins against it.
#include <Poco/Net/SSLManager.h>

#include <filesystem>
#include <string>

#include "FerryTest.h"
#include "Receiver.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

class UntrustedCertificateTest : public FerryTest {
 protected:
  void SetUp() override {
    fs::create_directories(plugins_);
    fs::copy_file(DUCKHUB_PLUGIN, plugins_ + "/source_duckhub_orders.so");
    fs::copy_file(TRADECLOUD_ORDERS_PLUGIN, plugins_ + "/source_tradecloud_orders.so");
    Poco::Net::initializeSSL();
    receiver_ = std::make_unique<Receiver>(selfSignedContext(dir_.path()));
  }
  void TearDown() override {
    receiver_.reset();
    Poco::Net::uninitializeSSL();
    FerryTest::TearDown();
  }

  std::string plugins_ = dir_.file("plugins");
  std::unique_ptr<Receiver> receiver_;
};

TEST_F(UntrustedCertificateTest, SourcesStopNamingTheCertificate) {
  const std::string base = "https://127.0.0.1:" + std::to_string(receiver_->port());
  writeFile(config_, "[host]\njournal = " + dir_.file("journal.db") + "\nplugin_dir = " + plugins_ +
                         "\nretry_initial = 50ms\nretry_max = 200ms\n\n" +
                         section("source.duck",
                                 {{"plugin", "source_duckhub_orders"},
                                  {"base_url", base + "/v1"},
                                  {"api_key", "dk_test_0123456789abcdefghijABCDEFGHIJ-_"},
                                  {"interval", "200ms"},
                                  {"timeout", "5s"}},
                                 "") +
                         section("source.tc",
                                 {{"plugin", "source_tradecloud_orders"},
                                  {"base_url", base + "/v2"},
                                  {"email", "integration@example.test"},
                                  {"password", "s3cret-Pa55word"},
                                  {"interval", "200ms"},
                                  {"timeout", "5s"}},
                                 ""));
  // Retrying forever would outlast this deadline.
  RunResult run = ferry({"run", "--config", config_, "--once"}, 30s);
  EXPECT_FALSE(run.timed_out) << describe(run);
  EXPECT_EQ(run.exit_code, 1) << "a stopped source: " << describe(run);

  auto st = status();
  for (const char* name : {"duck", "tc"}) {
    SCOPED_TRACE(name);
    auto source = instance(st, "sources", name);
    ASSERT_FALSE(source.isNull());
    EXPECT_EQ(str(source, "state"), "stopped");
    EXPECT_NE(str(source, "message").find("certificate"), std::string::npos)
        << str(source, "message");
  }
  EXPECT_TRUE(receiver_->requests().empty()) << "no request got past the TLS handshake";
}

}  // namespace
}  // namespace ferry::it
