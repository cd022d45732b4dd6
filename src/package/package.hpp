#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/fd.hpp"
#include "crypto/dsse.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"
#include "package/manifest.hpp"

// The image package container (`.aspkg`, docs/formats/aspkg.md): the magic, a 4-byte big-endian
// length, a DSSE envelope (JSON) over the manifest, then exactly manifest.payload.size payload
// bytes, and nothing after them. One reader serves the service (uploads) and the device
// (downloads): the envelope is verified before any payload byte is read, the payload is hashed
// as it streams, and memory stays bounded whatever the package's size.
namespace aspis::package {

inline constexpr std::string_view kMagic = "ASPISPK1";
inline constexpr std::string_view kMediaType = "application/vnd.aspis.package";

// A package's header is the magic, the envelope's 4-byte length, and the envelope. HeaderLength
// reads the first kPrefixSize bytes and returns the header's whole length, so that a downloader
// can check the signed manifest before fetching the payload. Errors: kMalformed (too short, no
// magic), kTooLarge (an envelope over 4 MiB).
inline constexpr std::size_t kPrefixSize = kMagic.size() + 4;
Expected<std::uint64_t> HeaderLength(ByteView prefix);

// Where a package's bytes come from. Read fills at most buffer.size() bytes and returns how many;
// 0 only at the end.
class Source {
 public:
  virtual ~Source() = default;
  virtual Expected<std::size_t> Read(std::span<std::uint8_t> buffer) = 0;
};

// A file, read from its start. Errors: kIo.
class FileSource final : public Source {
 public:
  static Expected<FileSource> Open(const std::filesystem::path& path);
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;

 private:
  explicit FileSource(Fd fd) : fd_(std::move(fd)) {}
  Fd fd_;
};

// Bytes in memory (tests, fuzzing); `bytes` must outlive the source.
class MemorySource final : public Source {
 public:
  explicit MemorySource(ByteView bytes) : bytes_(bytes) {}
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;

 private:
  ByteView bytes_;
};

// Passes another source's bytes through, counting them and hashing them with SHA-256 on the way,
// so that a package is verified and its whole file hashed in one read.
class HashingSource final : public Source {
 public:
  // Errors: those of crypto::Sha256::Create.
  static Expected<HashingSource> Wrap(Source& inner);
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override;
  // The SHA-256 of everything read; call once, after the last Read.
  Expected<crypto::Digest> Finish() { return hash_.Finish(); }
  std::uint64_t count() const { return count_; }

 private:
  HashingSource(Source& inner, crypto::Sha256 hash) : inner_(&inner), hash_(std::move(hash)) {}
  Source* inner_;
  crypto::Sha256 hash_;
  std::uint64_t count_ = 0;
};

// Which publisher keys may sign which packages: the platform's OS publishers sign OS and board
// packages, the tenant's publishers sign apps. A null set trusts no one for those kinds.
struct Publishers {
  const crypto::dsse::TrustedKeys* os = nullptr;
  const crypto::dsse::TrustedKeys* apps = nullptr;
  std::size_t os_threshold = 1;  // signatures from distinct trusted keys needed
  std::size_t apps_threshold = 1;
};

// Reads one package from a Source, in one pass. Not thread-safe.
class Reader {
 public:
  // Reads the magic and the envelope, verifies the envelope with the publishers of the kind it
  // claims, and parses the manifest; reads none of the payload. Errors: kMalformed, kTooLarge,
  // kUntrusted (no trusted key of the right kind signed it), kIo.
  static Expected<Reader> Open(Source& source, const Publishers& publishers);
  // The same without verifying any signature, to show what a package says about itself. What it
  // returns must never be installed or trusted.
  static Expected<Reader> Inspect(Source& source);

  const Manifest& manifest() const { return manifest_; }
  const crypto::dsse::Envelope& envelope() const { return envelope_; }

  // Streams the payload to `sink` in chunks of at most 64 KiB while hashing it (the source is read
  // one chunk ahead, on another thread, while this one hashes), then checks that
  // it was exactly manifest().payload.size bytes with the declared SHA-256 and that nothing
  // follows. Bytes handed to `sink` are unverified until this returns success; on failure the
  // caller discards them. Errors: kMismatch (digest, or a payload shorter or longer than
  // declared), kIo, or the sink's error. Call at most once.
  Expected<void> StreamPayload(const std::function<Expected<void>(ByteView)>& sink);
  // StreamPayload into nothing: checks the payload.
  Expected<void> VerifyPayload();

 private:
  Reader(Source& source, crypto::dsse::Envelope envelope, Manifest manifest)
      : source_(&source), envelope_(std::move(envelope)), manifest_(std::move(manifest)) {}
  static Expected<crypto::dsse::Envelope> ReadEnvelope(Source& source);

  Source* source_;
  crypto::dsse::Envelope envelope_;
  Manifest manifest_;
  bool streamed_ = false;
};

// Writes a package to `destination` durably (temporary file, fsync, rename): `manifest` with its
// payload digest and size taken from `payload` (the bytes to store, already compressed as
// manifest.payload.compression says; unpacked_size is the caller's), signed by every key in
// `keys`. The payload is streamed, never held in memory. Errors: those of Validate, kIo.
Expected<Manifest> Write(Manifest manifest, const std::filesystem::path& payload,
                         std::span<const crypto::PrivateKey> keys,
                         const std::filesystem::path& destination);

}  // namespace aspis::package
