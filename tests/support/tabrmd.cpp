#include "support/tabrmd.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace aspis::testing {

namespace {

constexpr char kBusVariable[] = "DBUS_SESSION_BUS_ADDRESS";

bool Eventually(const auto& ready) {
  for (int i = 0; i < 200; ++i) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// One session bus for the whole test process: GLib keeps the process's first connection to it
// for good, so the bus must outlive every broker. Stopped when the process exits.
class SessionBus {
 public:
  SessionBus() {
    if (std::getenv(kBusVariable) != nullptr) {  // NOLINT(concurrency-mt-unsafe)
      throw std::runtime_error("a D-Bus session bus is already set for this process");
    }
    const auto socket = dir_.path() / "bus";
    const std::string address = "unix:path=" + socket.string();
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"dbus-daemon", "--session", "--nofork", "--nopidfile",
                                 "--address=" + address},
        std::nullopt, 15, (dir_.path() / "dbus.log").string());
    if (!Eventually([&] { return std::filesystem::exists(socket); })) {
      throw std::runtime_error("dbus-daemon did not start");
    }
    ::setenv(kBusVariable, address.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  }

 private:
  TempDir dir_;
  std::unique_ptr<BackgroundProcess> process_;
};

void EnsureSessionBus() { static const SessionBus bus; }

}  // namespace

Tabrmd::Tabrmd(SwtpmOptions options) : swtpm_(options) {
  static int instances = 0;
  bus_name_ =
      "com.aspis.test.Tabrmd" + std::to_string(::getpid()) + "x" + std::to_string(++instances);
  EnsureSessionBus();
  broker_ = std::make_unique<BackgroundProcess>(
      std::vector<std::string>{"tpm2-abrmd", "--session", "--allow-root", "--flush-all",
                               "--dbus-name=" + bus_name_, "--tcti=" + swtpm_.Tcti()},
      std::nullopt, 15, (dir_.path() / "tabrmd.log").string());
  const bool ready = Eventually([&] {
    return broker_->running() &&
           RunProcess({"tpm2_getrandom", "-T", Tcti(), "--hex", "8"}).exit_code == 0;
  });
  if (!ready) throw std::runtime_error("tpm2-abrmd did not start as " + bus_name_);
}

Tabrmd::~Tabrmd() { broker_->Stop(); }

std::string Tabrmd::Tcti() const { return "tabrmd:bus_type=session,bus_name=" + bus_name_; }

}  // namespace aspis::testing
