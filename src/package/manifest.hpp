#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/sha256.hpp"

// The signed manifest of an image package (docs/formats/aspkg.md): what the package is, who it is
// for, and the digest and size of its payload. It travels as the payload of a DSSE envelope of
// type kManifestType, so every field is covered by the publisher's signature.
namespace aspis::package {

inline constexpr std::string_view kManifestType = "application/vnd.aspis.package+json";
inline constexpr int kManifestSchema = 1;

enum class Kind { kApp, kRtApp, kOs, kBoard };
std::string_view KindName(Kind kind);  // "app", "rtapp", "os", "board"
std::optional<Kind> KindFromName(std::string_view name);
// Apps are signed by their tenant's publisher keys; OS and board packages by the platform's.
inline bool IsApp(Kind kind) { return kind == Kind::kApp || kind == Kind::kRtApp; }

enum class Compression { kNone, kZstd };
std::string_view CompressionName(Compression compression);  // "none", "zstd"

// What the decompressed payload is: a tar of files (apps, and OS root file systems for the
// simulator's directory slots), or a file system image written whole to a board's OS partition.
enum class PayloadFormat { kTar, kImage };

struct Payload {
  crypto::Digest sha256{};  // of the bytes stored in the package
  std::uint64_t size = 0;   // bytes stored in the package
  Compression compression = Compression::kZstd;
  std::uint64_t unpacked_size = 0;             // bytes once decompressed (equal to size when kNone)
  PayloadFormat format = PayloadFormat::kTar;  // kImage for OS packages only
};

// The largest payload a package may declare, stored or unpacked.
inline constexpr std::uint64_t kMaxPayloadSize = std::uint64_t{8} << 30;

struct Manifest {
  std::string image_id;      // UUID, new for every build: images are immutable
  std::string component_id;  // UUID naming the app (or OS, or board) across versions
  std::string name;
  Kind kind = Kind::kApp;
  std::string version;
  std::uint64_t security_version = 0;  // monotonic; a device refuses one below its counter
  Payload payload;
  // Boards the package is for (the device's board name must be listed); apps may list none, for
  // any board. OS and board packages list at least one.
  std::vector<std::string> target_boards;
  // Apps: their app_manifest.json (Azure Sphere's format), as compact JSON text whose ComponentId
  // equals component_id. Empty for OS and board packages.
  std::string app_manifest;
  // OS and board packages: the digests the device measures at launch when running this package,
  // by launch component ("os", "aspisd", "trust-bundle" for an OS; "board" for a board), so that
  // reference values come from the signed package. Empty for apps.
  std::map<std::string, crypto::Digest, std::less<>> measurements;
};

// Whether `s` is a lowercase UUID (8-4-4-4-12 hex digits), as image and component IDs are.
bool IsUuid(std::string_view s);

// Checks every rule of the format (field syntax, limits, which fields each kind has).
// Errors: kMalformed naming the field, kTooLarge.
Expected<void> Validate(const Manifest& manifest);

// The manifest as the JSON that is signed. Errors: those of Validate.
Expected<std::string> Serialize(const Manifest& manifest);
// Parses and validates; unknown fields and a schema other than kManifestSchema are refused.
// Errors: kMalformed, kTooLarge.
Expected<Manifest> ParseManifest(std::string_view json);

}  // namespace aspis::package
