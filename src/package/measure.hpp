#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "crypto/sha256.hpp"

// What a device measures at launch (DESIGN section 4), computed the same way by aspisd, which
// extends its root of trust with it, and by `aspis image-package pack-os|pack-board`, which records
// it in the signed package so that an OS release's reference values come from the package.
namespace aspis::package {

// Where an OS root file system holds the launch components aspisd measures besides the tree.
inline constexpr std::string_view kAspisdInRootfs = "usr/sbin/aspisd";
inline constexpr std::string_view kTrustBundleInRootfs = "etc/aspis/trust-bundle.pem";

// SHA-256 of a file's bytes; for a directory (an OS slot on the simulator), SHA-256 over its tree:
// every entry's relative path, type, permission bits and content digest (files) or target
// (symbolic links), in path order. Special files are refused. Errors: kNotFound, kIo,
// kInvalidArgument (a special file).
Expected<crypto::Digest> MeasurePath(const std::filesystem::path& path);

// SHA-256 of the first `length` bytes of a file or block device (an OS image in a partition larger
// than it), by path or through an open descriptor (read with pread: its offset is left alone).
// Errors: kNotFound, kIo, kCorrupt (fewer than `length` bytes).
Expected<crypto::Digest> MeasurePrefix(const std::filesystem::path& path, std::uint64_t length);
Expected<crypto::Digest> MeasurePrefix(int fd, std::uint64_t length);

// The launch measurements of an OS root file system: "os" (the tree), "aspisd" and
// "trust-bundle" (the files at the paths above). Errors: those of MeasurePath, naming what is
// missing.
Expected<std::map<std::string, crypto::Digest, std::less<>>> MeasureOsTree(
    const std::filesystem::path& rootfs);

}  // namespace aspis::package
