// The device's downloads: each attack a hostile service or network can make on a target is
// refused with its own reason, beside the download that succeeds.
#include "device/update/staging.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "package/archive.hpp"
#include "package/delta.hpp"
#include "package/delta_format.hpp"
#include "package/errors.hpp"
#include "package/measure.hpp"
#include "package/payload_compression.hpp"
#include "support/faulty_file_system.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const Clock::TimePoint kNow = std::chrono::system_clock::now();
constexpr char kBoard[] = "mt3620-sim";

crypto::PrivateKey NewKey() { return *crypto::PrivateKey::GenerateP256(); }

// Serves packages by URL, and can misbehave as a hostile service or a broken network would.
class FakeSource final : public ImageSource {
 public:
  Expected<std::string> Fetch(std::string_view url, std::uint64_t first,
                              std::uint64_t length) override {
    offsets.push_back(first);
    urls.emplace_back(url);
    if (fail_after && fetches >= *fail_after) return Fail(CoreErrc::kIo, "network down");
    ++fetches;
    const std::string& bytes = files.at(std::string(url));
    if (first >= bytes.size()) return std::string();
    return bytes.substr(first, length) + extra;
  }

  std::map<std::string, std::string> files;
  int fetches = 0;                // answered so far
  std::optional<int> fail_after;  // the network fails once `fetches` reaches it
  std::string extra;              // appended to every answer (endless data)
  std::vector<std::uint64_t> offsets;
  std::vector<std::string> urls;
};

class Downloads : public ::testing::Test {
 protected:
  void SetUp() override {
    crypto::dsse::TrustedKeys os;
    os.Add(os_key_.Public());
    trust_.emplace(*PublisherTrust::Open(dir_ / "publisher-keys.json", os));
    ASSERT_TRUE(trust_->Offer(KeySet("t1", publisher_), "t1", kNow));
    staging_.emplace(*Staging::Open(dir_ / "staging", {.board = kBoard, .capacity = 64 << 20}));
  }

  std::string KeySet(const std::string& tenant, const crypto::PrivateKey& publisher) {
    package::PublisherKeySet set;
    set.tenant = tenant;
    set.version = 1;
    set.expires = UnixSeconds(kNow + 24h * 365);
    set.root.keys = {root_.Public()};
    set.publishers.keys = {publisher.Public()};
    return crypto::dsse::Serialize(*package::SignKeySet(set, std::span(&root_, 1)));
  }

  // Packs a package of `kind` signed by `key` and serves it; returns the target naming it.
  wire::UpdateTarget Publish(package::Kind kind, const crypto::PrivateKey& key,
                             std::vector<std::string> boards = {kBoard},
                             std::size_t payload_size = 3 << 20) {
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = *crypto::RandomUuid();
    m.name = "test";
    m.kind = kind;
    m.version = "1.0";
    m.security_version = 2;
    m.payload.compression = package::Compression::kNone;
    m.target_boards = std::move(boards);
    if (kind == package::Kind::kOs) {
      for (const char* name : {"os", "aspisd", "trust-bundle"}) m.measurements[name] = {};
    } else if (kind == package::Kind::kBoard) {
      m.measurements["board"] = {};
    } else {
      m.app_manifest = R"({"ComponentId":")" + m.component_id + R"(","Name":"test"})";
    }
    const Bytes payload = *crypto::RandomBytes(payload_size);
    EXPECT_TRUE(file::WriteDurably(dir_ / "payload", payload, 0644));
    const fs::path path = dir_ / (m.image_id + ".aspkg");
    auto written = package::Write(m, dir_ / "payload", std::span(&key, 1), path);
    EXPECT_TRUE(written) << written.error().message();
    const std::string url = "/v1/device/images/" + m.image_id;
    source_.files[url] = std::string(AsString(*file::Read(path, 64 << 20)));
    return {m.image_id,
            m.component_id,
            std::string(package::KindName(kind)),
            m.version,
            m.security_version,
            crypto::ToHex(*package::MeasurePath(path)),
            fs::file_size(path),
            url};
  }

  wire::TargetStatus SyncOne(const wire::UpdateTarget& target) {
    auto statuses = staging_->Sync({target}, source_, *trust_, kNow);
    EXPECT_EQ(statuses.size(), 1u);
    return statuses.front();
  }

  // Expects `target` refused with `reason`, and nothing of it kept.
  void ExpectRefused(const wire::UpdateTarget& target, std::string_view reason) {
    const wire::TargetStatus status = SyncOne(target);
    EXPECT_EQ(status.state, wire::kFailed) << status.reason;
    EXPECT_NE(status.reason.find(reason), std::string::npos) << status.reason;
    EXPECT_FALSE(staging_->Staged(target));
    EXPECT_TRUE(fs::is_empty(dir_ / "staging")) << "a refused download leaves no bytes";
  }

  void ExpectDownloaded(const wire::UpdateTarget& target) {
    const wire::TargetStatus status = SyncOne(target);
    EXPECT_EQ(status.state, wire::kDownloaded) << status.reason;
    auto staged = staging_->Staged(target);
    ASSERT_TRUE(staged);
    EXPECT_EQ(crypto::ToHex(*package::MeasurePath(*staged)), target.sha256);
  }

  testing::TempDir dir_;
  crypto::PrivateKey os_key_ = NewKey();
  crypto::PrivateKey root_ = NewKey();
  crypto::PrivateKey publisher_ = NewKey();
  std::optional<PublisherTrust> trust_;
  std::optional<Staging> staging_;
  FakeSource source_;
};

TEST_F(Downloads, OsBoardAndAppTargetsAreFetchedInRangesAndVerified) {
  const auto os = Publish(package::Kind::kOs, os_key_);
  const auto board = Publish(package::Kind::kBoard, os_key_, {kBoard}, 1000);
  const auto app = Publish(package::Kind::kApp, publisher_, {});
  auto statuses = staging_->Sync({os, board, app}, source_, *trust_, kNow);
  ASSERT_EQ(statuses.size(), 3u);
  for (const auto& s : statuses) EXPECT_EQ(s.state, wire::kDownloaded) << s.reason;
  for (const auto& t : {os, board, app}) EXPECT_TRUE(staging_->Staged(t));
  EXPECT_GE(source_.offsets.size(), 4u) << "3 MiB come in ranges of at most 1 MiB";
  // Staged targets are not fetched again; targets that are dropped are removed.
  source_.offsets.clear();
  statuses = staging_->Sync({app}, source_, *trust_, kNow);
  EXPECT_EQ(statuses.front().state, wire::kDownloaded);
  EXPECT_TRUE(source_.offsets.empty());
  EXPECT_FALSE(staging_->Staged(os));
  EXPECT_TRUE(staging_->Staged(app));
}

TEST_F(Downloads, InterruptedDownloadResumesWhereItStopped) {
  const auto os = Publish(package::Kind::kOs, os_key_);
  source_.fail_after = 2;
  const wire::TargetStatus interrupted = SyncOne(os);
  EXPECT_EQ(interrupted.state, wire::kDownloading);
  EXPECT_NE(interrupted.reason.find("network down"), std::string::npos);
  source_.fail_after.reset();
  source_.offsets.clear();
  ExpectDownloaded(os);
  EXPECT_EQ(source_.offsets.front(), 2 * kRangeSize)
      << "the first two ranges are not fetched again";
}

TEST_F(Downloads, ArbitrarySoftwareAttackUnknownPublisherKeyIsRefused) {
  ExpectRefused(Publish(package::Kind::kOs, NewKey()),
                "is not signed by one of the platform's OS publisher keys");
  ExpectDownloaded(Publish(package::Kind::kOs, os_key_));
}

TEST_F(Downloads, ArbitrarySoftwareAttackEnvelopeEditedAfterSigningIsRefused) {
  auto os = Publish(package::Kind::kOs, os_key_);
  std::string& bytes = source_.files[os.url];
  // Raise the signed manifest's version and keep its signature, as an attacker editing it.
  const auto length = *package::HeaderLength(AsBytes(bytes)) - package::kPrefixSize;
  auto envelope = *crypto::dsse::Parse(bytes.substr(package::kPrefixSize, length));
  std::string manifest(AsString(envelope.payload));
  manifest.replace(manifest.find("\"1.0\""), 5, "\"9.0\"");
  envelope.payload = ToBytes(manifest);
  const std::string edited = crypto::dsse::Serialize(envelope);
  ASSERT_EQ(edited.size(), length);
  bytes.replace(package::kPrefixSize, length, edited);
  os.sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(bytes)));
  ExpectRefused(os, "is not signed by one of the platform's OS publisher keys");
}

TEST_F(Downloads, ArbitrarySoftwareAttackAppSignedByAnotherTenantsKeyIsRefused) {
  const crypto::PrivateKey other_tenants_publisher = NewKey();
  ExpectRefused(Publish(package::Kind::kApp, other_tenants_publisher, {}),
                "is not signed by one of the tenant's app publisher keys");
  ExpectDownloaded(Publish(package::Kind::kApp, publisher_, {}));
}

TEST_F(Downloads, ArbitrarySoftwareAttackOsPackageSignedByATenantPublisherIsRefused) {
  // The tenant's publishers sign apps only; an OS they sign is not the platform's.
  ExpectRefused(Publish(package::Kind::kOs, publisher_),
                "is not signed by one of the platform's OS publisher keys");
}

TEST_F(Downloads, MixAndMatchAttackHashOrSizeNotMatchingTheManifestIsRefused) {
  auto os = Publish(package::Kind::kOs, os_key_);
  auto wrong_hash = os;
  wrong_hash.sha256 = std::string(64, 'a');
  ExpectRefused(wrong_hash, "(mix-and-match)");
  auto wrong_size = os;
  wrong_size.size -= 1;
  ExpectRefused(wrong_size, "the package's signed size");
  // A package whose payload was swapped under its valid signature.
  std::string& bytes = source_.files[os.url];
  bytes[bytes.size() - 10] ^= 0x55;
  os.sha256 = crypto::ToHex(*crypto::Sha256Of(AsBytes(bytes)));
  ExpectRefused(os, "the payload's SHA-256");
}

TEST_F(Downloads, EndlessDataAttackServerSendingMoreThanAskedIsRefused) {
  const auto os = Publish(package::Kind::kOs, os_key_);
  source_.extra = "more";
  ExpectRefused(os, "(endless data)");
  source_.extra.clear();
  ExpectDownloaded(os);
}

TEST_F(Downloads, WrongSoftwareAttackPackageForAnotherBoardIsRefused) {
  ExpectRefused(Publish(package::Kind::kOs, os_key_, {"rpi4"}), "(wrong software)");
  ExpectDownloaded(Publish(package::Kind::kOs, os_key_, {"rpi4", kBoard}));
}

TEST_F(Downloads, RollbackAttackAStagedPackageRelabelledWithAHigherSecurityVersionIsRefused) {
  // Once staged, the same image and digest are listed again, claiming a security version above
  // the device's counter: what the package signed is checked again, not what the target says.
  const auto os = Publish(package::Kind::kOs, os_key_);
  ExpectDownloaded(os);
  auto relabelled = os;
  relabelled.security_version = 5;
  const wire::TargetStatus status = SyncOne(relabelled);
  EXPECT_EQ(status.state, wire::kFailed);
  EXPECT_NE(status.reason.find("(security version 2), the update manifest says"), std::string::npos)
      << status.reason;
  EXPECT_EQ(SyncOne(os).state, wire::kDownloaded) << "the target as signed is still staged";
}

TEST_F(Downloads, CompromisedServiceAttackTargetServedWithAnotherSignedImageIsRefused) {
  // The service names an image it may deploy but serves another, validly signed one.
  auto os = Publish(package::Kind::kOs, os_key_);
  const auto other = Publish(package::Kind::kOs, os_key_);
  source_.files[os.url] = source_.files[other.url];
  os.sha256 = other.sha256;
  os.size = other.size;
  ExpectRefused(os, "not the targeted");
  // Or claims an app is a board, to have it checked against the wrong publishers.
  auto app = Publish(package::Kind::kApp, publisher_, {});
  app.kind = "board";
  ExpectRefused(app, "the update manifest says board");
}

TEST_F(Downloads, CompromisedServiceKeyAttackImageNoPublisherSignedIsRefused) {
  // The service's own key signs the update manifest that targets the image, so a thief of that
  // key can target anything; the package must still carry a publisher's signature.
  const crypto::PrivateKey service_key = NewKey();
  ExpectRefused(Publish(package::Kind::kApp, service_key, {}),
                "is not signed by one of the tenant's app publisher keys");
  ExpectRefused(Publish(package::Kind::kOs, service_key),
                "is not signed by one of the platform's OS publisher keys");
}

TEST_F(Downloads, PathTraversalAttackTargetIdNamingAPathIsRefused) {
  auto os = Publish(package::Kind::kOs, os_key_);
  os.image_id = "../../escape";
  ExpectRefused(os, "not a plain identifier");
  EXPECT_FALSE(fs::exists(dir_ / ("escape-" + os.sha256 + ".part")));
}

TEST_F(Downloads, StagingAreaIsBoundedAndAppsNeedAPinnedKeySet) {
  staging_.emplace(*Staging::Open(dir_ / "small", {.board = kBoard, .capacity = 4 << 20}));
  const auto first = Publish(package::Kind::kOs, os_key_);
  const auto second = Publish(package::Kind::kOs, os_key_);
  auto statuses = staging_->Sync({first, second}, source_, *trust_, kNow);
  EXPECT_EQ(statuses[0].state, wire::kDownloaded);
  EXPECT_EQ(statuses[1].state, wire::kFailed);
  EXPECT_NE(statuses[1].reason.find("the staging area holds"), std::string::npos);

  crypto::dsse::TrustedKeys os;
  os.Add(os_key_.Public());
  const PublisherTrust unpinned = *PublisherTrust::Open(dir_ / "none.json", os);
  const auto app = Publish(package::Kind::kApp, publisher_, {});
  statuses = staging_->Sync({app}, source_, unpinned, kNow);
  EXPECT_NE(statuses[0].reason.find("no publisher key set is pinned"), std::string::npos);
  EXPECT_EQ(staging_->Sync({app}, source_, *trust_, kNow)[0].state, wire::kDownloaded);
}

// The staging area's bytes on disk.
std::uint64_t BytesIn(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir)) total += entry.file_size();
  return total;
}

TEST_F(Downloads, DiskExhaustionAttackRefusedTargetsKeepNoBytes) {
  // A hostile service starts downloads, then lists new targets ahead of them round after round,
  // so that the earlier ones no longer fit: their partial files must not stay behind.
  staging_.emplace(*Staging::Open(dir_ / "small", {.board = kBoard, .capacity = 4 << 20}));
  std::vector<wire::UpdateTarget> listed;
  for (int round = 0; round < 4; ++round) {
    listed.insert(listed.begin(), Publish(package::Kind::kOs, os_key_));
    source_.fail_after = source_.fetches + 2;  // 2 MiB of the round's first, then the network fails
    auto statuses = staging_->Sync(listed, source_, *trust_, kNow);
    source_.fail_after.reset();
    EXPECT_EQ(statuses[0].state, wire::kDownloading);
    for (std::size_t i = 1; i < statuses.size(); ++i) {
      EXPECT_EQ(statuses[i].state, wire::kFailed);
      EXPECT_NE(statuses[i].reason.find("the staging area holds"), std::string::npos);
    }
    EXPECT_LE(BytesIn(dir_ / "small"), std::uint64_t{4} << 20) << "round " << round;
  }
}

TEST_F(Downloads, ImageListedTwiceIsRefusedTheSecondTime) {
  const auto os = Publish(package::Kind::kOs, os_key_);
  auto again = os;
  again.sha256 = std::string(64, 'b');
  auto statuses = staging_->Sync({os, again}, source_, *trust_, kNow);
  EXPECT_EQ(statuses[0].state, wire::kDownloaded);
  EXPECT_EQ(statuses[1].state, wire::kFailed);
  EXPECT_NE(statuses[1].reason.find("lists this image twice"), std::string::npos);
}

TEST_F(Downloads, DownloadsPauseWhenToldAndResumeLater) {
  const auto os = Publish(package::Kind::kOs, os_key_);
  int allowed = 2;
  auto statuses =
      staging_->Sync({os}, source_, *trust_, kNow, [&allowed] { return allowed-- > 0; });
  EXPECT_EQ(statuses[0].state, wire::kDownloading);
  EXPECT_NE(statuses[0].reason.find("resumes at the next check-in"), std::string::npos);
  ExpectDownloaded(os);
}

// Tenant t1's publisher key set `version`, valid a day, rooted in `root`, naming `publisher`,
// signed by `signers`: its envelope and its root's fingerprint.
std::pair<std::string, std::string> KeySetOf(std::uint64_t version, const crypto::PrivateKey& root,
                                             std::vector<crypto::PrivateKey> signers,
                                             const crypto::PrivateKey& publisher) {
  package::PublisherKeySet s;
  s.tenant = "t1";
  s.version = version;
  s.expires = UnixSeconds(kNow + 24h);
  s.root.keys = {root.Public()};
  s.publishers.keys = {publisher.Public()};
  return {crypto::dsse::Serialize(*package::SignKeySet(s, signers)), s.RootFingerprint()};
}

TEST(PublisherTrust, PublisherKeySetNotSignedByThePinnedRootIsRefused) {
  testing::TempDir dir;
  const crypto::PrivateKey root = NewKey();
  const crypto::PrivateKey impostor = NewKey();
  const crypto::PrivateKey publisher = NewKey();
  auto set = [&](std::uint64_t version, const crypto::PrivateKey& by_root,
                 std::vector<crypto::PrivateKey> signers) {
    return KeySetOf(version, by_root, std::move(signers), publisher).first;
  };
  auto trust = *PublisherTrust::Open(dir / "pin.json", {});
  EXPECT_TRUE(trust.RootFingerprint().empty());
  ASSERT_TRUE(trust.Offer(set(1, root, {root}), "t1", kNow)) << "the first set is pinned";
  const std::string pinned = trust.RootFingerprint();
  // A compromised service relays a set of its own root: refused, the pin stays.
  auto refused = trust.Offer(set(2, impostor, {impostor}), "t1", kNow);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("not signed by the pinned root"), std::string::npos);
  EXPECT_EQ(trust.RootFingerprint(), pinned);
  // The pin survives a restart; a rotation signed by the pinned root and the new one is taken.
  auto reopened = *PublisherTrust::Open(dir / "pin.json", {});
  EXPECT_EQ(reopened.RootFingerprint(), pinned);
  ASSERT_TRUE(reopened.Offer(set(2, impostor, {root, impostor}), "t1", kNow));
  EXPECT_NE(reopened.RootFingerprint(), pinned);
  EXPECT_FALSE(reopened.Offer(set(1, root, {root}), "t1", kNow)) << "no going back";
  EXPECT_TRUE(reopened.AppsUnverifiable(kNow + 48h)) << "an expired set verifies no app";
}

TEST(PublisherTrust, APowerCutWhileARotatedSetIsPinnedLeavesTheOldPinOrTheNewNeverADamagedOne) {
  const crypto::PrivateKey root = NewKey();
  const crypto::PrivateKey next_root = NewKey();
  const auto [first, first_root] = KeySetOf(1, root, {root}, NewKey());
  const auto [rotated, rotated_root] = KeySetOf(2, next_root, {root, next_root}, NewKey());
  int operations = 0;
  {
    testing::FaultyFileSystem fs;
    auto trust = *PublisherTrust::Open("/state/pin.json", {}, {}, fs);
    ASSERT_TRUE(trust.Offer(first, "t1", kNow));
    const int before = fs.operations();
    ASSERT_TRUE(trust.Offer(rotated, "t1", kNow));
    operations = fs.operations() - before;
  }
  ASSERT_GT(operations, 3);
  for (int cut = 0; cut <= operations; ++cut) {
    SCOPED_TRACE("power cut after " + std::to_string(cut) + " operations");
    testing::FaultyFileSystem fs;
    auto trust = *PublisherTrust::Open("/state/pin.json", {}, {}, fs);
    ASSERT_TRUE(trust.Offer(first, "t1", kNow));
    fs.FailAfter(cut);
    const bool pinned = trust.Offer(rotated, "t1", kNow).has_value();
    fs.Crash();
    auto reopened = PublisherTrust::Open("/state/pin.json", {}, {}, fs);
    ASSERT_TRUE(reopened) << reopened.error().message();
    const std::string root_now = reopened->RootFingerprint();
    EXPECT_TRUE(root_now == first_root || root_now == rotated_root) << root_now;
    if (pinned) {
      EXPECT_EQ(root_now, rotated_root) << "a pin reported done must survive";
    }
  }
}

TEST(PublisherTrust, FirstUseAttackKeySetOfAnotherRootIsRefusedWhenTheRootWasProvisioned) {
  testing::TempDir dir;
  const crypto::PrivateKey root = NewKey();
  const crypto::PrivateKey impostor = NewKey();
  auto set = [&](const crypto::PrivateKey& by) {
    package::PublisherKeySet s;
    s.tenant = "t1";
    s.expires = UnixSeconds(kNow + 24h);
    s.root.keys = {by.Public()};
    s.publishers.keys = {NewKey().Public()};
    return std::pair{crypto::dsse::Serialize(*package::SignKeySet(s, std::span(&by, 1))),
                     s.RootFingerprint()};
  };
  const auto [genuine, genuine_root] = set(root);
  const auto [forged, forged_root] = set(impostor);
  auto trust = *PublisherTrust::Open(dir / "pin.json", {}, genuine_root);
  // A service compromised before the device's first check-in relays a set of its own root.
  auto refused = trust.Offer(forged, "t1", kNow);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("is not the provisioned root"), std::string::npos);
  EXPECT_TRUE(trust.RootFingerprint().empty());
  ASSERT_TRUE(trust.Offer(genuine, "t1", kNow));
  EXPECT_EQ(trust.RootFingerprint(), genuine_root);

  // A device that pinned the forged set on first use, provisioned later, drops that pin.
  auto first_use = *PublisherTrust::Open(dir / "tofu.json", {});
  ASSERT_TRUE(first_use.Offer(forged, "t1", kNow));
  EXPECT_EQ(PublisherTrust::Open(dir / "tofu.json", {})->RootFingerprint(), forged_root);
  auto provisioned = *PublisherTrust::Open(dir / "tofu.json", {}, genuine_root);
  EXPECT_TRUE(provisioned.RootFingerprint().empty()) << "the forged pin is dropped";
  ASSERT_TRUE(provisioned.Offer(genuine, "t1", kNow));
  EXPECT_EQ(PublisherTrust::Open(dir / "tofu.json", {}, genuine_root)->RootFingerprint(),
            genuine_root)
      << "the genuine pin holds";
  EXPECT_FALSE(PublisherTrust::Open(dir / "x.json", {}, "ABCDEF")) << "a malformed root";
}

// --- Deltas ---

class DeltaDownloads : public Downloads {
 protected:
  void SetUp() override {
    Downloads::SetUp();
    fs::create_directories(dir_ / "v1/bin");
    std::ofstream(dir_ / "v1/bin/app") << "#!/bin/sh\necho 1.0\n";
    const Bytes data = *crypto::RandomBytes(std::size_t{1} << 20);
    ASSERT_TRUE(file::WriteDurably(dir_ / "v1/data.bin", data, 0644));
    fs::copy(dir_ / "v1", dir_ / "v2", fs::copy_options::recursive);
    std::ofstream(dir_ / "v2/bin/app") << "#!/bin/sh\necho 1.1\n";
    old_ = PackApp(dir_ / "v1", "1.0");
    target_ = PackApp(dir_ / "v2", "1.1");
    ASSERT_TRUE(package::MakeDelta(dir_ / (old_.image_id + ".aspkg"),
                                   dir_ / (target_.image_id + ".aspkg"), dir_ / "delta"));
    const std::string delta(AsString(*file::Read(dir_ / "delta", 64 << 20)));
    const std::string url = wire::DeviceDeltaPath(target_.image_id, old_.image_id);
    source_.files[url] = delta;
    target_.delta = wire::DeltaOffer{
        old_.image_id, crypto::ToHex(*crypto::Sha256Of(AsBytes(delta))), delta.size(), url};
  }

  // Packs the app tree `tree` as `version` of one component, serves it; its target.
  wire::UpdateTarget PackApp(const fs::path& tree, const std::string& version) {
    auto packed = package::PackDirectory(tree, dir_ / "payload");
    EXPECT_TRUE(packed);
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = component_;
    m.name = "blink";
    m.kind = package::Kind::kApp;
    m.version = version;
    m.security_version = 1;
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = packed->unpacked_size;
    m.app_manifest = R"({"ComponentId":")" + component_ + R"(","Name":"blink"})";
    const fs::path path = dir_ / (m.image_id + ".aspkg");
    EXPECT_TRUE(package::Write(m, dir_ / "payload", std::span(&publisher_, 1), path));
    const std::string url = wire::DeviceImagePath(m.image_id);
    source_.files[url] = std::string(AsString(*file::Read(path, 64 << 20)));
    return {m.image_id,
            component_,
            "app",
            version,
            1,
            crypto::ToHex(*package::MeasurePath(path)),
            fs::file_size(path),
            url,
            std::nullopt};
  }

  // Syncs the target with the old version installed at v1; whether the full package was fetched.
  bool FetchedWhole() {
    source_.urls.clear();
    auto statuses = staging_->Sync(
        {target_}, source_, *trust_, kNow, [] { return true; },
        [this](const wire::UpdateTarget& t) -> std::optional<fs::path> {
          if (t.delta->base_image_id != old_.image_id) return {};
          return dir_ / "v1";
        });
    EXPECT_EQ(statuses.front().state, wire::kDownloaded) << statuses.front().reason;
    auto staged = staging_->Staged(target_);
    EXPECT_TRUE(staged && crypto::ToHex(*package::MeasurePath(*staged)) == target_.sha256);
    return std::find(source_.urls.begin(), source_.urls.end(), target_.url) != source_.urls.end();
  }

  std::string component_ = *crypto::RandomUuid();
  wire::UpdateTarget old_, target_;
};

TEST_F(DeltaDownloads, ATargetIsRebuiltFromItsDeltaAndTheInstalledVersion) {
  EXPECT_FALSE(FetchedWhole()) << "only the delta was fetched";
  EXPECT_FALSE(fs::exists(dir_ / "staging" / (target_.image_id + "-" + target_.sha256 + ".delta")))
      << "the delta is removed once applied";
}

TEST_F(DeltaDownloads, DeltaTamperAttackADeltaOtherThanTheSignedOneIsDroppedAndTheWholeComes) {
  source_.files[target_.delta->url][100] ^= 1;
  EXPECT_TRUE(FetchedWhole());
  EXPECT_TRUE(fs::is_regular_file(*staging_->Staged(target_)));
}

TEST_F(DeltaDownloads, DeltaTamperAttackAnotherDeltaThatWouldRebuildTheTargetIsNotEvenRead) {
  // A delta the service made up: every byte of the target's tar as literals. It would rebuild
  // the target, but it is not the delta the update manifest signed, so it is never applied.
  const std::string package(source_.files.at(target_.url));
  package::MemorySource whole(AsBytes(package));
  auto reader = package::Reader::Inspect(whole);
  ASSERT_TRUE(reader);
  Bytes payload;
  ASSERT_TRUE(reader->StreamPayload([&](ByteView b) -> Expected<void> {
    payload.insert(payload.end(), b.begin(), b.end());
    return {};
  }));
  package::MemorySource compressed(payload);
  auto tar = package::ZstdSource::Create(compressed, 27, true);
  ASSERT_TRUE(tar);
  Bytes made_up;
  const std::string& signed_delta = source_.files.at(target_.delta->url);
  package::MemorySource real(AsBytes(signed_delta));
  auto header = package::ReadDeltaHeader(real);
  ASSERT_TRUE(header);
  auto writer = package::DeltaWriter::Create(*header, [&](ByteView b) -> Expected<void> {
    made_up.insert(made_up.end(), b.begin(), b.end());
    return {};
  });
  ASSERT_TRUE(writer);
  std::vector<std::uint8_t> chunk(std::size_t{256} << 10);
  for (auto n = tar->Read(chunk); n && *n > 0; n = tar->Read(chunk)) {
    ASSERT_TRUE(writer->Literal(ByteView(chunk).first(*n)));
  }
  ASSERT_TRUE(writer->Finish());
  source_.files[target_.delta->url] = std::string(AsString(made_up));
  ASSERT_LT(made_up.size(), target_.size);
  target_.delta->size = made_up.size();  // only its digest is the signed delta's now
  EXPECT_TRUE(FetchedWhole()) << "the made-up delta was applied";

  // Its twin: the same delta, named in the signed manifest, rebuilds the target (on a device that
  // has not staged it yet).
  staging_.emplace(*Staging::Open(dir_ / "staging-2", {.board = kBoard, .capacity = 64 << 20}));
  target_.delta->sha256 = crypto::ToHex(*crypto::Sha256Of(made_up));
  EXPECT_FALSE(FetchedWhole());
}

TEST_F(DeltaDownloads, AnInstalledVersionChangedOnDiskGivesTheWholePackageNotAWrongOne) {
  std::ofstream(dir_ / "v1/data.bin", std::ios::in | std::ios::out) << "changed";
  EXPECT_TRUE(FetchedWhole());
}

TEST_F(DeltaDownloads, EndlessDataAttackADeltaOfferedAsLargeAsThePackageIsNotTried) {
  target_.delta->size = target_.size;
  EXPECT_TRUE(FetchedWhole());
  EXPECT_EQ(std::count(source_.urls.begin(), source_.urls.end(), target_.delta->url), 0);
}

}  // namespace
}  // namespace aspis::device::update
