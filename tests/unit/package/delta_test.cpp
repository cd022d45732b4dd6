// Deltas between two versions of a package: the new package rebuilt byte for byte from the old
// package or from its installed tree, what a delta costs, and the attacks an applier refuses (each
// beside a positive twin built the same way without the attack).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "package/archive.hpp"
#include "package/delta.hpp"
#include "package/errors.hpp"
#include "package/libarchive_ptr.hpp"
#include "package/payload_compression.hpp"
#include "package/tar_scan.hpp"
#include "support/temp_dir.hpp"

namespace aspis::package {
namespace {

namespace fs = std::filesystem;

constexpr char kComponent[] = "0f0e0d0c-0b0a-4908-8706-050403020100";
constexpr char kConf[] = "etc/app.conf";

// Bytes that look like a binary: random, so that only a copy or a patch makes them cheap.
Bytes Binary(std::size_t size, std::uint32_t seed) {
  std::mt19937 random(seed);
  Bytes bytes(size);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
  return bytes;
}

std::string Text(int lines, std::string_view word) {
  std::string text;
  for (int i = 0; i < lines; ++i) text += std::string(word) + " line " + std::to_string(i) + "\n";
  return text;
}

void Put(const fs::path& path, ByteView bytes, fs::perms perms = fs::perms(0644)) {
  fs::create_directories(path.parent_path());
  ASSERT_TRUE(file::WriteDurably(path, bytes, 0644));
  fs::permissions(path, perms);
}

// The two versions of an OS tree a security update apart: one library patched, a config line
// changed, a tool added, a file removed, everything else the same.
void MakeOldTree(const fs::path& root) {
  Put(root / "usr/lib/libbig.so", Binary(3 << 20, 1));
  Put(root / "usr/lib/libfix.so", Binary(600 << 10, 2));
  Put(root / "usr/bin/tool", Binary(200 << 10, 3), fs::perms(0755));
  Put(root / kConf, AsBytes(Text(200, "setting")));
  Put(root / "usr/share/doc/removed", AsBytes(Text(50, "old")));
  fs::create_directory_symlink("usr/bin", root / "bin");
}

void MakeNewTree(const fs::path& root) {
  Put(root / "usr/lib/libbig.so", Binary(3 << 20, 1));
  Bytes fixed = Binary(600 << 10, 2);
  for (std::size_t at : {1000U, 250000U, 500000U}) fixed[at] ^= 0x5a;
  Put(root / "usr/lib/libfix.so", fixed);
  Put(root / "usr/bin/tool", Binary(200 << 10, 3), fs::perms(0755));
  Put(root / "usr/bin/newtool", AsBytes(Text(300, "new tool")), fs::perms(0755));
  std::string conf = Text(200, "setting");
  conf.replace(conf.find("line 17"), 7, "LINE 17");
  Put(root / kConf, AsBytes(conf));
  fs::create_directory_symlink("usr/bin", root / "bin");
}

class Delta : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeOldTree(dir_ / "old-tree");
    MakeNewTree(dir_ / "new-tree");
    old_ = Pack(dir_ / "old-tree", "old.aspkg", "1.0");
    new_ = Pack(dir_ / "new-tree", "new.aspkg", "1.1");
    fs::create_directories(dir_ / "out");
  }

  static Manifest ManifestOf(const fs::path& package) {
    auto source = FileSource::Open(package);
    return Reader::Inspect(*source)->manifest();
  }

  // Packs `tree` as pack-os does; returns the package's path.
  fs::path Pack(const fs::path& tree, const std::string& name, const std::string& version) {
    const fs::path payload = dir_ / (name + ".payload");
    auto packed = PackDirectory(tree, payload, {.symlinks = true});
    EXPECT_TRUE(packed) << packed.error().message();
    return Sign(payload, packed ? packed->unpacked_size : 0, name, version);
  }

  fs::path Sign(const fs::path& payload, std::uint64_t unpacked_size, const std::string& name,
                const std::string& version) {
    Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = kComponent;
    m.name = "aspis-os";
    m.kind = Kind::kOs;
    m.version = version;
    m.security_version = 1;
    m.payload.compression = Compression::kZstd;
    m.payload.unpacked_size = unpacked_size;
    m.target_boards = {"mt3620-virtual"};
    for (const char* measured : {"os", "aspisd", "trust-bundle"}) m.measurements[measured] = {};
    auto written = Write(m, payload, std::span(&key_, 1), dir_ / name);
    EXPECT_TRUE(written) << written.error().message();
    return dir_ / name;
  }

  static Bytes Contents(const fs::path& path) { return *file::Read(path, 128 << 20); }

  static DeltaTarget TargetOf(const fs::path& package) {
    const Bytes bytes = Contents(package);
    return {*crypto::Sha256Of(bytes), bytes.size()};
  }

  Expected<DeltaHeader> Apply(ByteView delta, DeltaBase& base, const DeltaTarget& expected,
                              const std::function<bool()>& keep_going = {}) {
    MemorySource source(delta);
    return ApplyDelta(source, base, expected, dir_ / "out" / "rebuilt.aspkg", keep_going);
  }
  Expected<DeltaHeader> ApplyToOldPackage(ByteView delta) {
    auto base = PackageBase::Create(old_);
    EXPECT_TRUE(base);
    return Apply(delta, **base, TargetOf(new_));
  }
  Expected<DeltaHeader> ApplyToTree(ByteView delta, const fs::path& tree) {
    auto base = TreeBase::Create(tree);
    EXPECT_TRUE(base) << base.error().message();
    return Apply(delta, **base, TargetOf(new_));
  }

  Bytes MadeDelta() {
    auto made = MakeDelta(old_, new_, dir_ / "delta");
    EXPECT_TRUE(made) << made.error().message();
    return Contents(dir_ / "delta");
  }

  // The old package unpacked, as the device's installed tree.
  fs::path Installed() {
    const Bytes package = Contents(old_);
    const auto header = static_cast<std::size_t>(*HeaderLength(package));
    Put(dir_ / "old.payload.copy", ByteView(package).subspan(header));
    const fs::path tree = dir_ / "installed";
    EXPECT_TRUE(UnpackArchive(dir_ / "old.payload.copy", tree, 1 << 30, {.symlinks = true}));
    return tree;
  }

  void ExpectNothingWritten() {
    EXPECT_FALSE(fs::exists(dir_ / "out" / "rebuilt.aspkg"));
    EXPECT_TRUE(fs::is_empty(dir_ / "out")) << "a temporary file was left behind";
  }

  // The payload tar of a package Aspis packed.
  static Bytes TarOf(const fs::path& package_path) {
    const Bytes package = Contents(package_path);
    const auto header_size = static_cast<std::size_t>(*HeaderLength(package));
    MemorySource payload(ByteView(package).subspan(header_size));
    auto zstd = ZstdSource::Create(payload, 23, true);
    Bytes tar;
    std::vector<std::uint8_t> chunk(65536);
    for (std::size_t n = 0; (n = *zstd->Read(chunk)) > 0;) {
      tar.insert(tar.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    }
    return tar;
  }

  // Signs `tar`, compressed as the packer does, as a version of the component whose manifest
  // declares `unpacked_size` (the tar's size unless said).
  fs::path SignTar(ByteView tar, const std::string& name, const std::string& version,
                   std::optional<std::uint64_t> unpacked_size = std::nullopt) {
    const fs::path payload = dir_ / (name + ".payload");
    Bytes compressed;
    auto compressor = PayloadCompressor::Create([&](ByteView b) -> Expected<void> {
      compressed.insert(compressed.end(), b.begin(), b.end());
      return {};
    });
    EXPECT_TRUE(compressor->Write(tar));
    EXPECT_TRUE(compressor->Finish());
    Put(payload, compressed);
    return Sign(payload, unpacked_size.value_or(tar.size()), name, version);
  }

  // A delta written by hand for `package` (the new one unless said): `ops` get its payload's tar
  // and where the data of kConf lies in it.
  using Ops = std::function<void(DeltaWriter&, const Bytes& tar, const TarEntry& conf)>;
  Bytes HandMade(const Ops& ops, const fs::path& package_path = {}) {
    const fs::path target = package_path.empty() ? new_ : package_path;
    const Bytes package = Contents(target);
    const auto header_size = static_cast<std::size_t>(*HeaderLength(package));
    const Bytes tar = TarOf(target);
    MemorySource tar_source(tar);
    TarScanner scanner(tar_source);
    TarEntry conf;
    while (auto entry = *scanner.Next()) {
      if (entry->path == kConf) conf = *entry;
    }
    DeltaHeader header;
    header.old_image_id = "old";
    header.new_image_id = ManifestOf(target).image_id;
    header.target_sha256 = *crypto::Sha256Of(package);
    header.target_size = package.size();
    header.tar_size = tar.size();
    header.compression = kPayloadCompressionProfile;
    header.target_header.assign(package.begin(),
                                package.begin() + static_cast<std::ptrdiff_t>(header_size));
    Bytes delta;
    auto writer = DeltaWriter::Create(
        header,
        [&](ByteView bytes) -> Expected<void> {
          delta.insert(delta.end(), bytes.begin(), bytes.end());
          return {};
        },
        3);
    ops(*writer, tar, conf);
    EXPECT_TRUE(writer->Finish());
    return delta;
  }

  // Hand-made operations that rebuild the new tar, patching kConf under the name `path`.
  Bytes PatchingConfAs(std::string_view path, std::optional<Bytes> frame = std::nullopt) {
    const Bytes old_conf = Contents(dir_ / "old-tree" / kConf);
    const Bytes new_conf = Contents(dir_ / "new-tree" / kConf);
    const Bytes patch = frame ? *frame : *MakePatch(old_conf, new_conf);
    return HandMade([&](DeltaWriter& w, const Bytes& tar, const TarEntry& conf) {
      ASSERT_EQ(conf.path, kConf);
      const ByteView all(tar);
      ASSERT_TRUE(w.Literal(all.first(conf.data_offset)));
      ASSERT_TRUE(
          w.Patch(path, old_conf.size(), *crypto::Sha256Of(old_conf), new_conf.size(), patch));
      ASSERT_TRUE(w.Literal(all.subspan(conf.data_offset + conf.size)));
    });
  }

  testing::TempDir dir_;
  crypto::PrivateKey key_ = *crypto::PrivateKey::GenerateP256();
  fs::path old_;
  fs::path new_;
};

TEST_F(Delta, RebuildsTheNewPackageBitForBitFromTheOldPackage) {
  auto made = MakeDelta(old_, new_, dir_ / "delta");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_EQ(made->full_size, Contents(new_).size());
  EXPECT_EQ(made->delta_size, Contents(dir_ / "delta").size());
  EXPECT_EQ(made->copied_files, 2U);   // libbig.so, tool
  EXPECT_EQ(made->patched_files, 2U);  // libfix.so, app.conf
  EXPECT_EQ(made->literal_files, 1U);  // newtool

  auto rebuilt = ApplyToOldPackage(Contents(dir_ / "delta"));
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

TEST_F(Delta, RebuildsTheNewPackageBitForBitFromAnInstalledTree) {
  const Bytes delta = MadeDelta();
  auto rebuilt = ApplyToTree(delta, Installed());
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
  EXPECT_EQ(rebuilt->new_image_id, ManifestOf(new_).image_id);
}

TEST_F(Delta, UnchangedFilesCostNothing) {
  // 3.8 MiB of incompressible files, of which 2 KiB changed and 5 KiB are new.
  const auto made = MakeDelta(old_, new_, dir_ / "delta");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_GT(made->full_size, 3'800'000U);
  EXPECT_LT(made->delta_size, 12'000U) << "copies and patches should cost bytes, not megabytes";
}

TEST_F(Delta, AFileThatChangedInAFewPlacesTravelsAsAPatch) {
  const Bytes old_lib = Contents(dir_ / "old-tree/usr/lib/libfix.so");
  const Bytes new_lib = Contents(dir_ / "new-tree/usr/lib/libfix.so");
  auto patch = MakePatch(old_lib, new_lib);
  ASSERT_TRUE(patch);
  EXPECT_LT(patch->size(), 1000U);
  EXPECT_GT(Contents(new_).size(), new_lib.size()) << "the library alone is incompressible";
}

TEST_F(Delta, PayloadCompressionDoesNotDependOnHowItsInputIsCut) {
  const Bytes input = Binary(3 << 20, 9);
  auto compress = [&](std::size_t piece) {
    Bytes out;
    auto compressor = PayloadCompressor::Create([&](ByteView b) -> Expected<void> {
      out.insert(out.end(), b.begin(), b.end());
      return {};
    });
    for (std::size_t at = 0; at < input.size(); at += piece) {
      EXPECT_TRUE(
          compressor->Write(ByteView(input).subspan(at, std::min(piece, input.size() - at))));
    }
    EXPECT_TRUE(compressor->Finish());
    return out;
  };
  const Bytes whole = compress(input.size());
  EXPECT_EQ(compress(7), whole);
  EXPECT_EQ(compress(10240), whole);
  EXPECT_EQ(compress((1 << 20) + 1), whole);
}

TEST_F(Delta, HandMadeOperationsThatPatchAFileRebuildThePackage) {
  auto rebuilt = ApplyToTree(PatchingConfAs(kConf), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

TEST_F(Delta, PathTraversalAttackInAPatchOpIsRefused) {
  // The file the attacker wants read sits beside the tree, with the very bytes of the old file.
  Put(dir_ / "secret", Contents(dir_ / "old-tree" / kConf));
  auto refused = ApplyToTree(PatchingConfAs("../secret"), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  EXPECT_NE(refused.error().message().find("climbs out of the base"), std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  EXPECT_TRUE(ApplyToTree(PatchingConfAs(kConf), dir_ / "old-tree"));
}

TEST_F(Delta, PathTraversalAttackWithAnAbsoluteOrNulPathIsRefused) {
  Put(dir_ / "secret", Contents(dir_ / "old-tree" / kConf));
  for (const std::string& path :
       {(dir_ / "secret").string(), std::string(kConf) + std::string(1, '\0') + "x"}) {
    auto refused = ApplyToTree(PatchingConfAs(path), dir_ / "old-tree");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), PackageErrc::kMalformed) << refused.error().message();
  }
  ExpectNothingWritten();
}

TEST_F(Delta, PathTraversalAttackThroughASymbolicLinkInTheInstalledTreeIsRefused) {
  // The installed tree's etc is a link to a directory elsewhere that holds the expected bytes.
  const fs::path tree = Installed();
  fs::rename(tree / "etc", dir_ / "elsewhere");
  fs::create_directory_symlink(dir_ / "elsewhere", tree / "etc");
  auto refused = ApplyToTree(PatchingConfAs(kConf), tree);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUnsafeEntry) << refused.error().message();
  ExpectNothingWritten();

  fs::remove(tree / "etc");
  fs::rename(dir_ / "elsewhere", tree / "etc");
  EXPECT_TRUE(ApplyToTree(PatchingConfAs(kConf), tree));
}

TEST_F(Delta, DecompressionBombAttackPatchLargerThanItsDeclaredSizeIsRefused) {
  // A patch frame that expands to 16 MiB where the operation declares the config's few KiB.
  const Bytes old_conf = Contents(dir_ / "old-tree" / kConf);
  const Bytes bomb = *MakePatch(old_conf, Bytes(16 << 20, 'A'));
  ASSERT_LT(bomb.size(), 4096U);
  auto refused = ApplyToTree(PatchingConfAs(kConf, bomb), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  EXPECT_NE(refused.error().message().find("decompresses beyond its declared size"),
            std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  EXPECT_TRUE(ApplyToTree(PatchingConfAs(kConf), dir_ / "old-tree"));
}

TEST_F(Delta, EndlessDataAttackAnOperationClaimingMoreThanTheTarHoldsIsRefused) {
  auto literal_tar = [&](std::size_t extra) {
    return HandMade([&](DeltaWriter& w, const Bytes& tar, const TarEntry&) {
      Bytes longer = tar;
      longer.resize(tar.size() + extra);
      ASSERT_TRUE(w.Literal(longer));
    });
  };
  auto refused = ApplyToTree(literal_tar(512), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  EXPECT_NE(refused.error().message().find("runs past the tar's declared size"), std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  auto rebuilt = ApplyToTree(literal_tar(0), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
}

TEST_F(Delta, ATruncatedOrExtendedDeltaIsRefusedAndLeavesNothingBehind) {
  const Bytes delta = MadeDelta();
  const fs::path tree = Installed();
  for (std::size_t keep : {delta.size() / 2, delta.size() - 1}) {
    auto refused = ApplyToTree(ByteView(delta).first(keep), tree);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), PackageErrc::kMalformed) << refused.error().message();
  }
  Bytes extended = delta;
  extended.push_back(0);
  auto refused = ApplyToTree(extended, tree);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed) << refused.error().message();
  ExpectNothingWritten();
  EXPECT_TRUE(ApplyToTree(delta, tree));
}

TEST_F(Delta, ABaseFileChangedOnDiskGivesAMismatchNotAWrongPackage) {
  const Bytes delta = MadeDelta();
  const fs::path tree = Installed();
  // Same size, one byte different: the copied library, then the patched one.
  for (const char* path : {"usr/lib/libbig.so", "usr/lib/libfix.so"}) {
    Bytes damaged = Contents(tree / path);
    damaged[4096] ^= 1;
    Put(tree / path, damaged);
    auto refused = ApplyToTree(delta, tree);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
    EXPECT_NE(refused.error().message().find("differs from the one the delta was made from"),
              std::string::npos)
        << refused.error().message();
    ExpectNothingWritten();
    damaged[4096] ^= 1;
    Put(tree / path, damaged);
  }
  EXPECT_TRUE(ApplyToTree(delta, tree));
}

TEST_F(Delta, AMissingBaseFileGivesAMismatch) {
  const Bytes delta = MadeDelta();
  const fs::path tree = Installed();
  fs::rename(tree / "usr/bin/tool", dir_ / "tool");
  auto refused = ApplyToTree(delta, tree);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("has no file usr/bin/tool"), std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  fs::rename(dir_ / "tool", tree / "usr/bin/tool");
  EXPECT_TRUE(ApplyToTree(delta, tree));
}

TEST_F(Delta, AnExpectedDigestFromTheCallerWinsOverTheDeltaHeader) {
  // A genuine delta to a package the update manifest does not name (the same tree, built again).
  const Bytes delta = MadeDelta();
  const fs::path other = Pack(dir_ / "new-tree", "other.aspkg", "1.1");
  auto base = PackageBase::Create(old_);
  ASSERT_TRUE(base);
  auto refused = Apply(delta, **base, TargetOf(other));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(
      refused.error().message().find("not the expected " + crypto::ToHex(TargetOf(other).sha256)),
      std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  EXPECT_TRUE(Apply(delta, **base, TargetOf(new_)));
}

TEST_F(Delta, ADeltaWhoseOperationsRebuildOtherBytesThanItsHeaderClaimsIsRefused) {
  // The header names the expected package, but one byte of the tar is the attacker's.
  auto forged = [&](std::uint8_t flip) {
    return HandMade([&](DeltaWriter& w, const Bytes& tar, const TarEntry& conf) {
      Bytes changed = tar;
      changed[conf.data_offset] ^= flip;
      ASSERT_TRUE(w.Literal(changed));
    });
  };
  auto refused = ApplyToTree(forged(1), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("the rebuilt package"), std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  EXPECT_TRUE(ApplyToTree(forged(0), dir_ / "old-tree"));
}

TEST_F(Delta, MakingADeltaToAPayloadThatCannotBeRecompressedExactlyFails) {
  // The new payload compressed by libarchive's zstd filter, as packages were before
  // PayloadCompressor: the delta cannot reproduce it, and MakeDelta says so instead of
  // producing a delta that devices would reject.
  const fs::path payload = dir_ / "libarchive.payload";
  {
    ArchiveWriter out(archive_write_new());
    archive_write_set_format_pax_restricted(out.get());
    archive_write_add_filter_zstd(out.get());
    ASSERT_EQ(archive_write_open_filename(out.get(), payload.c_str()), ARCHIVE_OK);
    const std::string data = Text(100, "x");
    ArchiveEntry entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), "etc/x");
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(data.size()));
    ASSERT_EQ(archive_write_header(out.get(), entry.get()), ARCHIVE_OK);
    archive_write_data(out.get(), data.data(), data.size());
    ASSERT_EQ(archive_write_close(out.get()), ARCHIVE_OK);
  }
  std::uint64_t unpacked = 0;
  {
    auto source = FileSource::Open(payload);
    auto zstd = ZstdSource::Create(*source, 27, false);
    std::vector<std::uint8_t> chunk(65536);
    for (std::size_t n = 0; (n = *zstd->Read(chunk)) > 0;) unpacked += n;
  }
  const fs::path foreign = Sign(payload, unpacked, "foreign.aspkg", "1.2");
  auto refused = MakeDelta(old_, foreign, dir_ / "delta");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
  EXPECT_NE(refused.error().message().find("does not rebuild the new package byte for byte"),
            std::string::npos)
      << refused.error().message();
  EXPECT_FALSE(fs::exists(dir_ / "delta"));
  EXPECT_TRUE(MakeDelta(old_, new_, dir_ / "delta"));
}

TEST_F(Delta, APackageBaseFindsFilesInAnyOrder) {
  auto base = PackageBase::Create(old_);
  ASSERT_TRUE(base);
  for (const char* path : {"usr/lib/libfix.so", kConf, "usr/lib/libfix.so"}) {
    auto size = (*base)->Open(path);
    ASSERT_TRUE(size) << size.error().message();
    Bytes read(static_cast<std::size_t>(*size));
    for (std::size_t done = 0; done < read.size();) {
      done += *(*base)->Read(std::span(read).subspan(done));
    }
    EXPECT_EQ(read, Contents(dir_ / "old-tree" / path)) << path;
  }
  auto missing = (*base)->Open("usr/lib/none.so");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), PackageErrc::kMismatch);
}

TEST_F(Delta, DeltasBetweenDifferentComponentsAreNotMade) {
  Manifest m = ManifestOf(new_);
  const fs::path payload = dir_ / "x.payload";
  ASSERT_TRUE(PackDirectory(dir_ / "new-tree", payload, {.symlinks = true}));
  m.component_id = "11111111-2222-4333-8444-555555555555";
  m.image_id = *crypto::RandomUuid();
  ASSERT_TRUE(Write(m, payload, std::span(&key_, 1), dir_ / "x.aspkg"));
  auto refused = MakeDelta(old_, dir_ / "x.aspkg", dir_ / "delta");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMismatch);
}

// --- The maker against hostile packages -------------------------------------------------------

TEST_F(Delta, DecompressionBombAttackOnTheMakerStopsAtTheDeclaredUnpackedSize) {
  // 64 MiB of zeros compress to a few KiB; the manifest declares 10 KiB.
  const fs::path bomb = SignTar(Bytes(64 << 20, 0), "bomb.aspkg", "1.2", 10240);
  ASSERT_LT(fs::file_size(bomb), 70'000U);
  for (const auto& [from, to] : {std::pair{old_, bomb}, std::pair{bomb, new_}}) {
    auto refused = MakeDelta(from, to, dir_ / "delta");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), PackageErrc::kTooLarge) << refused.error().message();
    EXPECT_NE(refused.error().message().find(
                  "decompresses to more than its manifest's unpacked_size of 10240 bytes"),
              std::string::npos)
        << refused.error().message();
    EXPECT_FALSE(fs::exists(dir_ / "delta"));
  }
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find("delta.work-"), std::string::npos)
        << "a work directory was left behind";
  }
  EXPECT_TRUE(MakeDelta(old_, new_, dir_ / "delta"));
}

TEST_F(Delta, DiskExhaustionAttackMakingADeltaWithoutTheSpaceItNeedsIsRefusedBeforeStarting) {
  // The old package declares 8 GiB of tar (the most a manifest may); making would need it free.
  const fs::path declared = dir_ / "declared.payload";
  fs::copy_file(dir_ / "old.aspkg.payload", declared);
  const fs::path huge = Sign(declared, kMaxPayloadSize, "huge.aspkg", "1.0");
  const std::uint64_t needed = MakeDeltaSpaceNeeded(
      kMaxPayloadSize, ManifestOf(new_).payload.unpacked_size, Contents(new_).size());
  EXPECT_EQ(needed, kMaxPayloadSize + ManifestOf(new_).payload.unpacked_size +
                        Contents(new_).size() + (64 << 20));
  fs::path probed;
  auto free_space = [&](std::uint64_t free) {
    return [&probed, free](const fs::path& dir) -> Expected<std::uint64_t> {
      probed = dir;
      return free;
    };
  };
  auto refused = MakeDelta(huge, new_, dir_ / "delta", free_space(needed - 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kIo) << "too little space is transient";
  EXPECT_NE(refused.error().message().find("not enough free space in " + dir_.path().string() +
                                           " to make the delta: it needs " +
                                           std::to_string(needed) + " bytes"),
            std::string::npos)
      << refused.error().message();
  EXPECT_EQ(probed, dir_.path());
  EXPECT_FALSE(fs::exists(dir_ / "delta"));

  // With the room it asks for, the (harmless) package is made into a delta.
  EXPECT_TRUE(MakeDelta(huge, new_, dir_ / "delta", free_space(needed)));
}

TEST_F(Delta, EmptyFilesTravelInTheirHeadersWithoutAnOperation) {
  for (const char* tree : {"old-tree", "new-tree"}) Put(dir_ / tree / "var/empty", Bytes{});
  old_ = Pack(dir_ / "old-tree", "old.aspkg", "1.0");
  new_ = Pack(dir_ / "new-tree", "new.aspkg", "1.1");
  auto made = MakeDelta(old_, new_, dir_ / "delta");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_EQ(made->copied_files + made->patched_files + made->literal_files, 5U)
      << "the empty file is none of these";
  auto rebuilt = ApplyToTree(Contents(dir_ / "delta"), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

// --- The applier against a hostile service that wants to keep a device busy -------------------

TEST_F(Delta, StallAttackCopyOrPatchThatProducesNothingIsRefused) {
  // Each op would make the device read and hash a whole base file for nothing; a million of them
  // compress to a few KiB.
  Put(dir_ / "old-tree/var/empty", Bytes{});
  const Bytes big = Contents(dir_ / "old-tree/usr/lib/libbig.so");
  const Bytes old_conf = Contents(dir_ / "old-tree" / kConf);
  const Bytes new_conf = Contents(dir_ / "new-tree" / kConf);
  const Bytes conf_patch = *MakePatch(old_conf, new_conf);
  const Bytes nothing_patch = *MakePatch(big, Bytes{}, 1);
  auto delta = [&](const std::function<void(DeltaWriter&)>& extra) {
    return HandMade([&](DeltaWriter& w, const Bytes& tar, const TarEntry& conf) {
      const ByteView all(tar);
      ASSERT_TRUE(w.Literal(all.first(conf.data_offset)));
      extra(w);
      ASSERT_TRUE(w.Patch(kConf, old_conf.size(), *crypto::Sha256Of(old_conf), new_conf.size(),
                          conf_patch));
      ASSERT_TRUE(w.Literal(all.subspan(conf.data_offset + conf.size)));
    });
  };
  const std::vector<std::pair<std::string, std::function<void(DeltaWriter&)>>> attacks = {
      {"the patch of \"usr/lib/libbig.so\" produces no bytes",
       [&](DeltaWriter& w) {
         for (int i = 0; i < 3; ++i) {
           ASSERT_TRUE(
               w.Patch("usr/lib/libbig.so", big.size(), *crypto::Sha256Of(big), 0, nothing_patch));
         }
       }},
      {"the copy of \"var/empty\" produces no bytes",
       [&](DeltaWriter& w) {
         for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.Copy("var/empty", 0, *crypto::Sha256Of({})));
       }},
  };
  for (const auto& [reason, extra] : attacks) {
    auto refused = ApplyToTree(delta(extra), dir_ / "old-tree");
    ASSERT_FALSE(refused) << reason;
    EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
    EXPECT_NE(refused.error().message().find(reason), std::string::npos)
        << refused.error().message();
    ExpectNothingWritten();
  }
  auto rebuilt = ApplyToTree(delta([](DeltaWriter&) {}), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
}

TEST_F(Delta, StallAttackWithMoreOperationsThanTheTarNeedsIsRefused) {
  auto delta = [&](std::uint64_t empty_literals) {
    return HandMade([&](DeltaWriter& w, const Bytes& tar, const TarEntry&) {
      for (std::uint64_t i = 0; i < empty_literals; ++i) ASSERT_TRUE(w.Literal({}));
      ASSERT_TRUE(w.Literal(tar));
    });
  };
  const std::uint64_t most = MaxDeltaOperations(TarOf(new_).size());
  auto refused = ApplyToTree(delta(most), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  EXPECT_NE(refused.error().message().find("the delta has more than " + std::to_string(most) +
                                           " operations"),
            std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  auto rebuilt = ApplyToTree(delta(most - 1), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
}

TEST_F(Delta, StallAttackReadingABaseFileOverAndOverIsRefused) {
  // Each patch reads the 3 MiB library to produce one byte of the tar.
  const Bytes big = Contents(dir_ / "old-tree/usr/lib/libbig.so");
  const crypto::Digest big_sha256 = *crypto::Sha256Of(big);
  const Bytes tar = TarOf(new_);
  const std::uint64_t most = MaxDeltaBaseBytes(tar.size()) / big.size();
  std::map<std::uint8_t, Bytes> patches;
  for (std::uint64_t i = 0; i <= most; ++i) {
    if (!patches.contains(tar[i])) patches[tar[i]] = *MakePatch(big, Bytes{tar[i]}, 1);
  }
  auto delta = [&](std::uint64_t reads) {
    return HandMade([&](DeltaWriter& w, const Bytes& all, const TarEntry&) {
      for (std::uint64_t i = 0; i < reads; ++i) {
        ASSERT_TRUE(w.Patch("usr/lib/libbig.so", big.size(), big_sha256, 1, patches[all[i]]));
      }
      ASSERT_TRUE(w.Literal(ByteView(all).subspan(reads)));
    });
  };
  auto refused = ApplyToTree(delta(most + 1), dir_ / "old-tree");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kMalformed);
  EXPECT_NE(refused.error().message().find("the delta reads more than " +
                                           std::to_string(MaxDeltaBaseBytes(tar.size())) +
                                           " bytes of base files"),
            std::string::npos)
      << refused.error().message();
  ExpectNothingWritten();
  auto rebuilt = ApplyToTree(delta(most), dir_ / "old-tree");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
}

TEST_F(Delta, StallAttackIsPausedWhenTheCallerSaysStop) {
  const Bytes delta = MadeDelta();
  const fs::path tree = Installed();
  auto base = TreeBase::Create(tree);
  int asked = 0;
  auto refused = Apply(delta, **base, TargetOf(new_), [&] { return ++asked < 3; });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kCancelled);
  EXPECT_NE(refused.error().message().find("paused"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(asked, 3);
  ExpectNothingWritten();

  asked = 0;
  auto rebuilt = Apply(delta, **base, TargetOf(new_), [&] { return ++asked > 0; });
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_GE(asked, 9) << "asked before each of the delta's operations";
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

TEST_F(Delta, StallAttackIsPausedWhenTheCallerSaysStopInsideALongOperation) {
  // One literal of 20 MiB: the caller is asked before it and again after 16 MiB of it.
  Put(dir_ / "large-tree/usr/lib/large.so", Binary(20 << 20, 7));
  const fs::path large = Pack(dir_ / "large-tree", "large.aspkg", "2.0");
  const Bytes delta = HandMade(
      [&](DeltaWriter& w, const Bytes& tar, const TarEntry&) { ASSERT_TRUE(w.Literal(tar)); },
      large);
  auto base = TreeBase::Create(dir_ / "old-tree");
  int asked = 0;
  auto refused = Apply(delta, **base, TargetOf(large), [&] { return ++asked < 2; });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kCancelled) << refused.error().message();
  EXPECT_EQ(asked, 2);
  ExpectNothingWritten();

  asked = 0;
  auto rebuilt = Apply(delta, **base, TargetOf(large), [&] { return ++asked > 0; });
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(large));
}

TEST_F(Delta, MakingADeltaWhosePatchesWouldReadTooMuchOfTheBaseSendsTheRestWhole) {
  // Five 16 MiB old files whose new versions are their first KiB: patching all five would read
  // 80 MiB of base for a tar of a few KiB, over MaxDeltaBaseBytes; the fifth travels whole.
  for (int i = 0; i < 5; ++i) {
    Bytes old_file(kMaxPatchedFileSize, 0);
    const Bytes head = Binary(1024, 100 + i);
    std::copy(head.begin(), head.end(), old_file.begin());
    Put(dir_ / "wide-old" / ("lib" + std::to_string(i)), old_file);
    Put(dir_ / "wide-new" / ("lib" + std::to_string(i)), head);
  }
  old_ = Pack(dir_ / "wide-old", "old.aspkg", "1.0");
  new_ = Pack(dir_ / "wide-new", "new.aspkg", "1.1");
  auto made = MakeDelta(old_, new_, dir_ / "delta");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_EQ(made->patched_files, 4U);
  EXPECT_EQ(made->literal_files, 1U);
  auto rebuilt = ApplyToTree(Contents(dir_ / "delta"), dir_ / "wide-old");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

TEST_F(Delta, AnOldPackageWithItsFilesInReverseOrderStillGivesADelta) {
  // 4,000 small files, in path order in the new package and in reverse order in the old one (a
  // maker that looked each old file up by reading the old payload forward took half a minute on
  // this; how long it takes is a benchmark's to say, not a test's).
  constexpr int kFiles = 4000;
  fs::create_directories(dir_ / "many/f");
  for (int i = 0; i < kFiles; ++i) {
    std::ofstream(dir_ / "many/f" / std::to_string(10000 + i)) << "file " << i;
  }
  new_ = Pack(dir_ / "many", "new.aspkg", "1.1");
  const Bytes tar = TarOf(new_);
  std::vector<ByteView> entries;
  {
    MemorySource source(tar);
    TarScanner scanner(source);
    while (auto entry = *scanner.Next()) {
      const std::uint64_t end = entry->data_offset + (entry->size + 511) / 512 * 512;
      entries.push_back(ByteView(tar).subspan(entry->header_offset, end - entry->header_offset));
    }
  }
  ASSERT_GT(entries.size(), static_cast<std::size_t>(kFiles));
  Bytes reversed;
  for (auto entry = entries.rbegin(); entry != entries.rend(); ++entry) {
    reversed.insert(reversed.end(), entry->begin(), entry->end());
  }
  reversed.resize(reversed.size() + 1024, 0);
  old_ = SignTar(reversed, "old.aspkg", "1.0");

  auto made = MakeDelta(old_, new_, dir_ / "delta");
  ASSERT_TRUE(made) << made.error().message();
  EXPECT_EQ(made->copied_files, static_cast<std::uint64_t>(kFiles));
  auto rebuilt = ApplyToTree(Contents(dir_ / "delta"), dir_ / "many");
  ASSERT_TRUE(rebuilt) << rebuilt.error().message();
  EXPECT_EQ(Contents(dir_ / "out" / "rebuilt.aspkg"), Contents(new_));
}

}  // namespace
}  // namespace aspis::package
