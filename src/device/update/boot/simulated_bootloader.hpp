#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/file.hpp"
#include "device/update/boot/bootloader.hpp"

namespace aspis::device::update {

// The virtual board's bootloader: slots are the directories `a` and `b` under one directory,
// and its environment is `boot-env.json` beside them, written durably through `fs`. Boot() plays
// the firmware's part at power-on; a reboot is a new boot ID and aspisd started again.
class SimulatedBootloader final : public Bootloader {
 public:
  // Errors: kCorrupt for an environment that cannot be read.
  static Expected<SimulatedBootloader> Open(file::FileSystem& fs, std::filesystem::path dir);

  // The firmware at power-on, once per boot ID: boots the first slot of the order with tries
  // left and takes one try from it (when neither has any, the first of the order boots, so the
  // device is never left without a system). Called again with the same boot ID (aspisd started
  // again within one boot), it changes nothing. Returns the slot booted.
  Expected<Slot> Boot(std::string_view boot_id);
  std::filesystem::path SlotDir(Slot slot) const;
  // Tries left for `slot`, for tests and status.
  int TriesLeft(Slot slot) const { return tries_[Index(slot)]; }

  std::string_view Backend() const override { return "simulator"; }
  Expected<Slot> Booted() override;
  Expected<void> TryNext(Slot slot) override;
  Expected<void> MarkGood(Slot slot) override;
  Expected<void> MarkBad(Slot slot) override;

 private:
  SimulatedBootloader(file::FileSystem& fs, std::filesystem::path dir)
      : fs_(&fs), dir_(std::move(dir)) {}
  static std::size_t Index(Slot slot) { return slot == Slot::kA ? 0 : 1; }
  Expected<void> Save();

  file::FileSystem* fs_;
  std::filesystem::path dir_;
  Slot first_ = Slot::kA;  // the boot order: first_, then the other
  int tries_[2] = {kBootTries, kBootTries};
  std::string booted_;  // "A", "B", or empty before the first boot
  std::string boot_id_;
};

}  // namespace aspis::device::update
