#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "device/update/os_agent.hpp"
#include "package/package.hpp"

namespace aspis::device::update {

// The signed header (magic, envelope) of the package a slot directory was written from is kept
// beside it, as `<slot>.header`, so the OS a slot holds can be proven at boot.
std::filesystem::path SlotHeader(const std::filesystem::path& slot_dir);

// The verified manifest of the OS the slot directory holds, from its header. Refused
// (kRollback) when its security version is below `counter`, and (kInstall) when its signed "os"
// measurement is not `measured_os`: a slot booted below the anti-rollback counter (an owner who
// put an old tree or header back) does not run. Errors also: those of the package reader.
Expected<package::Manifest> CheckBootedOs(const std::filesystem::path& slot_dir,
                                          const package::Publishers& publishers,
                                          const crypto::Digest& measured_os, std::uint64_t counter);

// The simulator's slots: directories holding an OS root file system, written from the rootfs
// tar of an OS package. The tree is unpacked beside the slot, checked against the package's
// signed measurements, flushed (syncfs), and only then renamed into place, so the slot holds the
// old tree, nothing, or the whole new one, and a tree that does not measure as signed is never
// left in a slot.
class DirectorySlotWriter final : public SlotWriter {
 public:
  // `slot_dir` names each slot's directory; `publishers` verify the package again (they must
  // outlive the writer); `board` must be among the package's target boards.
  DirectorySlotWriter(std::function<std::filesystem::path(Slot)> slot_dir,
                      package::Publishers publishers, std::string board)
      : slot_dir_(std::move(slot_dir)), publishers_(publishers), board_(std::move(board)) {}

  Expected<package::Manifest> Write(Slot slot, const std::filesystem::path& package,
                                    const AcceptPackage& accept) override;

 private:
  std::function<std::filesystem::path(Slot)> slot_dir_;
  package::Publishers publishers_;
  std::string board_;
};

}  // namespace aspis::device::update
