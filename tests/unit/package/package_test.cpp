// The image package container and its manifest: round trips, and the attacks the reader refuses
// (each beside a positive twin).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "package/errors.hpp"
#include "package/package.hpp"
#include "support/temp_dir.hpp"

namespace aspis::package {
namespace {

constexpr char kComponent[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";

Manifest AppManifest() {
  Manifest m;
  m.image_id = *crypto::RandomUuid();
  m.component_id = kComponent;
  m.name = "blink";
  m.kind = Kind::kApp;
  m.version = "1.0.0";
  m.security_version = 3;
  m.payload.compression = Compression::kNone;
  m.app_manifest = std::string(R"({"SchemaVersion":1,"Name":"blink","ComponentId":")") +
                   kComponent + R"(","EntryPoint":"/bin/app","Capabilities":{}})";
  return m;
}

Manifest OsManifest() {
  Manifest m;
  m.image_id = *crypto::RandomUuid();
  m.component_id = "0f0e0d0c-0b0a-4908-8706-050403020100";
  m.name = "aspis-os";
  m.kind = Kind::kOs;
  m.version = "24.10";
  m.security_version = 1;
  m.payload.compression = Compression::kNone;
  m.target_boards = {"mt3620-virtual"};
  for (const char* name : {"os", "aspisd", "trust-bundle"}) m.measurements[name] = {};
  return m;
}

class Package : public ::testing::Test {
 protected:
  void SetUp() override {
    payload_bytes_ = *crypto::RandomBytes(200000);
    ASSERT_TRUE(file::WriteDurably(dir_ / "payload", payload_bytes_, 0644));
    app_keys_.Add(app_key_.Public());
    os_keys_.Add(os_key_.Public());
  }

  // Packs `manifest` with the test payload, signed by `key`; returns the package's bytes.
  Bytes Pack(const Manifest& manifest, const crypto::PrivateKey& key) {
    auto written = Write(manifest, dir_ / "payload", std::span(&key, 1), dir_ / "p.aspkg");
    EXPECT_TRUE(written) << written.error().message();
    return *file::Read(dir_ / "p.aspkg");
  }

  Expected<Bytes> OpenAndRead(ByteView package) {
    MemorySource source(package);
    auto reader = Reader::Open(source, {.os = &os_keys_, .apps = &app_keys_});
    if (!reader) return std::unexpected(reader.error());
    Bytes out;
    auto ok = reader->StreamPayload([&](ByteView chunk) -> Expected<void> {
      out.insert(out.end(), chunk.begin(), chunk.end());
      return {};
    });
    if (!ok) return std::unexpected(ok.error());
    return out;
  }

  // The package with its envelope's JSON changed by `edit` (the length prefix follows).
  static Bytes EditEnvelope(const Bytes& package, const std::function<void(json::Json&)>& edit) {
    std::uint32_t length = 0;
    for (std::size_t i = 8; i < 12; ++i) length = (length << 8) | package[i];
    auto doc = *json::Parse(AsString(ByteView(package).subspan(12, length)));
    edit(doc);
    const std::string json = doc.dump();
    Bytes out(package.begin(), package.begin() + 8);
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<std::uint8_t>(json.size() >> shift));
    }
    out.insert(out.end(), json.begin(), json.end());
    out.insert(out.end(), package.begin() + 12 + length, package.end());
    return out;
  }

  testing::TempDir dir_;
  Bytes payload_bytes_;
  crypto::PrivateKey app_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey os_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys app_keys_;
  crypto::dsse::TrustedKeys os_keys_;
};

TEST_F(Package, AppPackageRoundTripsWithItsDigestAndSize) {
  const Bytes package = Pack(AppManifest(), app_key_);
  MemorySource source(package);
  auto reader = Reader::Open(source, {.apps = &app_keys_});
  ASSERT_TRUE(reader) << reader.error().message();
  EXPECT_EQ(reader->manifest().name, "blink");
  EXPECT_EQ(reader->manifest().payload.size, payload_bytes_.size());
  EXPECT_EQ(reader->manifest().payload.sha256, *crypto::Sha256Of(payload_bytes_));
  EXPECT_EQ(*OpenAndRead(package), payload_bytes_);
}

TEST_F(Package, ArbitrarySoftwareAttackUnknownPublisherKeyIsRefused) {
  const auto stranger = *crypto::PrivateKey::GenerateP256();
  auto refused = OpenAndRead(Pack(AppManifest(), stranger));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUntrusted);
  EXPECT_NE(refused.error().message().find("signed by key id " +
                                           stranger.Public().Fingerprint().substr(0, 16)),
            std::string::npos)
      << refused.error().message();
  EXPECT_TRUE(OpenAndRead(Pack(AppManifest(), app_key_)));
}

TEST_F(Package, ArbitrarySoftwareAttackEnvelopeEditedAfterSigningIsRefused) {
  const Bytes package = Pack(AppManifest(), app_key_);
  // The attacker raises the security version in the signed manifest and keeps the signature.
  const Bytes edited = EditEnvelope(package, [](json::Json& envelope) {
    auto manifest =
        *json::Parse(AsString(*crypto::Base64Decode(envelope["payload"].get<std::string>())));
    manifest["security_version"] = 99;
    envelope["payload"] = crypto::Base64Encode(AsBytes(manifest.dump()));
  });
  auto refused = OpenAndRead(edited);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUntrusted) << refused.error().message();
  const Bytes unchanged = EditEnvelope(package, [](json::Json&) {});
  EXPECT_TRUE(OpenAndRead(unchanged)) << "re-encoding alone changes nothing";
}

TEST_F(Package, ArbitrarySoftwareAttackOsSignedByAnAppPublisherIsRefused) {
  auto refused = OpenAndRead(Pack(OsManifest(), app_key_));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUntrusted);
  EXPECT_NE(refused.error().message().find("platform's OS publisher keys"), std::string::npos)
      << refused.error().message();
  auto app_by_os_key = OpenAndRead(Pack(AppManifest(), os_key_));
  ASSERT_FALSE(app_by_os_key);
  EXPECT_NE(app_by_os_key.error().message().find("tenant's app publisher keys"), std::string::npos)
      << app_by_os_key.error().message();
  EXPECT_TRUE(OpenAndRead(Pack(OsManifest(), os_key_)));
}

TEST_F(Package, MixAndMatchAttackPayloadOfTheSameSizeIsRefused) {
  Bytes package = Pack(AppManifest(), app_key_);
  package[package.size() - 100] ^= 0x01;
  auto refused = OpenAndRead(package);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("SHA-256"), std::string::npos)
      << refused.error().message();
}

TEST_F(Package, EndlessDataAttackPayloadLongerThanDeclaredIsRefused) {
  Bytes package = Pack(AppManifest(), app_key_);
  package.push_back(0);
  auto refused = OpenAndRead(package);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("continues past its declared size"), std::string::npos)
      << refused.error().message();
}

TEST_F(Package, TruncatedPayloadIsRefused) {
  Bytes package = Pack(AppManifest(), app_key_);
  package.resize(package.size() - 1);
  auto refused = OpenAndRead(package);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("ends 1 bytes before"), std::string::npos)
      << refused.error().message();
}

// A source that counts what is read from it.
class CountingSource final : public Source {
 public:
  explicit CountingSource(ByteView bytes) : inner_(bytes) {}
  Expected<std::size_t> Read(std::span<std::uint8_t> buffer) override {
    auto n = inner_.Read(buffer);
    if (n) read_ += *n;
    return n;
  }
  std::size_t read() const { return read_; }

 private:
  MemorySource inner_;
  std::size_t read_ = 0;
};

TEST_F(Package, PayloadIsNotReadBeforeTheEnvelopeVerifies) {
  const auto stranger = *crypto::PrivateKey::GenerateP256();
  const Bytes package = Pack(AppManifest(), stranger);
  CountingSource source(package);
  ASSERT_FALSE(Reader::Open(source, {.apps = &app_keys_}));
  EXPECT_EQ(source.read(), package.size() - payload_bytes_.size());
}

TEST_F(Package, HeaderThatIsNotAPackageOrDeclaresAHugeEnvelopeIsRefusedBeforeReadingOn) {
  const std::string_view not_package = "PK\x03\x04 a zip file";
  MemorySource zip(AsBytes(not_package));
  auto refused = Reader::Inspect(zip);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  Bytes huge(kMagic.begin(), kMagic.end());
  huge.insert(huge.end(), {0xff, 0xff, 0xff, 0xff});
  CountingSource source(huge);
  auto too_large = Reader::Inspect(source);
  ASSERT_FALSE(too_large);
  EXPECT_EQ(too_large.error(), PackageErrc::kTooLarge);
}

TEST(PackageManifest, SerializesAndParsesBackEachKind) {
  for (const Manifest& m : {AppManifest(), OsManifest()}) {
    auto json = Serialize(m);
    ASSERT_TRUE(json) << json.error().message();
    auto parsed = ParseManifest(*json);
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->image_id, m.image_id);
    EXPECT_EQ(parsed->kind, m.kind);
    EXPECT_EQ(parsed->measurements.size(), m.measurements.size());
    EXPECT_EQ(parsed->app_manifest.empty(), m.app_manifest.empty());
  }
}

TEST(PackageManifest, BreachesOfTheFormatAreRefusedNamingTheField) {
  auto refused = [](const std::function<void(Manifest&)>& change, std::string_view field) {
    Manifest m = AppManifest();
    change(m);
    auto json = Serialize(m);
    ASSERT_FALSE(json) << field;
    EXPECT_NE(json.error().message().find(field), std::string::npos) << json.error().message();
  };
  refused([](Manifest& m) { m.image_id = "not-a-uuid"; }, "image_id");
  refused([](Manifest& m) { m.name = "../../etc"; }, "name");
  refused([](Manifest& m) { m.version = std::string(65, '1'); }, "version");
  refused([](Manifest& m) { m.target_boards = {"a", "a"}; }, "target_boards");
  refused([](Manifest& m) { m.component_id = "0f0e0d0c-0b0a-4908-8706-050403020100"; },
          "ComponentId");
  refused([](Manifest& m) { m.app_manifest.clear(); }, "app_manifest");
  refused([](Manifest& m) { m.measurements["os"] = {}; }, "measurements");
  refused([](Manifest& m) { m.payload.unpacked_size = 1; }, "unpacked_size");

  auto os = OsManifest();
  os.measurements.erase("aspisd");
  EXPECT_FALSE(Serialize(os));
  os = OsManifest();
  os.target_boards.clear();
  EXPECT_FALSE(Serialize(os));

  auto doc = *json::Parse(*Serialize(AppManifest()));
  doc["install_script"] = "rm -rf /";
  auto unknown = ParseManifest(doc.dump());
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("install_script"), std::string::npos);
  doc.erase("install_script");
  doc["schema"] = 2;
  EXPECT_FALSE(ParseManifest(doc.dump()));
}

}  // namespace
}  // namespace aspis::package
