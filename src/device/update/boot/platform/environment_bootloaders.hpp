#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "device/update/boot/bootloader.hpp"

// Bootloaders of real boards, whose A/B state is variables of the bootloader's environment and
// whose boot script names the booted slot on the kernel command line (aspis.slot=A or B), in
// RAUC's conventions so existing boot scripts serve:
// - U-Boot (libubootenv, the environment fw_printenv/fw_setenv read): BOOT_ORDER ("A B"),
//   BOOT_A_LEFT and BOOT_B_LEFT (boots left; the script takes one per boot and skips a slot at 0).
// - GRUB (the environment block grub-editenv writes): ORDER ("A B"), A_OK/B_OK (1 while the slot
//   may boot) and A_TRY/B_TRY (set to 1 by the script when it boots the slot, so a slot gets one
//   boot until it is marked good).
namespace aspis::device::update {

// The slot the kernel command line at `cmdline` names (aspis.slot=A|B). Errors: kBadState when it
// names none, kNotFound.
Expected<Slot> SlotFromCommandLine(const std::filesystem::path& cmdline);

class UBootBootloader final : public Bootloader {
 public:
  // `config` is the fw_env.config naming where the environment lives; an environment that was
  // never written (no valid copy) starts as BOOT_ORDER "A B" with kBootTries each. Errors: those
  // of libubootenv, as kIo.
  static Expected<std::unique_ptr<UBootBootloader>> Open(std::filesystem::path config,
                                                         std::filesystem::path cmdline);
  std::string_view Backend() const override { return "u-boot"; }
  Expected<Slot> Booted() override { return SlotFromCommandLine(cmdline_); }
  Expected<void> TryNext(Slot slot) override;
  Expected<void> MarkGood(Slot slot) override;
  Expected<void> MarkBad(Slot slot) override;

 private:
  UBootBootloader(std::filesystem::path config, std::filesystem::path cmdline)
      : config_(std::move(config)), cmdline_(std::move(cmdline)) {}
  // Sets `values` and stores the environment.
  Expected<void> Set(const std::map<std::string, std::string>& values);

  std::filesystem::path config_;
  std::filesystem::path cmdline_;
};

class GrubBootloader final : public Bootloader {
 public:
  // `envblk` is GRUB's environment block (created by grub-editenv when missing, with ORDER
  // "A B" and both slots OK). Errors: kIo when grub-editenv fails.
  static Expected<std::unique_ptr<GrubBootloader>> Open(std::filesystem::path envblk,
                                                        std::filesystem::path cmdline);
  std::string_view Backend() const override { return "grub"; }
  Expected<Slot> Booted() override { return SlotFromCommandLine(cmdline_); }
  Expected<void> TryNext(Slot slot) override;
  Expected<void> MarkGood(Slot slot) override;
  Expected<void> MarkBad(Slot slot) override;

 private:
  GrubBootloader(std::filesystem::path envblk, std::filesystem::path cmdline)
      : envblk_(std::move(envblk)), cmdline_(std::move(cmdline)) {}
  Expected<void> Set(const std::map<std::string, std::string>& values);

  std::filesystem::path envblk_;
  std::filesystem::path cmdline_;
};

}  // namespace aspis::device::update
