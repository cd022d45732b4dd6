#include "package/package.hpp"

#include <fcntl.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <stop_token>
#include <system_error>
#include <thread>

#include "core/file.hpp"
#include "crypto/errors.hpp"
#include "crypto/sha256.hpp"
#include "package/errors.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kChunk = std::size_t{64} << 10;

Error IoError(std::string_view what) {
  return Error(PackageErrc::kIo, std::string(what) + ": " + std::generic_category().message(errno));
}

// Reads exactly buffer.size() bytes unless the source ends first; returns how many were read.
Expected<std::size_t> ReadFull(Source& source, std::span<std::uint8_t> buffer) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    auto n = source.Read(buffer.subspan(done));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
    done += *n;
  }
  return done;
}

Expected<void> Verified(const crypto::dsse::Envelope& envelope, const Manifest& claimed,
                        const Publishers& publishers) {
  const crypto::dsse::TrustedKeys* keys = IsApp(claimed.kind) ? publishers.apps : publishers.os;
  const std::string_view who = IsApp(claimed.kind) ? "the tenant's app" : "the platform's OS";
  if (keys == nullptr || keys->empty()) {
    return Fail(PackageErrc::kUntrusted,
                "none of " + std::string(who) + " publisher keys is trusted here, so this " +
                    std::string(KindName(claimed.kind)) + " package cannot be verified");
  }
  auto payload = crypto::dsse::Verify(
      envelope, kManifestType, *keys,
      IsApp(claimed.kind) ? publishers.apps_threshold : publishers.os_threshold);
  if (!payload) {
    std::string signers;
    for (const auto& s : envelope.signatures) {
      signers += (signers.empty() ? "" : ", ") + s.keyid.substr(0, 16);
    }
    return Fail(payload.error().code() == crypto::CryptoErrc::kUntrusted ? PackageErrc::kUntrusted
                                                                         : PackageErrc::kIo,
                "the " + std::string(KindName(claimed.kind)) + " package is not signed by one of " +
                    std::string(who) + " publisher keys (signed by key id " +
                    (signers.empty() ? "none" : signers) + "): " + payload.error().message());
  }
  return {};
}

}  // namespace

Expected<FileSource> FileSource::Open(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(IoError("opening " + path.string()));
  return FileSource(std::move(fd));
}

Expected<std::size_t> FileSource::Read(std::span<std::uint8_t> buffer) {
  for (;;) {
    const ssize_t n = ::read(fd_.get(), buffer.data(), buffer.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return std::unexpected(IoError("reading the package"));
  }
}

Expected<std::size_t> MemorySource::Read(std::span<std::uint8_t> buffer) {
  const std::size_t n = std::min(buffer.size(), bytes_.size());
  std::copy_n(bytes_.begin(), n, buffer.begin());
  bytes_ = bytes_.subspan(n);
  return n;
}

Expected<HashingSource> HashingSource::Wrap(Source& inner) {
  auto hash = crypto::Sha256::Create();
  if (!hash) return std::unexpected(hash.error());
  return HashingSource(inner, std::move(*hash));
}

Expected<std::size_t> HashingSource::Read(std::span<std::uint8_t> buffer) {
  auto n = inner_->Read(buffer);
  if (!n || *n == 0) return n;
  if (auto ok = hash_.Update(ByteView(buffer.data(), *n)); !ok) return std::unexpected(ok.error());
  count_ += *n;
  return n;
}

Expected<std::uint64_t> HeaderLength(ByteView prefix) {
  if (prefix.size() < kMagic.size() || !std::equal(kMagic.begin(), kMagic.end(), prefix.begin())) {
    return Fail(PackageErrc::kMalformed, "not an Aspis image package (no ASPISPK1 magic)");
  }
  if (prefix.size() < kPrefixSize) {
    return Fail(PackageErrc::kMalformed, "the package ends in its header");
  }
  std::uint32_t length = 0;
  for (std::size_t i = kMagic.size(); i < kPrefixSize; ++i) length = (length << 8) | prefix[i];
  if (length > crypto::dsse::kMaxEnvelopeSize) {
    return Fail(PackageErrc::kTooLarge, "the package's signed manifest is larger than 4 MiB");
  }
  return kPrefixSize + length;
}

Expected<crypto::dsse::Envelope> Reader::ReadEnvelope(Source& source) {
  std::array<std::uint8_t, kPrefixSize> header{};
  auto got = ReadFull(source, header);
  if (!got) return std::unexpected(got.error());
  auto header_length = HeaderLength(ByteView(header.data(), *got));
  if (!header_length) return std::unexpected(header_length.error());
  const auto length = static_cast<std::size_t>(*header_length - kPrefixSize);
  Bytes json(length);
  got = ReadFull(source, json);
  if (!got) return std::unexpected(got.error());
  if (*got < length) return Fail(PackageErrc::kMalformed, "the package ends in its manifest");
  auto envelope = crypto::dsse::Parse(AsString(json));
  if (!envelope) {
    return Fail(PackageErrc::kMalformed, "the package's signed manifest is not a DSSE envelope: " +
                                             envelope.error().message());
  }
  if (envelope->payload_type != kManifestType) {
    return Fail(PackageErrc::kMalformed, "the package's envelope holds \"" +
                                             envelope->payload_type.substr(0, 64) +
                                             "\", not a package manifest");
  }
  return envelope;
}

Expected<Reader> Reader::Inspect(Source& source) {
  auto envelope = ReadEnvelope(source);
  if (!envelope) return std::unexpected(envelope.error());
  auto manifest = ParseManifest(AsString(envelope->payload));
  if (!manifest) return std::unexpected(manifest.error());
  return Reader(source, std::move(*envelope), std::move(*manifest));
}

Expected<Reader> Reader::Open(Source& source, const Publishers& publishers) {
  auto reader = Inspect(source);
  if (!reader) return reader;
  // The kind the unverified manifest claims picks the keys; the signature then covers that claim,
  // so an OS key cannot sign an app and a tenant key cannot sign an OS.
  if (auto ok = Verified(reader->envelope_, reader->manifest_, publishers); !ok) {
    return std::unexpected(ok.error());
  }
  return reader;
}

namespace {

// Reads `length` bytes of a source one chunk ahead of their consumer, on a thread of its own, so
// that copying them (out of the page cache, say) overlaps the hashing instead of adding to it.
// Two chunks of memory. After the `length` bytes it reads one more, to tell whether the source
// ends there.
class ReadAhead {
 public:
  ReadAhead(Source& source, std::uint64_t length)
      : source_(source),
        left_(length),
        reader_([this](const std::stop_token& stop) { Run(stop); }) {}
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;
  ~ReadAhead() {
    reader_.request_stop();
    changed_.notify_all();
  }

  // The next chunk, valid until the next call; empty once the bytes are through or the source
  // ended early (see left()). Errors: the source's.
  Expected<ByteView> Next() {
    std::unique_lock lock(mutex_);
    if (handed_out_) {
      ++released_;
      handed_out_ = false;
      changed_.notify_all();
    }
    changed_.wait(lock, [this] { return filled_ > released_ || finished_; });
    if (filled_ > released_) {
      handed_out_ = true;
      const std::size_t slot = released_ % 2;
      return ByteView(chunks_[slot].data(), sizes_[slot]);
    }
    if (error_) return std::unexpected(*error_);
    return ByteView();
  }
  // Bytes the source did not give (it ended early); meaningful once Next returned empty.
  std::uint64_t left() const {
    const std::lock_guard lock(mutex_);
    return left_;
  }
  // Whether the source had more than `length` bytes; meaningful once Next returned empty.
  bool more() const {
    const std::lock_guard lock(mutex_);
    return more_;
  }

 private:
  void Run(const std::stop_token& stop) {
    for (;;) {
      std::size_t slot = 0;
      std::uint64_t left = 0;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, stop, [this] { return filled_ - released_ < 2; });
        if (stop.stop_requested()) return;
        slot = filled_ % 2;
        left = left_;
      }
      if (left == 0) {
        std::uint8_t extra = 0;
        auto after = source_.Read(std::span(&extra, 1));
        const std::lock_guard lock(mutex_);
        if (!after) error_ = after.error();
        more_ = after && *after != 0;
        finished_ = true;
        changed_.notify_all();
        return;
      }
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, kChunk));
      auto n = source_.Read(std::span(chunks_[slot]).first(want));
      const std::lock_guard lock(mutex_);
      if (!n || *n == 0) {
        if (!n) error_ = n.error();
        finished_ = true;
        changed_.notify_all();
        return;
      }
      sizes_[slot] = *n;
      left_ -= *n;
      ++filled_;
      changed_.notify_all();
    }
  }

  Source& source_;
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::array<std::array<std::uint8_t, kChunk>, 2> chunks_{};
  std::array<std::size_t, 2> sizes_{};
  std::uint64_t left_;          // guarded by mutex_, as are the fields below
  std::uint64_t filled_ = 0;    // chunks read
  std::uint64_t released_ = 0;  // chunks the consumer is done with
  bool handed_out_ = false;
  bool finished_ = false;
  bool more_ = false;
  std::optional<Error> error_;
  std::jthread reader_;  // last: starts after the members it uses
};

}  // namespace

Expected<void> Reader::StreamPayload(const std::function<Expected<void>(ByteView)>& sink) {
  if (streamed_) return Fail(PackageErrc::kIo, "the payload was already read");
  streamed_ = true;
  auto hash = crypto::Sha256::Create();
  if (!hash) return std::unexpected(hash.error());
  ReadAhead ahead(*source_, manifest_.payload.size);
  for (;;) {
    auto chunk = ahead.Next();
    if (!chunk) return std::unexpected(chunk.error());
    if (chunk->empty()) break;
    if (auto ok = hash->Update(*chunk); !ok) return ok;
    if (auto ok = sink(*chunk); !ok) return ok;
  }
  if (const std::uint64_t left = ahead.left(); left != 0) {
    return Fail(PackageErrc::kMismatch, "the payload ends " + std::to_string(left) +
                                            " bytes before its declared size " +
                                            std::to_string(manifest_.payload.size));
  }
  if (ahead.more()) {
    return Fail(PackageErrc::kMismatch, "the payload continues past its declared size " +
                                            std::to_string(manifest_.payload.size));
  }
  auto digest = hash->Finish();
  if (!digest) return std::unexpected(digest.error());
  if (*digest != manifest_.payload.sha256) {
    return Fail(PackageErrc::kMismatch, "the payload's SHA-256 " + crypto::ToHex(*digest) +
                                            " is not the manifest's " +
                                            crypto::ToHex(manifest_.payload.sha256));
  }
  return {};
}

Expected<void> Reader::VerifyPayload() {
  return StreamPayload([](ByteView) -> Expected<void> { return {}; });
}

Expected<Manifest> Write(Manifest manifest, const std::filesystem::path& payload,
                         std::span<const crypto::PrivateKey> keys,
                         const std::filesystem::path& destination) {
  // First pass: the digest and size the manifest declares.
  auto source = FileSource::Open(payload);
  if (!source) return std::unexpected(source.error());
  auto hash = crypto::Sha256::Create();
  if (!hash) return std::unexpected(hash.error());
  std::vector<std::uint8_t> chunk(kChunk);
  std::uint64_t size = 0;
  for (;;) {
    auto n = source->Read(chunk);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
    if (auto ok = hash->Update(ByteView(chunk.data(), *n)); !ok) return std::unexpected(ok.error());
    size += *n;
  }
  auto digest = hash->Finish();
  if (!digest) return std::unexpected(digest.error());
  manifest.payload.sha256 = *digest;
  manifest.payload.size = size;
  if (manifest.payload.compression == Compression::kNone) manifest.payload.unpacked_size = size;
  auto json = Serialize(manifest);
  if (!json) return std::unexpected(json.error());
  auto envelope = crypto::dsse::Sign(kManifestType, AsBytes(*json), keys);
  if (!envelope) return std::unexpected(envelope.error());
  const std::string envelope_json = crypto::dsse::Serialize(*envelope);
  if (envelope_json.size() > crypto::dsse::kMaxEnvelopeSize) {
    return Fail(PackageErrc::kTooLarge, "the signed manifest is larger than 4 MiB");
  }

  // Second pass: header, envelope and payload into a temporary file, then renamed into place.
  file::FileSystem& fs = file::RealFileSystem();
  const auto dir =
      destination.parent_path().empty() ? std::filesystem::path(".") : destination.parent_path();
  auto temporary = fs.CreateTemporary(dir, destination.filename().string(), 0644);
  if (!temporary) return std::unexpected(temporary.error());
  auto written = [&]() -> Expected<void> {
    Bytes header(kMagic.begin(), kMagic.end());
    const auto length = static_cast<std::uint32_t>(envelope_json.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      header.push_back(static_cast<std::uint8_t>(length >> shift));
    }
    if (auto ok = fs.Write(temporary->handle, header); !ok) return ok;
    if (auto ok = fs.Write(temporary->handle, AsBytes(envelope_json)); !ok) return ok;
    auto again = FileSource::Open(payload);
    if (!again) return std::unexpected(again.error());
    std::uint64_t copied = 0;
    for (;;) {
      auto n = again->Read(chunk);
      if (!n) return std::unexpected(n.error());
      if (*n == 0) break;
      if (auto ok = fs.Write(temporary->handle, ByteView(chunk.data(), *n)); !ok) return ok;
      copied += *n;
    }
    if (copied != size) return Fail(PackageErrc::kIo, "the payload changed while it was packed");
    return fs.Sync(temporary->handle);
  }();
  auto closed = fs.Close(temporary->handle);
  if (written && !closed) written = std::unexpected(closed.error());
  if (written) written = fs.Rename(temporary->path, destination);
  if (written) written = fs.SyncDirectory(dir);
  if (!written) {
    fs.Remove(temporary->path);
    return std::unexpected(
        std::move(written.error()).WithContext("writing " + destination.string()));
  }
  return manifest;
}

}  // namespace aspis::package
