#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "device/update/os_agent.hpp"
#include "package/package.hpp"

namespace aspis::device::update {

// The signed header (magic, envelope) of the package a slot directory was written from is kept
// beside it, as `<slot>.header`, so the OS a slot holds can be proven at boot.
std::filesystem::path SlotHeader(const std::filesystem::path& slot_dir);

// The verified manifest of the OS a slot holds, from the slot's `header` (SlotHeader, or
// ImageSlotWriter::Header). Refused (kRollback) when its security version is below `counter`, and
// (kInstall) when its signed "os" measurement is not `measured_os`: a slot booted below the
// anti-rollback counter (an owner who put an old tree or header back) does not run. Errors also:
// those of the package reader.
Expected<package::Manifest> CheckBootedOs(const std::filesystem::path& header,
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

// Whether `mountinfo` (/proc/self/mountinfo's format) mounts the block device `major:minor`
// read-write anywhere (its mount or its file system's options say rw).
bool MountedReadWrite(std::string_view mountinfo, unsigned major, unsigned minor);

// Where ImageSlotWriter keeps the header of what partition `slot` holds: `<dir>/<A|B>.header`.
std::filesystem::path PartitionHeader(const std::filesystem::path& header_dir, Slot slot);

// A board's OS partitions: block devices (or, in tests, files) A and B, each written whole from
// an OS package whose payload is a file system image (payload format "image"). The image is
// decompressed straight into the partition, flushed, and read back to its signed "os"
// measurement. The package's signed header is kept in a directory of aspisd's state as
// `<A|B>.header`: removed (durably) before the partition is touched and written (durably) once the
// image checks, so a partition has a header only while it holds the whole image its header signs.
class ImageSlotWriter final : public SlotWriter {
 public:
  // `partitions` are A's and B's; `publishers` must outlive the writer; `board` must be among the
  // package's target boards.
  ImageSlotWriter(std::array<std::filesystem::path, 2> partitions, std::filesystem::path header_dir,
                  package::Publishers publishers, std::string board)
      : partitions_(std::move(partitions)),
        header_dir_(std::move(header_dir)),
        publishers_(publishers),
        board_(std::move(board)) {}

  // The header of what `slot` holds: PartitionHeader(header_dir, slot).
  std::filesystem::path Header(Slot slot) const { return PartitionHeader(header_dir_, slot); }
  const std::filesystem::path& Partition(Slot slot) const {
    return partitions_[slot == Slot::kA ? 0 : 1];
  }

  // Errors also: kInstall for an image larger than the partition, or that reads back other than
  // signed.
  Expected<package::Manifest> Write(Slot slot, const std::filesystem::path& package,
                                    const AcceptPackage& accept) override;

 private:
  std::array<std::filesystem::path, 2> partitions_;
  std::filesystem::path header_dir_;
  package::Publishers publishers_;
  std::string board_;
};

}  // namespace aspis::device::update
