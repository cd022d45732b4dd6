// The simulator's slot writer: a slot receives exactly the tree its signed OS package measures
// as, or keeps what it held.
#include "device/update/slot_writer.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "device/update/errors.hpp"
#include "package/archive.hpp"
#include "package/errors.hpp"
#include "package/measure.hpp"
#include "package/payload_compression.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::update {
namespace {

namespace fs = std::filesystem;

constexpr char kBoard[] = "mt3620-sim";

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

class DirectorySlots : public ::testing::Test {
 protected:
  void SetUp() override {
    os_keys_.Add(os_key_.Public());
    const fs::path rootfs = dir_ / "rootfs";
    WriteText(rootfs / "usr/sbin/aspisd", "aspisd 1.1");
    WriteText(rootfs / "etc/aspis/trust-bundle.pem", "roots");
    WriteText(rootfs / "usr/bin/sh", "shell");
    fs::create_directory_symlink("usr/bin", rootfs / "bin");
    WriteText(dir_ / "slots/b/old-file", "the old OS");
  }

  // An OS package of the rootfs; `change` may alter its manifest before it is signed by `key`.
  fs::path Pack(const crypto::PrivateKey& key,
                const std::function<void(package::Manifest&)>& change = {}) {
    const fs::path payload = dir_ / "payload.tar.zst";
    fs::remove(payload);
    auto packed = package::PackDirectory(dir_ / "rootfs", payload, {.symlinks = true});
    EXPECT_TRUE(packed) << packed.error().message();
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = *crypto::RandomUuid();
    m.name = "Aspis OS";
    m.kind = package::Kind::kOs;
    m.version = "1.1";
    m.security_version = 2;
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = packed->unpacked_size;
    m.target_boards = {kBoard};
    m.measurements = *package::MeasureOsTree(dir_ / "rootfs");
    if (change) change(m);
    const fs::path path = dir_ / (m.image_id + ".aspkg");
    auto written = package::Write(m, payload, std::span(&key, 1), path);
    EXPECT_TRUE(written) << written.error().message();
    return path;
  }

  DirectorySlotWriter Writer() {
    return DirectorySlotWriter(
        [this](Slot slot) { return dir_ / "slots" / (slot == Slot::kA ? "a" : "b"); },
        {.os = &os_keys_}, kBoard);
  }

  // Expects the write refused with `code` and slot B as it was.
  void ExpectRefused(const fs::path& package, std::error_code code, std::string_view reason) {
    auto refused = Writer().Write(Slot::kB, package, AcceptAnyPackage);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), code) << refused.error().message();
    EXPECT_NE(refused.error().message().find(reason), std::string::npos)
        << refused.error().message();
    EXPECT_TRUE(fs::exists(dir_ / "slots/b/old-file")) << "the slot lost what it held";
    EXPECT_FALSE(fs::exists(dir_ / "slots/.b.new"));
    EXPECT_FALSE(fs::exists(dir_ / "slots/.b.new.payload"));
  }

  testing::TempDir dir_;
  crypto::PrivateKey os_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::dsse::TrustedKeys os_keys_;
};

TEST_F(DirectorySlots, ASlotReceivesExactlyTheTreeItsPackageMeasuresAs) {
  auto written = Writer().Write(Slot::kB, Pack(os_key_), AcceptAnyPackage);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_FALSE(fs::exists(dir_ / "slots/b/old-file"));
  EXPECT_EQ(*package::MeasureOsTree(dir_ / "slots/b"), *package::MeasureOsTree(dir_ / "rootfs"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "slots/b/bin"));
  EXPECT_FALSE(fs::exists(dir_ / "slots/.b.new"));
  EXPECT_FALSE(fs::exists(dir_ / "slots/.b.new.payload"));
  EXPECT_FALSE(fs::exists(dir_ / "slots/a")) << "the other slot is not touched";
}

TEST_F(DirectorySlots, WrongSoftwareAttackAnOsForAnotherBoardIsRefused) {
  ExpectRefused(Pack(os_key_, [](package::Manifest& m) { m.target_boards = {"rpi4"}; }),
                UpdateErrc::kInstall, "not for board mt3620-sim");
}

TEST_F(DirectorySlots, AnOsPackageSignedByATenantKeyIsRefused) {
  const auto tenant_key = *crypto::PrivateKey::GenerateP256();
  ExpectRefused(Pack(tenant_key), package::PackageErrc::kUntrusted, "");
}

TEST_F(DirectorySlots, ATreeThatDoesNotMeasureAsSignedIsNeverLeftInASlot) {
  ExpectRefused(Pack(os_key_, [](package::Manifest& m) { m.measurements["aspisd"] = {}; }),
                UpdateErrc::kInstall, "does not measure as its package says (aspisd)");
}

TEST_F(DirectorySlots, ACorruptPackageIsRefusedBeforeTheSlotChanges) {
  const fs::path package = Pack(os_key_);
  auto bytes = *file::Read(package, 64 << 20);
  bytes[bytes.size() - 10] ^= 0xff;
  ASSERT_TRUE(file::WriteDurably(package, bytes, 0644));
  ExpectRefused(package, package::PackageErrc::kMismatch, "");
}

TEST_F(DirectorySlots, RollbackAttackASlotBelowTheCounterIsRefusedAtBoot) {
  ASSERT_TRUE(Writer().Write(Slot::kB, Pack(os_key_), AcceptAnyPackage));
  const auto measured = package::MeasureOsTree(dir_ / "slots/b")->at("os");
  auto booted = CheckBootedOs(SlotHeader(dir_ / "slots/b"), {.os = &os_keys_}, measured, 2);
  ASSERT_TRUE(booted) << booted.error().message();
  EXPECT_EQ(booted->security_version, 2u);
  // The owner puts back a slot the device has moved past (the counter is at 3 now).
  auto refused = CheckBootedOs(SlotHeader(dir_ / "slots/b"), {.os = &os_keys_}, measured, 3);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kRollback);
}

TEST_F(DirectorySlots, RollbackAttackAnOldTreeUnderANewHeaderIsRefusedAtBoot) {
  ASSERT_TRUE(Writer().Write(Slot::kB, Pack(os_key_), AcceptAnyPackage));
  // Another tree in the slot, the header left as it was.
  WriteText(dir_ / "slots/b/bin/init", "an older init");
  const auto measured = package::MeasureOsTree(dir_ / "slots/b")->at("os");
  auto refused = CheckBootedOs(SlotHeader(dir_ / "slots/b"), {.os = &os_keys_}, measured, 0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kInstall);
  fs::remove(SlotHeader(dir_ / "slots/b"));
  EXPECT_FALSE(CheckBootedOs(SlotHeader(dir_ / "slots/b"), {.os = &os_keys_}, measured, 0))
      << "a slot without its signed header does not run";
}

// Partitions A and B (files here, block devices on a board) written from OS packages whose payload
// is a file system image.
class PartitionSlots : public DirectorySlots {
 protected:
  void SetUp() override {
    DirectorySlots::SetUp();
    for (const char* name : {"part-a", "part-b"}) {
      std::ofstream(dir_ / name, std::ios::binary) << std::string(kPartitionSize, '\xee');
    }
    fs::create_directories(dir_ / "headers");
    image_ = std::string(kPartitionSize / 2, '\0');
    for (std::size_t i = 0; i < image_.size(); ++i) image_[i] = static_cast<char>(i * 7 % 251);
  }

  // An OS package carrying `image` (signed as measuring to it unless `change` says otherwise).
  fs::path PackImage(const std::string& image,
                     const std::function<void(package::Manifest&)>& change = {}) {
    std::ofstream(dir_ / "os.img", std::ios::binary | std::ios::trunc) << image;
    const fs::path payload = dir_ / "image.zst";
    auto size = package::CompressFile(dir_ / "os.img", payload);
    EXPECT_TRUE(size) << size.error().message();
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = *crypto::RandomUuid();
    m.name = "Aspis OS";
    m.kind = package::Kind::kOs;
    m.version = "1.1";
    m.security_version = 2;
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = *size;
    m.payload.format = package::PayloadFormat::kImage;
    m.target_boards = {kBoard};
    m.measurements = *package::MeasureOsTree(dir_ / "rootfs");  // what the image was made from
    m.measurements["os"] = *crypto::Sha256Of(AsBytes(image));
    if (change) change(m);
    const fs::path path = dir_ / (m.image_id + ".aspkg");
    auto written = package::Write(m, payload, std::span(&os_key_, 1), path);
    EXPECT_TRUE(written) << written.error().message();
    return path;
  }

  ImageSlotWriter Partitions() {
    return ImageSlotWriter({dir_ / "part-a", dir_ / "part-b"}, dir_ / "headers", {.os = &os_keys_},
                           kBoard);
  }

  std::string PartitionB() { return std::string(AsString(*file::Read(dir_ / "part-b"))); }

  static constexpr std::size_t kPartitionSize = 256 << 10;
  std::string image_;
};

TEST(MountTable, APartitionMountedReadWriteIsToldApartFromOneMountedReadOnly) {
  const std::string table =
      "22 1 179:2 / / ro,relatime shared:1 - ext4 /dev/mmcblk0p2 ro\n"
      "23 22 179:5 / /data rw,relatime shared:2 - ext4 /dev/mmcblk0p5 rw,errors=remount-ro\n"
      "24 22 179:6 / /mnt ro,relatime - ext4 /dev/mmcblk0p6 rw\n"
      "25 22 0:21 / /proc rw,nosuid - proc proc rw\n";
  EXPECT_FALSE(MountedReadWrite(table, 179, 2)) << "the root, read-only";
  EXPECT_TRUE(MountedReadWrite(table, 179, 5));
  EXPECT_TRUE(MountedReadWrite(table, 179, 6)) << "read-only here, but its file system is rw";
  EXPECT_FALSE(MountedReadWrite(table, 179, 3)) << "not mounted";
  EXPECT_FALSE(MountedReadWrite("garbage\n\n1 2\n", 179, 2));
}

TEST_F(PartitionSlots, AnImageIsWrittenToThePartitionAndProvenByItsHeaderAtBoot) {
  auto written = Partitions().Write(Slot::kB, PackImage(image_), AcceptAnyPackage);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_EQ(PartitionB().substr(0, image_.size()), image_);
  EXPECT_EQ(PartitionB().substr(image_.size()), std::string(kPartitionSize - image_.size(), '\xee'))
      << "bytes past the image are left alone";
  const auto measured = *package::MeasurePrefix(dir_ / "part-b", image_.size());
  EXPECT_TRUE(CheckBootedOs(Partitions().Header(Slot::kB), {.os = &os_keys_}, measured, 2));
  EXPECT_FALSE(fs::exists(Partitions().Header(Slot::kA)));
}

TEST_F(PartitionSlots, AnImageLargerThanThePartitionIsRefusedBeforeThePartitionIsTouched) {
  ASSERT_TRUE(Partitions().Write(Slot::kB, PackImage(image_), AcceptAnyPackage));
  const std::string before = PartitionB();
  auto refused = Partitions().Write(Slot::kB, PackImage(std::string(kPartitionSize + 1, 'x')),
                                    AcceptAnyPackage);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("partition"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(PartitionB(), before);
  EXPECT_TRUE(fs::exists(Partitions().Header(Slot::kB))) << "what the slot holds is still proven";
}

TEST_F(PartitionSlots, WrongSoftwareAttackATreeIsNotWrittenToAPartitionNorAnImageToADirectory) {
  auto tree = Partitions().Write(Slot::kB, Pack(os_key_), AcceptAnyPackage);
  ASSERT_FALSE(tree);
  EXPECT_NE(tree.error().message().find("not an image"), std::string::npos)
      << tree.error().message();
  auto image = Writer().Write(Slot::kB, PackImage(image_), AcceptAnyPackage);
  ASSERT_FALSE(image);
  EXPECT_NE(image.error().message().find("not a root file system"), std::string::npos)
      << image.error().message();
  EXPECT_EQ(PartitionB(), std::string(kPartitionSize, '\xee'));
}

TEST_F(PartitionSlots, AnImageThatDoesNotReadBackAsSignedLeavesThePartitionUnproven) {
  ASSERT_TRUE(Partitions().Write(Slot::kB, PackImage(image_), AcceptAnyPackage));
  auto refused = Partitions().Write(
      Slot::kB, PackImage(image_, [](package::Manifest& m) { m.measurements["os"][0] ^= 1; }),
      AcceptAnyPackage);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), UpdateErrc::kInstall);
  EXPECT_FALSE(fs::exists(Partitions().Header(Slot::kB)))
      << "a header would prove a partition that does not hold its image";
}

TEST_F(PartitionSlots, DecompressionBombAttackAnImageLargerThanItsSignedSizeIsCutOff) {
  auto refused = Partitions().Write(
      Slot::kB, PackImage(image_, [](package::Manifest& m) { m.payload.unpacked_size = 4096; }),
      AcceptAnyPackage);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("larger than its signed size"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(PartitionB().substr(4096), std::string(kPartitionSize - 4096, '\xee'))
      << "nothing past the signed size was written";
  EXPECT_FALSE(fs::exists(Partitions().Header(Slot::kB)));
}

}  // namespace
}  // namespace aspis::device::update
