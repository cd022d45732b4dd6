// The aspis CLI against a running aspis-service.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/cli.hpp"
#include "cli/command.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "device/daemon/admin_socket.hpp"
#include "device/daemon/certificate_commands.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"
#include "service/service.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"

namespace aspis::cli {
namespace {

using json::Json;
using testing::TempDir;

struct Result {
  int code;
  std::string out;
  std::string err;
};

class AspisCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service =
        service::Service::Start(testing::ServiceConfig(dir_.path()), SystemClock::Instance());
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
    ::setenv("ASPIS_CONFIG", (dir_ / "cli.json").c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    url_ = "https://127.0.0.1:" + std::to_string(service_->port());
    root_ = (dir_ / "data/root-ca.pem").string();
  }

  Result Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = Main(args, out, err);
    return {code, out.str(), err.str()};
  }

  Result Login(const std::string& token) {
    return Run({"login", "--url", url_, "--token", token, "--root-ca", root_});
  }

  TempDir dir_;
  std::unique_ptr<service::Service> service_;
  std::string url_, root_;
};

TEST_F(AspisCli, OperatorFlowFromLoginToAuditWorks) {
  ASSERT_EQ(Login(service_->new_admin_token()).code, 0);
  EXPECT_EQ(std::filesystem::status(dir_ / "cli.json").permissions() &
                (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  auto created = Run({"tenant", "create", "--name", "Contoso", "--output", "json"});
  ASSERT_EQ(created.code, 0) << created.err;
  const std::string tenant = json::Parse(created.out)->value("id", "");
  ASSERT_FALSE(tenant.empty());

  const std::string device(64, 'c');
  EXPECT_EQ(Run({"device", "claim", "--tenant", tenant, "--device", device}).code, 0);
  auto listed = Run({"device", "list", "--tenant", tenant});
  EXPECT_EQ(listed.code, 0);
  EXPECT_NE(listed.out.find(device), std::string::npos);
  EXPECT_NE(listed.out.find("never attested"), std::string::npos);
  EXPECT_EQ(Run({"device", "revoke", "--tenant", tenant, "--device", device}).code, 0);
  auto shown = Run({"device", "show", "--tenant", tenant, "--device", device, "--output", "json"});
  EXPECT_TRUE(json::Parse(shown.out)->value("revoked", false));

  auto role = Run({"role", "add", "--tenant", tenant, "--role", "Reader", "--output", "json"});
  ASSERT_EQ(role.code, 0) << role.err;
  EXPECT_EQ(json::Parse(role.out)->value("role", ""), "Reader");

  EXPECT_EQ(Run({"ca-certificate", "download", "--tenant", tenant, "--destination",
                 (dir_ / "chain.pem").string()})
                .code,
            0);
  auto chain = file::Read(dir_ / "chain.pem");
  ASSERT_TRUE(chain);
  EXPECT_TRUE(crypto::Certificate::ChainFromPem(AsString(*chain)));
  auto cas = Run({"ca-certificate", "list", "--tenant", tenant});
  EXPECT_EQ(cas.code, 0) << cas.err;
  EXPECT_NE(cas.out.find("Active"), std::string::npos) << cas.out;
  EXPECT_EQ(Run({"ca-certificate", "download", "--tenant", tenant, "--index", "1", "--destination",
                 (dir_ / "first.pem").string()})
                .code,
            0);
  EXPECT_EQ(*file::Read(dir_ / "first.pem"), *chain);
  auto missing = Run({"ca-certificate", "download", "--tenant", tenant, "--index", "7",
                      "--destination", (dir_ / "none.pem").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("no CA certificate with that index"), std::string::npos);

  auto audit = Run({"audit", "list", "--tenant", tenant});
  EXPECT_NE(audit.out.find("device.revoke"), std::string::npos) << audit.out;
  EXPECT_NE(audit.out.find("device.claim"), std::string::npos);
  EXPECT_NE(audit.out.find(" UTC"), std::string::npos) << "times in tables are read as UTC";
}

TEST_F(AspisCli, VerifierCommandsRetireReleasesShowAttestationsAndPinBootPcrs) {
  ASSERT_EQ(Login(service_->new_admin_token()).code, 0);
  const std::string digest(64, 'a');
  auto added = Run({"os-release", "add", "--version", "24.10", "--component", "os=" + digest,
                    "--component", "aspisd=" + digest, "--component", "board=" + digest,
                    "--component", "trust-bundle=" + digest});
  ASSERT_EQ(added.code, 0) << added.err;
  auto retired = Run({"os-release", "retire", "--version", "24.10", "--reason", "CVE-2026-1"});
  ASSERT_EQ(retired.code, 0) << retired.err;
  auto releases = Run({"os-release", "list"});
  EXPECT_NE(releases.out.find("CVE-2026-1"), std::string::npos) << releases.out;

  const std::string tenant =
      json::Parse(Run({"tenant", "create", "--name", "Contoso", "--output", "json"}).out)
          ->value("id", "");
  const std::string device(64, 'd');
  ASSERT_EQ(Run({"device", "claim", "--tenant", tenant, "--device", device}).code, 0);
  auto shown = Run({"device", "show-attestation", "--tenant", tenant, "--device", device});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("Verdict:         never attested"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("Root of trust:   unknown (not attested yet)"), std::string::npos);
  EXPECT_NE(shown.out.find("Boot PCRs: none proven"), std::string::npos);

  auto pin = Run(
      {"attestation-policy", "update", "--tenant", tenant, "--pin-boot-pcrs-from-device", device});
  EXPECT_EQ(pin.code, 1);
  EXPECT_NE(pin.err.find("has proven no boot PCRs"), std::string::npos) << pin.err;
  EXPECT_EQ(Run({"attestation-policy", "update", "--tenant", tenant, "--clear-boot-pcrs"}).code, 0);
  auto policy = Run({"attestation-policy", "show", "--tenant", tenant, "--output", "json"});
  EXPECT_EQ(json::Parse(policy.out)->value("golden_boot_pcrs", Json()), Json::object());
  EXPECT_EQ(json::Parse(policy.out)->value("allow_software_root_of_trust", true), false);
  ASSERT_EQ(Run({"attestation-policy", "update", "--tenant", tenant,
                 "--allow-software-root-of-trust", "true"})
                .code,
            0);
  auto allowed = Run({"attestation-policy", "show", "--tenant", tenant});
  EXPECT_NE(allowed.out.find("true"), std::string::npos) << allowed.out;
  auto neither = Run({"attestation-policy", "update", "--tenant", tenant});
  EXPECT_EQ(neither.code, 1);
}

TEST(CliOutput, TerminalEscapeAttackTextOthersWroteIsPrintedEscaped) {
  // A hostile device's reason, or a name from before the service refused control characters.
  const json::Json row{{"id", "d1"}, {"reason", "ok\x1b[2J\r\nforged row"}};
  std::ostringstream table, custom, as_json;
  Output{.columns = {"id", "reason"}}.Print(table, "table", row);
  EXPECT_EQ(table.str().find('\x1b'), std::string::npos);
  EXPECT_EQ(table.str().find('\r'), std::string::npos);
  EXPECT_NE(table.str().find("ok\\x1b[2J\\x0d\\x0aforged row"), std::string::npos) << table.str();
  Output{.table = [](std::ostream& out, const json::Json& v) {
    out << v["reason"].get<std::string>();
  }}.Print(custom, "table", row);
  EXPECT_EQ(custom.str().find('\x1b'), std::string::npos) << "custom printers get escaped text too";
  Output{.columns = {"id"}}.Print(as_json, "json", row);
  EXPECT_EQ(as_json.str().find('\x1b'), std::string::npos);
  EXPECT_EQ(json::Parse(as_json.str()).value_or(json::Json())["reason"], row["reason"])
      << "JSON output stays faithful, escaped";
}

TEST_F(AspisCli, ErrorsPrintTheServicesExplanation) {
  ASSERT_EQ(Login(service_->new_admin_token()).code, 0);
  auto bad = Run({"device", "claim", "--tenant", "nope", "--device", "xyz"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("64 lowercase hex"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("Traceback"), std::string::npos);
}

TEST_F(AspisCli, LoginRefusesAWrongTokenOrAnUnpinnedServer) {
  auto wrong = Login("aspis_not_a_token");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("unknown or revoked"), std::string::npos) << wrong.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "cli.json"));

  // A root CA that did not issue the server's certificate: TLS refuses before any token is sent.
  std::ofstream(dir_ / "other.pem")
      << *crypto::CreateSelfSigned(*crypto::PrivateKey::GenerateP256(),
                                   {.common_name = "Other",
                                    .not_before = std::chrono::system_clock::now(),
                                    .lifetime = std::chrono::hours(1),
                                    .is_ca = true})
              ->ToPem();
  auto unpinned = Run({"login", "--url", url_, "--token", service_->new_admin_token(), "--root-ca",
                       (dir_ / "other.pem").string()});
  EXPECT_EQ(unpinned.code, 1);
  EXPECT_NE(unpinned.err.find("TLS"), std::string::npos) << unpinned.err;
}

TEST_F(AspisCli, CommandsBeforeLoginSayHowToLogIn) {
  auto result = Run({"tenant", "list"});
  EXPECT_EQ(result.code, 1);
  EXPECT_NE(result.err.find("aspis login"), std::string::npos);
}

// Publisher verbs: offline, no login.
class PublisherCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "app" / "bin");
    std::ofstream(dir_ / "app" / "bin" / "app") << "#!/bin/sh\necho hi\n";
    std::filesystem::permissions(dir_ / "app" / "bin" / "app", std::filesystem::perms::owner_all);
    WriteAppManifest("/bin/app");
  }

  void WriteAppManifest(const std::string& entry_point, const std::string& capabilities = "{}") {
    std::ofstream(dir_ / "app" / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": "blink", "ComponentId": )"
        << R"("2AB3E8D1-7C1F-4F8E-9D3A-0C5B6E7F8A9B", "EntryPoint": ")" << entry_point
        << R"(", "Capabilities": )" << capabilities << "}";
  }

  Result Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = Main(args, out, err);
    return {code, out.str(), err.str()};
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  TempDir dir_;
};

TEST_F(PublisherCli, PacksAnAppAndShowVerifiesItWithThePublishersKeyOnly) {
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("publisher.pem")}).code, 0);
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("other.pem")}).code, 0);
  EXPECT_EQ(std::filesystem::status(dir_ / "publisher.pem").permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto again = Run({"key", "generate", "--destination", Path("publisher.pem")});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;

  auto packed = Run({"image-package", "pack-application", "--package-directory", Path("app"),
                     "--destination", Path("blink.aspkg"), "--key", Path("publisher.pem"),
                     "--version", "1.2", "--security-version", "3", "--output", "json"});
  ASSERT_EQ(packed.code, 0) << packed.err;
  const Json summary = *json::Parse(packed.out);
  EXPECT_EQ(summary.value("component_id", ""), "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b");
  EXPECT_EQ(summary.value("security_version", 0), 3);

  auto shown = Run({"image-package", "show", "--image-package", Path("blink.aspkg"), "--key",
                    Path("publisher.pem.pub")});
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("verified with key ID"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("matches the manifest"), std::string::npos) << shown.out;
  auto foreign = Run({"image-package", "show", "--image-package", Path("blink.aspkg"), "--key",
                      Path("other.pem.pub")});
  EXPECT_EQ(foreign.code, 1);
  EXPECT_NE(foreign.err.find("not signed by one of the tenant's app publisher keys"),
            std::string::npos)
      << foreign.err;
}

TEST_F(PublisherCli, PackingRefusesAnEntryPointOutsideTheDirectoryOrNotExecutable) {
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("publisher.pem")}).code, 0);
  for (const char* entry_point : {"/bin/missing", "/../../bin/sh", "bin/app"}) {
    WriteAppManifest(entry_point);
    auto refused = Run({"image-package", "pack-application", "--package-directory", Path("app"),
                        "--destination", Path("x.aspkg"), "--key", Path("publisher.pem")});
    EXPECT_EQ(refused.code, 1) << entry_point;
    EXPECT_NE(refused.err.find("EntryPoint"), std::string::npos) << refused.err;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "x.aspkg"));
  }
  WriteAppManifest("/bin/app");
  EXPECT_EQ(Run({"image-package", "pack-application", "--package-directory", Path("app"),
                 "--destination", Path("x.aspkg"), "--key", Path("publisher.pem")})
                .code,
            0);
}

TEST_F(PublisherCli, PackingGivesThePeripheralsAManifestNamesTheirValuesFromTheTargetDefinition) {
  ASSERT_EQ(Run({"key", "generate", "--destination", Path("publisher.pem")}).code, 0);
  WriteAppManifest("/bin/app", R"({"Gpio": ["$SAMPLE_BUTTON_1", "$SAMPLE_LED", 20],
                                   "Uart": ["$SAMPLE_UART_LOOPBACK"],
                                   "Pwm": ["$SAMPLE_LED_PWM_CONTROLLER"]})");
  const std::vector<std::string> pack = {
      "image-package", "pack-application",   "--package-directory",
      Path("app"),     "--destination",      Path("blink.aspkg"),
      "--key",         Path("publisher.pem")};
  auto unnamed = Run(pack);
  EXPECT_EQ(unnamed.code, 1);
  EXPECT_NE(unnamed.err.find("$SAMPLE_BUTTON_1: give --hardware-definitions and "
                             "--target-definition-filename"),
            std::string::npos)
      << unnamed.err;

  auto with = pack;
  with.insert(with.end(), {"--hardware-definitions", ASPIS_HARDWARE_DEFINITIONS,
                           "--target-definition-filename", "sample_appliance.json"});
  auto packed = Run(with);
  ASSERT_EQ(packed.code, 0) << packed.err;
  auto shown =
      Run({"image-package", "show", "--image-package", Path("blink.aspkg"), "--output", "json"});
  ASSERT_EQ(shown.code, 0) << shown.err;
  const Json capabilities = json::Parse(shown.out)->at("app_manifest").at("Capabilities");
  EXPECT_EQ(capabilities.at("Gpio"), Json::parse("[12, 8, 20]"));
  EXPECT_EQ(capabilities.at("Uart"), Json::parse(R"(["ISU0"])"));
  EXPECT_EQ(capabilities.at("Pwm"), Json::parse(R"(["PWM-CONTROLLER-2"])"));
  // The payload holds the manifest as signed, which is what the device reads.
  auto source = package::FileSource::Open(dir_ / "blink.aspkg");
  ASSERT_TRUE(source);
  auto reader = package::Reader::Inspect(*source);
  ASSERT_TRUE(reader);
  std::ofstream payload(dir_ / "payload.tar.zst", std::ios::binary);
  ASSERT_TRUE(reader->StreamPayload([&](ByteView chunk) -> Expected<void> {
    payload.write(reinterpret_cast<const char*>(chunk.data()),
                  static_cast<std::streamsize>(chunk.size()));
    return {};
  }));
  payload.close();
  ASSERT_TRUE(package::UnpackArchive(dir_ / "payload.tar.zst", dir_ / "unpacked", 1 << 20));
  std::ifstream unpacked(dir_ / "unpacked" / "app_manifest.json");
  const auto inside = json::Parse(std::string(std::istreambuf_iterator<char>(unpacked), {}));
  ASSERT_TRUE(inside);
  EXPECT_EQ(inside->at("Capabilities"), capabilities);
  // The app's own directory keeps its names.
  std::ifstream original(dir_ / "app" / "app_manifest.json");
  EXPECT_NE(std::string(std::istreambuf_iterator<char>(original), {}).find("$SAMPLE_LED"),
            std::string::npos);

  WriteAppManifest("/bin/app", R"({"Uart": ["$SAMPLE_LED"]})");
  auto wrong = Run(with);
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("SAMPLE_LED is a Gpio, not a Uart"), std::string::npos) << wrong.err;
}

TEST_F(PublisherCli, GenerateHeaderWritesTheHeaderThatTestHeaderThenFindsUpToDate) {
  for (const char* name : {"mt3620.json", "mt3620_rdb.json", "sample_appliance.json"}) {
    std::filesystem::copy_file(std::filesystem::path(ASPIS_HARDWARE_DEFINITIONS) / name,
                               dir_ / name);
  }
  const std::vector<std::string> test = {"hardware-definition", "test-header",
                                         "--hardware-definition-file",
                                         Path("sample_appliance.json")};
  auto stale = Run(test);
  EXPECT_EQ(stale.code, 1);
  EXPECT_NE(stale.err.find("is not up to date"), std::string::npos) << stale.err;
  auto generated = Run({"hardware-definition", "generate-header", "--hardware-definition-file",
                        Path("sample_appliance.json")});
  ASSERT_EQ(generated.code, 0) << generated.err;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "inc" / "hw" / "sample_appliance.h"));
  EXPECT_EQ(Run(test).code, 0);
}

}  // namespace
// `aspis dev certificate`, as `azsphere device certificate`: the real CLI against aspisd's admin
// socket and the device's certificate store.
TEST(AspisDevCertificate, AnOperatorAddsListsShowsAndDeletesTheDevicesCertificates) {
  TempDir dir;
  auto store = device::board::CertStore::Open(dir / "certstore");
  ASSERT_TRUE(store) << store.error().message();
  auto admin = device::AdminSocket::Start(dir / "admin.sock", [&](const Json& request) {
    return device::HandleCertificateCommand(store->get(), request);
  });
  ASSERT_TRUE(admin) << admin.error().message();
  const auto now = Clock::TimePoint(std::chrono::system_clock::now());
  const auto ca = testing::MakeRoot(now);
  const auto key = *crypto::PrivateKey::GenerateP256();
  const auto cert = *crypto::Issue(ca.cert, ca.key, key.Public(),
                                   {.common_name = "device-7",
                                    .not_before = now - std::chrono::hours(1),
                                    .lifetime = std::chrono::hours(12),
                                    .client_auth = true});
  std::ofstream(dir / "ca.pem") << *ca.cert.ToPem();
  std::ofstream(dir / "client.pem") << *cert.ToPem();
  std::ofstream(dir / "client.key") << testing::EncryptedKeyPem(key, "sesame");
  const std::string socket = (dir / "admin.sock").string();
  const auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"dev", "certificate"});
    args.insert(args.end(), {"--socket", socket});
    std::ostringstream out, err;
    const int code = Main(args, out, err);
    return Result{code, out.str(), err.str()};
  };
  const auto added = run({"add", "--certificate", "radius-ca", "--cert-type", "rootca",
                          "--public-key-file", (dir / "ca.pem").string()});
  EXPECT_EQ(added.code, 0) << added.err;
  EXPECT_EQ(added.out, "added radius-ca\n");
  const auto wrong = run({"add", "-c", "device", "-t", "client", "--public-key-file",
                          (dir / "client.pem").string(), "--private-key-file",
                          (dir / "client.key").string(), "--private-key-password", "open sesame"});
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("the private key the certificate's, opened by the password given"),
            std::string::npos)
      << wrong.err;
  const auto client = run({"add", "-c", "device", "-t", "client", "--public-key-file",
                           (dir / "client.pem").string(), "--private-key-file",
                           (dir / "client.key").string(), "--private-key-password", "sesame"});
  EXPECT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(run({"list"}).out, "device\nradius-ca\n");
  const auto shown = run({"show", "-c", "device"});
  EXPECT_NE(shown.out.find("Type:        client"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("Subject:     CN=device-7"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("Issuer:      CN=root"), std::string::npos) << shown.out;
  const auto quota = run({"show-quota", "--output", "json"});
  const auto reply = json::Parse(quota.out, 4);
  ASSERT_TRUE(reply) << quota.out;
  EXPECT_EQ((*reply)["capacity_bytes"], 24576);
  EXPECT_LT((*reply)["available_bytes"].get<int>(), 24576);
  EXPECT_EQ(run({"delete", "-c", "device"}).out, "deleted device\n");
  const auto again = run({"delete", "-c", "device"});
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("no certificate has this identifier"), std::string::npos) << again.err;
  EXPECT_EQ((*store)->Identifiers(), (std::vector<std::string>{"radius-ca"}));
}

}  // namespace aspis::cli
