// Image packages arrive from publishers (uploads to the service) and from the network (device
// downloads); the reader parses their header, envelope and manifest before any signature is
// checked. Every input goes to the container reader, to the manifest parser and to the publisher
// key set's parser and verifier (seeds: packages and bare manifests, from fuzz/make-seeds). A
// manifest that parses must serialize and parse back to the same text.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "crypto/dsse.hpp"
#include "crypto/key.hpp"
#include "package/app_manifest.hpp"
#include "package/manifest.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"

namespace {

using namespace aspis;

// Serialize, parse back, serialize again: the two texts must be equal.
void CheckRoundTrip(const package::Manifest& manifest) {
  auto text = package::Serialize(manifest);
  if (!text) std::abort();  // ParseManifest validated it, so it must serialize
  auto again = package::ParseManifest(*text);
  if (!again) std::abort();
  auto text_again = package::Serialize(*again);
  if (!text_again || *text_again != *text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const crypto::PrivateKey key = *crypto::PrivateKey::GenerateP256();
  static const crypto::dsse::TrustedKeys trusted = [] {
    crypto::dsse::TrustedKeys keys;
    keys.Add(key.Public());
    return keys;
  }();
  const ByteView bytes(data, size);

  package::MemorySource source(bytes);
  if (auto reader = package::Reader::Inspect(source)) {
    CheckRoundTrip(reader->manifest());
    (void)crypto::dsse::Serialize(reader->envelope());
    (void)reader->VerifyPayload();
    // The same bytes through the verifying reader: no fuzzed input is signed by this key, so this
    // exercises the refusal of the signature check.
    package::MemorySource again(bytes);
    if (package::Reader::Open(again, {.os = &trusted, .apps = &trusted})) std::abort();
  }

  if (auto manifest = package::ParseManifest(AsString(bytes))) {
    CheckRoundTrip(*manifest);
    if (!manifest->app_manifest.empty()) (void)package::ParseAppManifest(manifest->app_manifest);
  }
  // An app's app_manifest.json, which the device parses strictly before it runs the app.
  (void)package::ParseAppManifest(AsString(bytes));

  // Publisher key sets come from tenants' uploads and, through the service, to devices.
  if (auto set = package::ParseKeySet(AsString(bytes))) {
    auto again = package::ParseKeySet(package::SerializeKeySet(*set));
    if (!again || again->RootFingerprint() != set->RootFingerprint()) std::abort();
  }
  if (auto envelope = crypto::dsse::Parse(AsString(bytes))) {
    (void)package::VerifyKeySet(*envelope, "t1", std::chrono::system_clock::now());
  }
  return 0;
}
