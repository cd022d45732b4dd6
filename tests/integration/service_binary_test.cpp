// The aspis-service executable: configuration file, first start, graceful stop on SIGTERM.
#include <gtest/gtest.h>

#include <fstream>

#include "core/file.hpp"
#include "crypto/tls.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace aspis::service {
namespace {

using testing::TempDir;

void WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(ServiceBinary, StartsFromAConfigFileAndStopsCleanlyOnSigterm) {
  TempDir dir;
  const int port = testing::FreePort();
  const auto data = dir / "data";
  WriteText(dir / "aspis-service.toml",
            "data = \"" + data.string() + "\"\nlisten = \"127.0.0.1:" + std::to_string(port) +
                "\"\nthreads = 1\nmaster-key = \"" + (dir / "master.key").string() +
                "\"\nadmin-token-file = \"" + (dir / "admin-token").string() + "\"\n");
  testing::BackgroundProcess service(
      {ASPIS_SERVICE_BINARY, "--config", (dir / "aspis-service.toml").string()}, std::nullopt,
      SIGTERM, (dir / "service.log").string());
  ASSERT_TRUE(testing::WaitForPort(port));

  auto root = crypto::Certificate::FromPem(
      std::string(AsString(*file::Read(data / "root-ca.pem", file::kSmallFileLimit))));
  ASSERT_TRUE(root);
  wire::HttpsClient client({"127.0.0.1", static_cast<std::uint16_t>(port)},
                           *crypto::tls::ClientContext(std::vector{*root}));
  auto health = client.Send("GET", "/healthz");
  ASSERT_TRUE(health) << health.error().message();
  EXPECT_EQ(health->status, 200);
  EXPECT_TRUE(std::filesystem::exists(dir / "master.key"));
  EXPECT_TRUE(std::filesystem::exists(dir / "admin-token"));
  // `admin-token` finds the data directory and the token file in the same configuration file.
  const std::string first_token(AsString(*file::Read(dir / "admin-token")));
  auto rotated =
      testing::RunProcess({ASPIS_SERVICE_BINARY, "--config", (dir / "aspis-service.toml").string(),
                           "admin-token", "rotate"});
  EXPECT_EQ(rotated.exit_code, 0) << rotated.output;
  EXPECT_NE(rotated.output.find("Revoked 1 platform administrator token"), std::string::npos)
      << rotated.output;
  EXPECT_NE(AsString(*file::Read(dir / "admin-token")), first_token);

  EXPECT_EQ(service.Stop(), 0);
}

TEST(ServiceBinary, FlagsOverrideTheConfigFile) {
  TempDir dir;
  const int port = testing::FreePort();
  WriteText(dir / "aspis-service.toml", "data = \"" + (dir / "data").string() +
                                            "\"\nlisten = \"127.0.0.1:1\"\nmaster-key = \"" +
                                            (dir / "master.key").string() + "\"\n");
  testing::BackgroundProcess service({ASPIS_SERVICE_BINARY, "--config",
                                      (dir / "aspis-service.toml").string(), "--listen",
                                      "127.0.0.1:" + std::to_string(port)});
  EXPECT_TRUE(testing::WaitForPort(port));
  EXPECT_EQ(service.Stop(), 0);
}

TEST(ServiceBinary, RefusesAConfigFileWithAnUnknownSetting) {
  TempDir dir;
  WriteText(dir / "aspis-service.toml",
            "data = \"" + (dir / "data").string() + "\"\nlisten_port = 8443\n");
  auto result = testing::RunProcess(
      {ASPIS_SERVICE_BINARY, "--config", (dir / "aspis-service.toml").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("listen_port"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "data"));
}

TEST(ServiceBinary, RefusesAMissingConfigFile) {
  TempDir dir;
  auto result =
      testing::RunProcess({ASPIS_SERVICE_BINARY, "--config", (dir / "missing.toml").string()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("missing.toml"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace aspis::service
