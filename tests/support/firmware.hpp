#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/file.hpp"
#include "device/update/boot/platform/environment_bootloaders.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "support/process.hpp"

// Each bootloader's boot script, played at power-on against the environment its backend writes
// (RAUC's scripts), for tests of the A/B contract.
namespace aspis::testing {

using device::update::Bootloader;
using device::update::GrubBootloader;
using device::update::ParseSlot;
using device::update::SimulatedBootloader;
using device::update::Slot;
using device::update::SlotName;
using device::update::UBootBootloader;
namespace fs = std::filesystem;

// What a bootloader does at power-on, against the environment its backend wrote.
class Firmware {
 public:
  virtual ~Firmware() = default;
  virtual Bootloader& boot() = 0;
  // Powers on: the boot script picks the slot, updating its environment. Returns the slot.
  virtual Slot PowerOn() = 0;
};

class SimulatorFirmware final : public Firmware {
 public:
  explicit SimulatorFirmware(const fs::path& dir)
      : boot_(*SimulatedBootloader::Open(file::RealFileSystem(), dir)) {}
  Bootloader& boot() override { return boot_; }
  Slot PowerOn() override { return *boot_.Boot("boot-" + std::to_string(++boots_)); }

 private:
  SimulatedBootloader boot_;
  int boots_ = 0;
};

// Sets the kernel command line the boot script passes.
inline void BootInto(const fs::path& cmdline, Slot slot) {
  std::ofstream(cmdline) << "console=ttyS0 root=/dev/mmcblk0p2 aspis.slot=" << SlotName(slot)
                         << " ro\n";
}

inline std::string Output(const std::vector<std::string>& argv) {
  auto result = RunProcess(argv);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  std::string out = result.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// RAUC's U-Boot script: the first slot of BOOT_ORDER with boots left loses one and boots.
class UBootFirmware final : public Firmware {
 public:
  explicit UBootFirmware(const fs::path& dir)
      : config_(dir / "fw_env.config"), cmdline_(dir / "cmdline") {
    const fs::path env = dir / "uboot.env";
    std::ofstream(env, std::ios::binary) << std::string(0x4000, '\0');
    std::ofstream(config_) << env.string() << " 0x0000 0x4000\n";
    auto opened = UBootBootloader::Open(config_, cmdline_);
    EXPECT_TRUE(opened) << opened.error().message();
    if (opened) boot_ = std::move(*opened);
  }
  Bootloader& boot() override { return *boot_; }
  Slot PowerOn() override {
    const std::string order = Get("BOOT_ORDER");
    Slot chosen = *ParseSlot(order.substr(0, 1));
    for (const std::string& name : {order.substr(0, 1), order.substr(2, 1)}) {
      const int left = std::stoi(Get("BOOT_" + name + "_LEFT"));
      if (left > 0) {
        Output({"fw_setenv", "-c", config_.string(), "BOOT_" + name + "_LEFT",
                std::to_string(left - 1)});
        chosen = *ParseSlot(name);
        break;
      }
    }
    BootInto(cmdline_, chosen);
    return chosen;
  }

 private:
  std::string Get(const std::string& name) {
    return Output({"fw_printenv", "-c", config_.string(), "-n", name});
  }
  fs::path config_, cmdline_;
  std::unique_ptr<UBootBootloader> boot_;
};

// RAUC's GRUB script: the first slot of ORDER that is OK and not yet tried is marked tried and
// boots.
class GrubFirmware final : public Firmware {
 public:
  explicit GrubFirmware(const fs::path& dir) : envblk_(dir / "grubenv"), cmdline_(dir / "cmdline") {
    auto opened = GrubBootloader::Open(envblk_, cmdline_);
    EXPECT_TRUE(opened) << opened.error().message();
    if (opened) boot_ = std::move(*opened);
  }
  Bootloader& boot() override { return *boot_; }
  Slot PowerOn() override {
    std::map<std::string, std::string> env;
    std::istringstream lines(Output({"grub-editenv", envblk_.string(), "list"}));
    for (std::string line; std::getline(lines, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
    }
    const std::string order = env["ORDER"];
    Slot chosen = *ParseSlot(order.substr(0, 1));
    for (const std::string& name : {order.substr(0, 1), order.substr(2, 1)}) {
      if (env[name + "_OK"] == "1" && env[name + "_TRY"] == "0") {
        Output({"grub-editenv", envblk_.string(), "set", name + "_TRY=1"});
        chosen = *ParseSlot(name);
        break;
      }
    }
    BootInto(cmdline_, chosen);
    return chosen;
  }

 private:
  fs::path envblk_, cmdline_;
  std::unique_ptr<GrubBootloader> boot_;
};

}  // namespace aspis::testing
