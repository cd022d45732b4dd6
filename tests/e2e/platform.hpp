#pragma once
// The platform the end-to-end update tests share: an OS publisher key, aspis-service trusting
// it, the operator's CLI logged in as platform administrator, and a tenant that accepts software
// roots of trust; root file systems packed and published as OS releases.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "e2e/processes.hpp"
#include "support/board.hpp"
#include "support/temp_dir.hpp"

namespace aspis::e2e {

class PlatformEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("ASPIS_CONFIG", (dir_ / "cli.json").c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    ASSERT_EQ(Run({"key", "generate", "--destination", Path("os.key")}), 0);
    service_ = std::make_unique<ServiceProcess>(dir_ / "service", dir_ / "os.key.pub");
    ASSERT_EQ(Run({"login", "--url", service_->url(), "--token", service_->admin_token(),
                   "--root-ca", service_->root_ca().string()}),
              0);
    tenant_ = Cli({"tenant", "create", "--name", "Contoso"}).value("id", "");
    ASSERT_FALSE(tenant_.empty());
    ASSERT_EQ(Run({"attestation-policy", "update", "--tenant", tenant_,
                   "--allow-software-root-of-trust", "true"}),
              0);
    WriteText(dir_ / "board.json", testing::SimBoardJson());
  }

  // Runs `aspis ARGS`; returns its exit code, keeping what it printed.
  int Run(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int code = cli::Main(args, out, err);
    output_ = out.str() + err.str();
    EXPECT_EQ(code, 0) << "aspis " << fmt::format("{}", fmt::join(args, " ")) << "\n" << output_;
    return code;
  }
  // `aspis ARGS --output json`.
  json::Json Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--output", "json"});
    if (Run(args) != 0) return json::Json::object();
    return json::Parse(output_).value_or(json::Json::object());
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // An OS tree as devices run it: `aspisd` at usr/sbin (this build's, unless given), a trust
  // bundle pinning the service's root CA and the OS publisher's key, and an init saying `init`.
  void BuildRootfs(const std::string& name, const std::string& init,
                   const std::filesystem::path& aspisd = ASPISD_BINARY) {
    const auto root = dir_ / name;
    std::filesystem::create_directories(root / "usr/sbin");
    std::filesystem::create_directories(root / "etc/aspis");
    std::filesystem::create_directories(root / "bin");
    std::filesystem::copy_file(aspisd, root / "usr/sbin/aspisd");
    WriteText(root / "etc/aspis/trust-bundle.pem",
              ReadText(service_->root_ca()) + ReadText(dir_ / "os.key.pub"));
    WriteText(root / "bin/init", init);
    std::filesystem::create_directory_symlink("bin", root / "sbin");
  }

  struct Published {
    std::string os_image;
    std::string board_image;
    json::Json os_package;  // what pack-os printed: its manifest and measurements
  };
  // Packs the tree `rootfs` as OS `version`, signed by the OS publisher, adds it (with a board
  // image, packed once) and publishes it to Retail Evaluation.
  Published PublishOs(const std::string& rootfs, const std::string& version, int security_version) {
    Published p;
    const std::string package = Path(rootfs + ".aspkg");
    p.os_package =
        Cli({"image-package", "pack-os", "--rootfs", Path(rootfs), "--destination", package,
             "--key", Path("os.key"), "--version", version, "--security-version",
             std::to_string(security_version), "--target-board", "mt3620-sim"});
    if (board_image_.empty()) {
      Cli({"image-package", "pack-board", "--board", Path("board.json"), "--destination",
           Path("board.aspkg"), "--key", Path("os.key"), "--version", "1", "--security-version",
           "1", "--target-board", "mt3620-sim"});
      board_image_ = Cli({"image", "add", "--image", Path("board.aspkg")}).value("id", "");
    }
    p.os_image = Cli({"image", "add", "--image", package}).value("id", "");
    p.board_image = board_image_;
    EXPECT_EQ(Cli({"os-release", "publish", "--image", p.os_image, "--board-image", board_image_,
                   "--feed", "retail-eval"})
                  .value("version", ""),
              version);
    return p;
  }

  testing::TempDir dir_;
  std::unique_ptr<ServiceProcess> service_;
  std::string tenant_;
  std::string output_;
  std::string board_image_;
};

}  // namespace aspis::e2e
