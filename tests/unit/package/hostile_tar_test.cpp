// Hand-made hostile tars whose names are not ASCII, unpacked in the C locale daemons run in (the
// reader converts pax names from UTF-8): each is refused, or stays inside its target.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "package/archive.hpp"
#include "package/errors.hpp"
#include "support/temp_dir.hpp"

namespace aspis::package {
namespace {

namespace fs = std::filesystem;

std::string Octal(std::uint64_t value, std::size_t width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
  return std::string(buf, width - 1) + '\0';
}

// One 512-byte ustar header and its padded body.
std::string Entry(const std::string& name, char type, const std::string& body,
                  const std::string& link = "", unsigned mode = 0644) {
  std::string h(512, '\0');
  h.replace(0, std::min<std::size_t>(name.size(), 100), name.substr(0, 100));
  h.replace(100, 8, Octal(mode, 8));
  h.replace(108, 8, Octal(0, 8));
  h.replace(116, 8, Octal(0, 8));
  h.replace(124, 12, Octal(body.size(), 12));
  h.replace(136, 12, Octal(0, 12));
  h[156] = type;
  h.replace(157, std::min<std::size_t>(link.size(), 100), link.substr(0, 100));
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  h.replace(148, 8, std::string(8, ' '));
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  h.replace(148, 8, Octal(sum, 7) + ' ');
  std::string padded = body;
  padded.resize((body.size() + 511) / 512 * 512, '\0');
  return h + padded;
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  const std::string rest = " " + key + "=" + value + "\n";
  std::size_t len = rest.size() + 1;
  while (std::to_string(len).size() + rest.size() != len) ++len;
  return std::to_string(len) + rest;
}

std::string End() { return std::string(1024, '\0'); }

class HostileTar : public ::testing::Test {
 protected:
  Expected<void> Unpack(const std::string& tar, TreeRules rules = {}) {
    std::ofstream(dir_ / "in.tar", std::ios::binary | std::ios::trunc) << tar;
    auto r = UnpackArchive(dir_ / "in.tar", dir_ / "out/target", 1 << 20, rules);
    return r;
  }
  void SetUp() override { fs::create_directories(dir_ / "out"); }
  // Everything under out/ but outside out/target.
  std::vector<std::string> Outside() {
    std::vector<std::string> found;
    for (auto& e : fs::recursive_directory_iterator(dir_ / "out")) {
      const auto rel = e.path().lexically_relative(dir_ / "out").string();
      if (rel != "target" && !rel.starts_with("target/")) found.push_back(rel);
    }
    return found;
  }
  testing::TempDir dir_;
};

const std::string kE = "\xc3\xa9";  // é in UTF-8

TEST_F(HostileTar, PathTraversalAttackANonAsciiPaxPathClimbingOutIsRefused) {
  auto r = Unpack(Entry("PaxHeaders/x", 'x', PaxRecord("path", kE + "/../../../evil")) +
                  Entry("ok", '0', "data") + End());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), PackageErrc::kUnsafeEntry) << r.error().message();
  EXPECT_TRUE(Outside().empty());
}

TEST_F(HostileTar, PathTraversalAttackAMalformedPaxRecordLeavesTheUstarNameInside) {
  auto r = Unpack(Entry("PaxHeaders/x", 'x', PaxRecord("path", "../../evil") + "garbage\n") +
                  Entry("ok", '0', "data") + End());
  EXPECT_TRUE(Outside().empty());
  if (r) {
    EXPECT_TRUE(fs::exists(dir_ / "out/target/ok"));
  }
}

TEST_F(HostileTar, PathTraversalAttackAHardLinkWithANonAsciiLinkpathIsRefused) {
  auto r = Unpack(Entry("PaxHeaders/x", 'x', PaxRecord("linkpath", "../" + kE)) +
                  Entry("h", '1', "") + End());
  EXPECT_FALSE(r) << "a hard link was unpacked";
  EXPECT_TRUE(Outside().empty());
}

// The same hard link whose ustar mode carries S_IFREG: libarchive keeps no link of it (an empty
// regular file at most), so nothing outside the target is reached.
TEST_F(HostileTar, PathTraversalAttackAHardLinkDisguisedByARegularModeMakesNoLink) {
  auto r = Unpack(Entry("PaxHeaders/x", 'x', PaxRecord("linkpath", "../" + kE)) +
                  Entry("h", '1', "", "", 0100644) + End());
  EXPECT_TRUE(Outside().empty());
  if (r) {
    EXPECT_EQ(fs::file_size(dir_ / "out/target/h"), 0U);
    EXPECT_EQ(fs::hard_link_count(dir_ / "out/target/h"), 1U) << "a hard link was made";
  }
}

TEST_F(HostileTar, PathTraversalAttackANonAsciiSymbolicLinkOutOfTheTreeIsRefused) {
  auto r = Unpack(Entry("PaxHeaders/x", 'x', PaxRecord("linkpath", kE + "/../../x")) +
                      Entry("l", '2', "", "inside", 0777) + End(),
                  {.symlinks = true});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), PackageErrc::kUnsafeEntry) << r.error().message();
}

TEST_F(HostileTar, AnEntryBehindTooManySpecialHeadersIsRefused) {
  std::string tar;
  for (int i = 0; i < 40; ++i) tar += Entry("PaxHeaders/x", 'x', PaxRecord("comment", "c"));
  tar += Entry("ok", '0', Entry("../smuggled", '0', "outside")) + End();
  auto r = Unpack(tar);
  EXPECT_FALSE(r) << "accepted";
  EXPECT_TRUE(Outside().empty());
}

}  // namespace
}  // namespace aspis::package
