#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "package/app_manifest.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"

namespace aspis::testing {

// Signs the app tree `tree` (holding its app_manifest.json) with `key` into `destination`, as
// `aspis image-package pack-application` does, with a new image ID; returns the signed manifest.
// `adjust` may change the manifest before it is signed.
inline Expected<package::Manifest> PackApp(
    const std::filesystem::path& tree, const std::filesystem::path& destination,
    const crypto::PrivateKey& key, const std::string& version, std::uint64_t security_version = 1,
    const std::function<void(package::Manifest&)>& adjust = {}) {
  auto text = file::Read(tree / "app_manifest.json");
  if (!text) return std::unexpected(text.error());
  auto app = package::ParseAppManifest(AsString(*text));
  if (!app) return std::unexpected(app.error());
  const std::filesystem::path payload = destination.string() + ".payload";
  auto packed = package::PackDirectory(tree, payload);
  if (!packed) return std::unexpected(packed.error());
  package::Manifest m;
  m.image_id = *crypto::RandomUuid();
  m.component_id = app->component_id;
  m.name = app->name;
  m.kind = package::Kind::kApp;
  m.version = version;
  m.security_version = security_version;
  m.payload.compression = package::Compression::kZstd;
  m.payload.unpacked_size = packed->unpacked_size;
  m.app_manifest = AsString(*text);
  if (adjust) adjust(m);
  if (auto written = package::Write(m, payload, std::span(&key, 1), destination); !written) {
    return std::unexpected(written.error());
  }
  return m;
}

}  // namespace aspis::testing
