// App payload archives: packing a directory, and unpacking that never writes outside its target.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/file.hpp"
#include "package/archive.hpp"
#include "package/errors.hpp"
#include "package/libarchive_ptr.hpp"
#include "package/measure.hpp"
#include "package/payload_compression.hpp"
#include "package/tar_scan.hpp"
#include "support/temp_dir.hpp"

namespace aspis::package {
namespace {

namespace fs = std::filesystem;

struct TarEntry {
  std::string path;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string data;
  std::string link;      // symbolic link target
  std::string hardlink;  // hard link target
};

// A zstd tar holding `entries` exactly as given, as a hostile publisher could make it.
void WriteTar(const fs::path& path, const std::vector<TarEntry>& entries) {
  ArchiveWriter out(archive_write_new());
  archive_write_set_format_pax_restricted(out.get());
  archive_write_add_filter_zstd(out.get());
  ASSERT_EQ(archive_write_open_filename(out.get(), path.c_str()), ARCHIVE_OK);
  for (const auto& e : entries) {
    ArchiveEntry entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), e.path.c_str());
    archive_entry_set_filetype(entry.get(), e.type);
    archive_entry_set_perm(entry.get(), e.perm);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(e.data.size()));
    if (!e.link.empty()) archive_entry_set_symlink(entry.get(), e.link.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(entry.get(), e.hardlink.c_str());
    ASSERT_EQ(archive_write_header(out.get(), entry.get()), ARCHIVE_OK);
    if (!e.data.empty()) archive_write_data(out.get(), e.data.data(), e.data.size());
  }
  ASSERT_EQ(archive_write_close(out.get()), ARCHIVE_OK);
}

class Archive : public ::testing::Test {
 protected:
  // Unpacks a tar of `entries` plus a harmless file; expects kUnsafeEntry naming `reason`, and
  // that nothing was written, inside the target or beside it.
  void ExpectRefused(const std::vector<TarEntry>& entries, std::string_view reason,
                     TreeRules rules = {}) {
    std::vector<TarEntry> all = {{.path = "bin/app", .perm = 0755, .data = "#!/bin/sh\n"}};
    all.insert(all.end(), entries.begin(), entries.end());
    WriteTar(dir_ / "hostile.tar.zst", all);
    auto refused =
        UnpackArchive(dir_ / "hostile.tar.zst", dir_ / "work" / "target", 1 << 20, rules);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), PackageErrc::kUnsafeEntry) << refused.error().message();
    EXPECT_NE(refused.error().message().find(reason), std::string::npos)
        << refused.error().message();
    EXPECT_FALSE(fs::exists(dir_ / "work" / "target")) << "the target is removed";
    EXPECT_FALSE(fs::exists(dir_ / "work" / "evil"));
    EXPECT_FALSE(fs::exists(dir_ / "evil"));
  }

  void SetUp() override { fs::create_directories(dir_ / "work"); }

  testing::TempDir dir_;
};

TEST_F(Archive, DirectoryPacksAndUnpacksToTheSameTree) {
  fs::create_directories(dir_ / "app" / "bin");
  std::ofstream(dir_ / "app" / "app_manifest.json") << "{}";
  std::ofstream(dir_ / "app" / "bin" / "app") << "#!/bin/sh\necho hi\n";
  fs::permissions(dir_ / "app" / "bin" / "app", fs::perms::owner_all | fs::perms::group_read);
  auto packed = PackDirectory(dir_ / "app", dir_ / "app.tar.zst");
  ASSERT_TRUE(packed) << packed.error().message();
  EXPECT_GT(packed->unpacked_size, 0u);
  auto unpacked = UnpackArchive(dir_ / "app.tar.zst", dir_ / "out", packed->unpacked_size);
  ASSERT_TRUE(unpacked) << unpacked.error().message();
  EXPECT_EQ(*file::Read(dir_ / "out" / "bin" / "app"), *file::Read(dir_ / "app" / "bin" / "app"));
  EXPECT_EQ(fs::status(dir_ / "out" / "bin" / "app").permissions(),
            fs::perms::owner_all | fs::perms::group_read);
  // Packing is reproducible: the same tree gives the same bytes.
  ASSERT_TRUE(PackDirectory(dir_ / "app", dir_ / "again.tar.zst"));
  EXPECT_EQ(*file::Read(dir_ / "app.tar.zst"), *file::Read(dir_ / "again.tar.zst"));
}

TEST_F(Archive, FileNamesThatAreNotAsciiPackAndUnpackWhateverTheLocale) {
  // The process runs in the C locale, as daemons do; names travel as UTF-8.
  fs::create_directories(dir_ / "app" / "données");
  std::ofstream(dir_ / "app" / "données" / "café.txt") << "crème";
  fs::create_symlink("données/café.txt", dir_ / "app" / "lien-é");
  auto packed = PackDirectory(dir_ / "app", dir_ / "app.tar.zst", {.symlinks = true});
  ASSERT_TRUE(packed) << packed.error().message();
  auto unpacked =
      UnpackArchive(dir_ / "app.tar.zst", dir_ / "out", packed->unpacked_size, {.symlinks = true});
  ASSERT_TRUE(unpacked) << unpacked.error().message();
  EXPECT_EQ(AsString(*file::Read(dir_ / "out" / "données" / "café.txt")), "crème");
  EXPECT_EQ(fs::read_symlink(dir_ / "out" / "lien-é"), "données/café.txt");
  // Even a name that is not UTF-8: names are bytes.
  std::ofstream(dir_ / "app" / "raw-\xff-name") << "bytes";
  auto raw = PackDirectory(dir_ / "app", dir_ / "raw.tar.zst", {.symlinks = true});
  ASSERT_TRUE(raw) << raw.error().message();
  ASSERT_TRUE(
      UnpackArchive(dir_ / "raw.tar.zst", dir_ / "raw", raw->unpacked_size, {.symlinks = true}));
  EXPECT_EQ(AsString(*file::Read(dir_ / "raw" / "raw-\xff-name")), "bytes");
}

TEST_F(Archive, AnAsciiTreeCarriesNoPaxHeaders) {
  fs::create_directories(dir_ / "app" / "bin");
  std::ofstream(dir_ / "app" / "bin" / "app") << "#!/bin/sh\n";
  auto packed = PackDirectory(dir_ / "app", dir_ / "app.tar.zst");
  ASSERT_TRUE(packed) << packed.error().message();
  auto file = FileSource::Open(dir_ / "app.tar.zst");
  ASSERT_TRUE(file);
  auto tar = ZstdSource::Create(*file, 27, true);
  ASSERT_TRUE(tar);
  TarScanner scanner(*tar);
  int entries = 0;
  for (auto entry = scanner.Next(); entry && *entry; entry = scanner.Next(), ++entries) {
    EXPECT_EQ((*entry)->data_offset - (*entry)->header_offset, 512U)
        << (*entry)->path << " has an extended header";
  }
  EXPECT_EQ(entries, 2);
}

TEST_F(Archive, PathTraversalAttackDotDotEntryIsRefused) {
  ExpectRefused({{.path = "../evil", .data = "x"}}, "climbs out of its directory");
  ExpectRefused({{.path = "bin/../../evil", .data = "x"}}, "climbs out of its directory");
}

TEST_F(Archive, PathTraversalAttackAbsolutePathIsRefused) {
  ExpectRefused({{.path = (dir_ / "evil").string(), .data = "x"}}, "has an absolute path");
}

TEST_F(Archive, PathTraversalAttackSymbolicLinkOutIsRefused) {
  // A link to the parent, then a file written through it.
  ExpectRefused({{.path = "up", .type = AE_IFLNK, .link = ".."}, {.path = "up/evil", .data = "x"}},
                "is a symbolic link");
}

TEST_F(Archive, PathTraversalAttackHardLinkIsRefused) {
  ExpectRefused({{.path = "passwd", .hardlink = "/etc/passwd"}}, "is a hard link");
}

TEST_F(Archive, DeviceNodeAndSetuidEntriesAreRefused) {
  ExpectRefused({{.path = "dev/mem", .type = AE_IFCHR}}, "is a device node");
  ExpectRefused({{.path = "bin/su", .perm = 04755, .data = "x"}}, "setuid");
}

TEST_F(Archive, ArchiveUnpackingPastItsDeclaredSizeIsRefused) {
  WriteTar(dir_ / "big.tar.zst", {{.path = "a", .data = std::string(1000, 'a')},
                                  {.path = "b", .data = std::string(1000, 'b')}});
  auto refused = UnpackArchive(dir_ / "big.tar.zst", dir_ / "out", 1500);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kTooLarge);
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  EXPECT_TRUE(UnpackArchive(dir_ / "big.tar.zst", dir_ / "out", 2000));
}

TEST_F(Archive, PackingRefusesLinksInTheSourceDirectory) {
  fs::create_directories(dir_ / "app");
  fs::create_symlink("/etc/passwd", dir_ / "app" / "passwd");
  auto refused = PackDirectory(dir_ / "app", dir_ / "app.tar.zst");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUnsafeEntry);
}

TEST_F(Archive, OsTreeWithLinksInsideItPacksAndUnpacksToTheSameMeasurement) {
  const fs::path os = dir_ / "os";
  fs::create_directories(os / "usr" / "bin");
  fs::create_directories(os / "usr" / "sbin");
  fs::create_directories(os / "etc" / "aspis");
  std::ofstream(os / "usr" / "bin" / "sh") << "shell";
  std::ofstream(os / kAspisdInRootfs) << "aspisd";
  std::ofstream(os / kTrustBundleInRootfs) << "roots";
  fs::permissions(os / "usr" / "bin" / "sh", fs::perms::owner_all);
  fs::create_directory_symlink("usr/bin", os / "bin");
  fs::create_symlink("../bin/sh", os / "usr" / "sbin" / "sh");
  auto before = MeasureOsTree(os);
  ASSERT_TRUE(before) << before.error().message();
  auto packed = PackDirectory(os, dir_ / "os.tar.zst", {.symlinks = true});
  ASSERT_TRUE(packed) << packed.error().message();
  ASSERT_TRUE(
      UnpackArchive(dir_ / "os.tar.zst", dir_ / "slot", packed->unpacked_size, {.symlinks = true}));
  EXPECT_EQ(fs::read_symlink(dir_ / "slot" / "bin"), "usr/bin");
  auto after = MeasureOsTree(dir_ / "slot");
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(*before, *after) << "the device measures what the package recorded";
  EXPECT_EQ(before->size(), 3u);
  // App trees hold no links.
  EXPECT_FALSE(PackDirectory(os, dir_ / "app.tar.zst"));
  EXPECT_FALSE(UnpackArchive(dir_ / "os.tar.zst", dir_ / "app", packed->unpacked_size));
}

TEST_F(Archive, PathTraversalAttackLinkOutOfAnOsTreeIsRefused) {
  const TreeRules os{.symlinks = true};
  ExpectRefused({{.path = "up", .type = AE_IFLNK, .link = ".."}}, "out of its tree", os);
  ExpectRefused({{.path = "usr/lib", .type = AE_IFLNK, .link = "../../etc"}}, "out of its tree",
                os);
  ExpectRefused({{.path = "etc", .type = AE_IFLNK, .link = "/etc"}}, "to an absolute path", os);
}

TEST_F(Archive, PathTraversalAttackWriteThroughALinkInsideTheTreeIsRefused) {
  const TreeRules os{.symlinks = true};
  // Each link stays inside the tree, but writing through one could reach a later link's target.
  ExpectRefused({{.path = "d", .type = AE_IFLNK, .link = "bin"}, {.path = "d/evil", .data = "x"}},
                "through the symbolic link d", os);
  ExpectRefused({{.path = "d", .type = AE_IFLNK, .link = "bin"}, {.path = "./d", .data = "x"}},
                "replaces a symbolic link", os);
}

TEST_F(Archive, PackingRefusesLinksOutOfAnOsTree) {
  fs::create_directories(dir_ / "os");
  fs::create_symlink("/etc/passwd", dir_ / "os" / "passwd");
  auto refused = PackDirectory(dir_ / "os", dir_ / "os.tar.zst", {.symlinks = true});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUnsafeEntry);
  EXPECT_NE(refused.error().message().find("absolute"), std::string::npos);
}

}  // namespace
}  // namespace aspis::package
