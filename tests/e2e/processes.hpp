#pragma once

// The end-to-end tests' processes: aspis-service and aspisd as their own processes, on free ports,
// driven as an operator would (the CLI, the admin socket).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "cli/cli.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "support/board.hpp"
#include "support/process.hpp"
#include "wire/https_client.hpp"

namespace aspis::e2e {

using json::Json;
using namespace std::chrono_literals;

inline void WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string ReadText(const std::filesystem::path& path) {
  auto bytes = file::Read(path, file::kSmallFileLimit);
  return bytes ? std::string(AsString(*bytes)) : std::string();
}

// aspis-service in its own process, restartable on the same data directory and port.
class ServiceProcess {
 public:
  // `os_publisher_keys`: the PEM public keys that sign OS and board packages, when any.
  explicit ServiceProcess(const std::filesystem::path& dir,
                          std::filesystem::path os_publisher_keys = {})
      : dir_(dir), port_(testing::FreePort()), os_publisher_keys_(std::move(os_publisher_keys)) {
    // The master key and the admin token file go beside the data directory, not in it.
    std::filesystem::create_directories(dir_);
    Start();
    admin_ = ReadText(dir_ / "admin-token");
    admin_ = admin_.substr(0, admin_.find('\n'));
  }

  void Start() {
    std::vector<std::string> argv{ASPIS_SERVICE_BINARY,
                                  "--data",
                                  (dir_ / "data").string(),
                                  "--master-key",
                                  (dir_ / "master.key").string(),
                                  "--admin-token-file",
                                  (dir_ / "admin-token").string(),
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(port_),
                                  "--threads",
                                  "2"};
    if (!tpm_ca_dir_.empty()) argv.insert(argv.end(), {"--tpm-ca-dir", tpm_ca_dir_.string()});
    if (!os_publisher_keys_.empty()) {
      argv.insert(argv.end(), {"--os-publisher-keys", os_publisher_keys_.string()});
    }
    process_ = std::make_unique<testing::BackgroundProcess>(argv, std::nullopt, SIGTERM,
                                                            (dir_ / "service.log").string());
    ASSERT_TRUE(testing::WaitForPort(port_)) << ReadText(dir_ / "service.log");
  }
  int Stop() { return process_->Stop(); }
  // Restarts the service trusting the TPM manufacturer CAs in `dir`.
  void TrustTpmManufacturer(const std::filesystem::path& dir) {
    ASSERT_EQ(Stop(), 0);
    tpm_ca_dir_ = dir;
    Start();
  }

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  const std::string& admin_token() const { return admin_; }
  std::filesystem::path root_ca() const { return dir_ / "data/root-ca.pem"; }

  wire::HttpResponse Call(const std::string& method, const std::string& target,
                          const Json& body = nullptr) const {
    const auto root = *crypto::Certificate::FromPem(ReadText(root_ca()));
    wire::HttpsClient client({"127.0.0.1", static_cast<std::uint16_t>(port_)},
                             *crypto::tls::ClientContext(std::vector{root}));
    auto response = client.Send(method, target, body.is_null() ? "" : body.dump(),
                                {{"Authorization", "Bearer " + admin_}});
    EXPECT_TRUE(response) << response.error().message();
    return response ? *response : wire::HttpResponse{};
  }

  Json CallJson(const std::string& method, const std::string& target,
                const Json& body = nullptr) const {
    return json::Parse(Call(method, target, body).body).value_or(Json::object());
  }

 private:
  std::filesystem::path dir_;
  int port_;
  std::string admin_;
  std::filesystem::path tpm_ca_dir_;
  std::filesystem::path os_publisher_keys_;
  std::unique_ptr<testing::BackgroundProcess> process_;
};

// One aspisd with its own state, OS image, board file, boot ID and admin socket.
class DeviceProcess {
 public:
  // By default the device's OS is a small tree of its own and it pins the service's root CA;
  // `os_image` and `trust_bundle` replace them (an OS tree packed and published, whose trust
  // bundle holds the OS publishers' keys).
  DeviceProcess(const std::filesystem::path& dir, const ServiceProcess& service,
                std::string tcti = {}, std::filesystem::path os_image = {},
                std::filesystem::path trust_bundle = {})
      : dir_(dir),
        service_(service),
        tcti_(std::move(tcti)),
        os_image_(os_image.empty() ? dir / "os" : std::move(os_image)),
        trust_bundle_(trust_bundle.empty() ? service.root_ca() : std::move(trust_bundle)) {
    std::filesystem::create_directories(dir_ / "os/bin");
    WriteText(dir_ / "os/bin/init", "aspis os 24.10");
    WriteText(dir_ / "board.json", testing::BoardJson("mt3620-sim"));
    WriteText(dir_ / "boot_id", "boot-1\n");
    std::vector<std::string> init = {
        ASPISD_BINARY, "identity", "init",
        "--state",     State(),    "--output",
        "json",        "--rot",    tcti_.empty() ? "software" : "tpm2"};
    if (!tcti_.empty()) init.insert(init.end(), {"--tcti", tcti_});
    auto result = testing::RunProcess(init);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    const auto start = result.output.find('{');
    id_ = json::Parse(result.output.substr(start == std::string::npos ? 0 : start))
              .value_or(Json::object())
              .value("device_id", "");
  }

  // Runs `aspisd run` with `extra` options after the usual ones.
  void Start(const std::vector<std::string>& extra = {}) {
    auto argv = RunArgv();
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<testing::BackgroundProcess>(argv, std::nullopt, SIGTERM,
                                                            (dir_ / "aspisd.log").string());
  }
  int Stop(int signal = 0) { return process_->Stop(signal); }

  // The `aspisd run` command line of this device.
  std::vector<std::string> RunArgv() const {
    std::vector<std::string> argv = {ASPISD_BINARY,
                                     "run",
                                     "--state",
                                     State(),
                                     "--service",
                                     service_.url(),
                                     "--trust-bundle",
                                     trust_bundle_.string(),
                                     "--os-image",
                                     os_image_.string(),
                                     "--board",
                                     (dir_ / "board.json").string(),
                                     "--admin-socket",
                                     Socket(),
                                     "--boot-id-file",
                                     (dir_ / "boot_id").string(),
                                     "--retry-max-seconds",
                                     "2",
                                     "--os-version",
                                     "24.10"};
    if (!tcti_.empty()) argv.insert(argv.end(), {"--rot", "tpm2", "--tcti", tcti_});
    return argv;
  }

  // `aspis dev status --output json`, as an operator on the device would run it.
  Json Status() const { return Cli({"dev", "status", "--socket", Socket(), "--output", "json"}); }
  Json Attest() const { return Cli({"dev", "attest", "--socket", Socket(), "--output", "json"}); }

  // Waits (bounded) until the status satisfies `ready`; returns the last status seen.
  Json WaitFor(const std::function<bool(const Json&)>& ready) const {
    Json status;
    for (const auto deadline = std::chrono::steady_clock::now() + 60s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(100ms)) {
      status = Status();
      if (ready(status)) return status;
    }
    ADD_FAILURE() << "device never reached the expected state; last status " << status.dump()
                  << "\naspisd log:\n"
                  << ReadText(dir_ / "aspisd.log");
    return status;
  }
  Json WaitForVerdict(const std::string& verdict) const {
    return WaitFor([&](const Json& s) {
      return s.is_object() && s.contains("attestation") &&
             s["attestation"].value("verdict", "") == verdict;
    });
  }

  const std::string& id() const { return id_; }
  std::string State() const { return (dir_ / "state").string(); }
  std::string Socket() const { return (dir_ / "admin.sock").string(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static Json Cli(const std::vector<std::string>& args);

  std::filesystem::path dir_;
  const ServiceProcess& service_;
  std::string tcti_;
  std::filesystem::path os_image_;
  std::filesystem::path trust_bundle_;
  std::string id_;
  std::unique_ptr<testing::BackgroundProcess> process_;
};

inline Json DeviceProcess::Cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  if (cli::Main(args, out, err) != 0) return Json();
  return json::Parse(out.str()).value_or(Json());
}

}  // namespace aspis::e2e
