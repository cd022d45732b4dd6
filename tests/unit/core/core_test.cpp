#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "support/faulty_file_system.hpp"
#include "support/power_cut_file_system.hpp"
#include "support/temp_dir.hpp"

namespace aspis {
namespace {

using testing::TempDir;

TEST(Error, ContextIsPrefixedOutermostFirst) {
  Error e(CoreErrc::kNotFound, "no such file");
  Error wrapped = std::move(e).WithContext("reading key").WithContext("loading identity");
  EXPECT_EQ(wrapped.message(), "loading identity: reading key: no such file");
  EXPECT_EQ(wrapped, CoreErrc::kNotFound);
  EXPECT_EQ(wrapped.code().category().name(), std::string("aspis.core"));
}

TEST(Error, CategoriesNameEveryCodeAndSayWhenOneIsUnknown) {
  EXPECT_EQ(std::error_code(CoreErrc::kParse).message(), "parse error");
  EXPECT_EQ(std::error_code(CoreErrc::kInvalidArgument).message(), "invalid argument");
  EXPECT_EQ(std::error_code(99, CoreCategory()).message(), "aspis.core error 99");
  EXPECT_EQ(std::error_code(0, CoreCategory()).message(), "aspis.core error 0");
}

TEST(Error, WithContextOnExpectedLeavesValuesAlone) {
  Expected<int> ok = 7;
  EXPECT_EQ(*WithContext(std::move(ok), "ctx"), 7);
  Expected<int> bad = Fail(CoreErrc::kIo, "disk");
  EXPECT_EQ(WithContext(std::move(bad), "ctx").error().message(), "ctx: disk");
}

TEST(Hex, RoundTripsLowercase) {
  const Bytes data{0x00, 0x7f, 0xab, 0xff};
  EXPECT_EQ(HexEncode(data), "007fabff");
  EXPECT_EQ(*HexDecode("007FABff"), data);
}

TEST(Hex, RejectsOddLengthAndNonHexDigits) {
  EXPECT_FALSE(HexDecode("abc"));
  auto bad = HexDecode("zz00");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), CoreErrc::kParse);
}

TEST(FakeClock, MovesOnlyWhenTold) {
  FakeClock clock(Clock::TimePoint(std::chrono::seconds(1000)));
  EXPECT_EQ(clock.Now(), Clock::TimePoint(std::chrono::seconds(1000)));
  clock.Advance(std::chrono::hours(24));
  EXPECT_EQ(clock.Now(), Clock::TimePoint(std::chrono::seconds(1000 + 86400)));
}

TEST(SimulatedClock, AWaiterSleepsUntilTheClockReachesItsDeadline) {
  SimulatedClock clock(Clock::TimePoint(std::chrono::seconds(1000)));
  Waiter waiter(clock);
  const auto deadline = clock.Now() + std::chrono::seconds(10);
  std::atomic<bool> woke = false;
  std::thread sleeper([&] {
    std::unique_lock lock(waiter.mutex());
    EXPECT_FALSE(waiter.WaitUntil(lock, deadline, [] { return false; }));
    EXPECT_GE(clock.Now(), deadline);
    woke = true;
  });
  // The sleeper's deadline is known to the clock once it waits.
  while (clock.NextDeadline() != deadline) std::this_thread::yield();
  clock.Advance(std::chrono::seconds(9));
  EXPECT_FALSE(woke) << "woke before its deadline";
  EXPECT_EQ(clock.NextDeadline(), deadline);
  clock.Advance(std::chrono::seconds(1));
  sleeper.join();
  EXPECT_TRUE(woke);
  EXPECT_FALSE(clock.NextDeadline());
}

TEST(SimulatedClock, AWaiterWakesForNewsBeforeItsDeadline) {
  SimulatedClock clock(Clock::TimePoint(std::chrono::seconds(1000)));
  Waiter waiter(clock);
  bool news = false;
  std::thread sleeper([&] {
    std::unique_lock lock(waiter.mutex());
    EXPECT_TRUE(waiter.WaitUntil(lock, clock.Now() + std::chrono::hours(1), [&] { return news; }));
  });
  while (!clock.NextDeadline()) std::this_thread::yield();
  {
    const std::lock_guard lock(waiter.mutex());
    news = true;
  }
  waiter.NotifyAll();
  sleeper.join();
  EXPECT_EQ(clock.Now(), Clock::TimePoint(std::chrono::seconds(1000)));
}

TEST(SystemClock, WaitsUntilARealDeadline) {
  Waiter waiter(SystemClock::Instance());
  std::unique_lock lock(waiter.mutex());
  const auto deadline = SystemClock::Instance().Now() + std::chrono::milliseconds(20);
  EXPECT_FALSE(waiter.WaitUntil(lock, deadline, [] { return false; }));
  EXPECT_GE(SystemClock::Instance().Now(), deadline);
}

TEST(Json, ParsesAndReadsTypedFields) {
  auto doc = json::Parse(R"({"name":"dev","count":3,"list":[1],"obj":{}})");
  ASSERT_TRUE(doc);
  EXPECT_EQ(*json::GetString(*doc, "name"), "dev");
  EXPECT_EQ(*json::GetUint(*doc, "count"), 3u);
  EXPECT_TRUE(json::GetArray(*doc, "list"));
  EXPECT_TRUE(json::GetObject(*doc, "obj"));
}

TEST(Json, NamesMissingAndMistypedFields) {
  auto doc = json::Parse(R"({"count":"3"})");
  ASSERT_TRUE(doc);
  EXPECT_EQ(json::GetUint(*doc, "count").error().message(),
            "field \"count\" is not a non-negative integer");
  EXPECT_EQ(json::GetString(*doc, "name").error().message(), "missing field \"name\"");
  EXPECT_FALSE(json::GetObject(*doc, "count"));
}

TEST(Json, RejectsMalformedAndTrailingInput) {
  EXPECT_FALSE(json::Parse("{\"a\":"));
  EXPECT_FALSE(json::Parse("{} {}"));
  EXPECT_FALSE(json::Parse(""));
}

TEST(Json, RefusesAnObjectThatNamesAKeyTwice) {
  auto twice = json::Parse(R"({"role":"Reader","role":"Administrator"})");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message().find("twice"), std::string::npos);
  EXPECT_FALSE(json::Parse(R"({"a":{"b":1,"b":2}})"));
  EXPECT_TRUE(json::Parse(R"({"a":{"b":1},"c":{"b":2},"b":[{"b":1},{"b":2}]})"))
      << "the same key in different objects is fine";
}

TEST(Text, PlainTextHasNoControlOrReorderingCharactersAndCountsCharacters) {
  EXPECT_TRUE(text::IsPlainText("Coffee maker", 50));
  std::string accents;
  for (int i = 0; i < 150; ++i) accents += "\xc3\xa9";  // é, two bytes each
  EXPECT_TRUE(text::IsPlainText(accents, 150)) << "characters are counted, not bytes";
  for (const std::string& bad :
       {std::string("a\x1b[2J"), std::string("a\x7f"), std::string("\xc2\x85"),
        std::string("evil\xe2\x80\xaegnp"), std::string("\xff"), std::string("\xc0\xaf"),
        std::string("a\nb")}) {
    EXPECT_FALSE(text::IsPlainText(bad, 50)) << text::Printable(bad);
  }
  EXPECT_FALSE(text::IsPlainText("abcdef", 5));
}

TEST(Text, TruncatedCutsAtACharacterBoundaryAndSaysSo) {
  EXPECT_EQ(text::Truncated("short", 10), "short");
  EXPECT_EQ(text::Truncated("0123456789abc", 10), "0123456...");
  // "é" is two bytes: a cut inside it backs off to before it.
  const std::string accented = "abcdef\xc3\xa9zzzz";
  const std::string cut = text::Truncated(accented, 10);
  EXPECT_EQ(cut, "abcdef...");
  EXPECT_TRUE(text::IsPlainText(cut, 10));
  EXPECT_LE(text::Truncated(std::string(5000, 'x'), 1024).size(), 1024u);
}

TEST(Text, PrintableEscapesWhatCouldDriveATerminal) {
  EXPECT_EQ(text::Printable("a\x1b[31mRED\r\n"), "a\\x1b[31mRED\\x0d\\x0a");
  EXPECT_EQ(text::Printable("evil\xe2\x80\xaegnp"), "evil\\u{202e}gnp");
  EXPECT_EQ(text::Printable("caf\xc3\xa9 \xff"), "caf\xc3\xa9 \\xff");
  EXPECT_TRUE(text::IsVersion("1.2.3+build~rc_1-x"));
  EXPECT_FALSE(text::IsVersion("a/b"));
}

TEST(Json, RejectsNestingBeyondTheLimit) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  auto parsed = json::Parse(deep, 64);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("deeper than 64"), std::string::npos);
  EXPECT_TRUE(json::Parse(std::string(10, '[') + std::string(10, ']'), 64));
}

TEST(WriteDurably, CreatesFileWithModeAndContents) {
  TempDir dir;
  const auto path = dir / "state.bin";
  ASSERT_TRUE(file::WriteDurably(path, AsBytes("hello"), 0600));
  EXPECT_EQ(AsString(*file::Read(path)), "hello");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(WriteDurably, ReplacesWholeFileAndLeavesNoTemporaries) {
  TempDir dir;
  const auto path = dir / "state.bin";
  ASSERT_TRUE(file::WriteDurably(path, AsBytes("a much longer first version"), 0644));
  ASSERT_TRUE(file::WriteDurably(path, AsBytes("v2"), 0644));
  EXPECT_EQ(AsString(*file::Read(path)), "v2");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(WriteDurably, FailureLeavesOldContentsAndNoTemporaries) {
  TempDir dir;
  const auto path = dir / "target";
  // A directory cannot be replaced by a file: rename fails after the temporary was written.
  std::filesystem::create_directory(path);
  auto result = file::WriteDurably(path, AsBytes("x"), 0600);
  ASSERT_FALSE(result);
  EXPECT_TRUE(std::filesystem::is_directory(path));
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(WriteDurably, PowerLossAtAnyStepLeavesOldOrNewContents) {
  const std::filesystem::path path = "/data/state.json";
  const Bytes old_contents = ToBytes("old");
  const Bytes new_contents = ToBytes("new and longer");
  testing::FaultyFileSystem probe;
  ASSERT_TRUE(file::WriteDurably(probe, path, new_contents, 0600));
  const int steps = probe.operations();
  ASSERT_GE(steps, 5);

  for (int cut = 0; cut <= steps; ++cut) {
    testing::FaultyFileSystem fs;
    ASSERT_TRUE(file::WriteDurably(fs, path, old_contents, 0600));
    fs.FailAfter(cut);
    const bool reported_success = file::WriteDurably(fs, path, new_contents, 0600).has_value();
    fs.Crash();
    auto contents = fs.Read(path, 1024);
    ASSERT_TRUE(contents) << "power cut after " << cut << " steps lost the file";
    if (reported_success) {
      EXPECT_EQ(*contents, new_contents) << "a write reported durable was lost (cut " << cut << ")";
    } else {
      EXPECT_TRUE(*contents == old_contents || *contents == new_contents) << "cut " << cut;
    }
  }
}

TEST(PowerCutFileSystem, APowerCutLosesUnsyncedAppendsAndUndoesUnsyncedRenames) {
  const testing::TempDir dir;
  testing::PowerCutFileSystem fs;
  ASSERT_TRUE(file::WriteDurably(fs, dir / "kept", ToBytes("old"), 0600));
  auto handle = fs.OpenAppend(dir / "log", 0600);
  ASSERT_TRUE(handle);
  ASSERT_TRUE(fs.Write(*handle, ToBytes("synced ")));
  ASSERT_TRUE(fs.Sync(*handle));
  ASSERT_TRUE(fs.Write(*handle, ToBytes("lost")));
  ASSERT_TRUE(fs.Close(*handle));
  ASSERT_TRUE(fs.SyncDirectory(dir.path()));
  // A rename over "kept" that its directory never recorded, and a file never recorded at all.
  auto temporary = fs.CreateTemporary(dir.path(), "t", 0600);
  ASSERT_TRUE(temporary);
  ASSERT_TRUE(fs.Write(temporary->handle, ToBytes("new")));
  ASSERT_TRUE(fs.Sync(temporary->handle));
  ASSERT_TRUE(fs.Close(temporary->handle));
  ASSERT_TRUE(fs.Rename(temporary->path, dir / "kept"));
  ASSERT_TRUE(file::Read(dir / "log"));
  EXPECT_EQ(AsString(*file::Read(dir / "log")), "synced lost");
  EXPECT_EQ(AsString(*file::Read(dir / "kept")), "new");

  fs.Crash();
  EXPECT_EQ(AsString(*file::Read(dir / "log")), "synced ");
  EXPECT_EQ(AsString(*file::Read(dir / "kept")), "old");
  EXPECT_FALSE(std::filesystem::exists(temporary->path));
}

TEST(PowerCutFileSystem, AfterTheCutEveryOperationFailsAndNothingChanges) {
  const testing::TempDir dir;
  testing::PowerCutFileSystem fs;
  int cuts = 0;
  fs.CutAfter(1, [&] { ++cuts; });
  ASSERT_TRUE(fs.OpenAppend(dir / "a", 0600));
  EXPECT_FALSE(fs.OpenAppend(dir / "b", 0600));
  EXPECT_FALSE(fs.SyncDirectory(dir.path()));
  fs.Remove(dir / "a");
  EXPECT_TRUE(fs.cut());
  EXPECT_EQ(cuts, 1);
  EXPECT_TRUE(std::filesystem::exists(dir / "a"));
  EXPECT_FALSE(std::filesystem::exists(dir / "b"));
  fs.Crash();
  EXPECT_FALSE(std::filesystem::exists(dir / "a")) << "its creation was never recorded";
}

TEST(WriteDurably, FailedWriteRemovesItsTemporaryFile) {
  testing::FaultyFileSystem fs;
  ASSERT_TRUE(file::WriteDurably(fs, "/d/f", ToBytes("v1"), 0600));
  const std::size_t entries = fs.EntryCount();
  fs.FailAfter(2);  // create and write succeed, sync fails
  EXPECT_FALSE(file::WriteDurably(fs, "/d/f", ToBytes("v2"), 0600));
  EXPECT_EQ(fs.EntryCount(), entries);
  EXPECT_EQ(*fs.Read("/d/f", 16), ToBytes("v1"));
}

TEST(WriteDurably, KilledWriterLeavesOldOrNewContentsNeverAMix) {
  TempDir dir;
  const auto path = dir / "state.bin";
  const Bytes old_contents(64 * 1024, 'a');
  const Bytes new_contents(64 * 1024, 'b');
  ASSERT_TRUE(file::WriteDurably(path, old_contents, 0600));
  for (int round = 0; round < 20; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (;;) {
        (void)file::WriteDurably(path, new_contents, 0600);
        (void)file::WriteDurably(path, old_contents, 0600);
      }
    }
    // Let the writer get a varying distance into its loop, then kill it without warning.
    for (int spin = 0; spin < round * 2000; ++spin) ::getppid();
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    auto contents = file::Read(path);
    ASSERT_TRUE(contents) << contents.error().message();
    EXPECT_TRUE(*contents == old_contents || *contents == new_contents) << "round " << round;
  }
}

TEST(WriteDurably, AWriteToAFullDeviceIsNoSpaceNotAnyInputOutputError) {
  const int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(full, 0);
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(null, 0);
  const Bytes data(64, 0x5a);
  const auto refused = file::RealFileSystem().Write(full, data);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), CoreErrc::kNoSpace) << refused.error().message();
  EXPECT_TRUE(file::RealFileSystem().Write(null, data));
  ::close(full);
  ::close(null);
}

TEST(ReadFile, ReadsProcfsFilesThatReportSizeZero) {
  auto boot_id = file::Read("/proc/sys/kernel/random/boot_id", 100);
  ASSERT_TRUE(boot_id) << boot_id.error().message();
  EXPECT_EQ(boot_id->size(), 37u);  // a UUID and a newline
}

TEST(ReadFile, MissingFileIsNotFound) {
  TempDir dir;
  auto result = file::Read(dir / "absent");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), CoreErrc::kNotFound);
  EXPECT_NE(result.error().message().find("absent"), std::string::npos);
}

TEST(ReadFile, RefusesFilesAboveTheLimit) {
  TempDir dir;
  ASSERT_TRUE(file::WriteDurably(dir / "big", Bytes(2048, 1), 0600));
  auto result = file::Read(dir / "big", 1024);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), CoreErrc::kCorrupt);
}

// A FIFO where a file was expected (a lease, a state record): refused at once, never waited on for
// a writer that may never come.
TEST(ReadFile, AFifoIsRefusedNotWaitedOn) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  auto result = file::Read(dir / "fifo", 1024);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), CoreErrc::kInvalidArgument);
}

TEST(RequireOwnerOnly, RejectsGroupOrWorldAccess) {
  TempDir dir;
  const auto path = dir / "key";
  ASSERT_TRUE(file::WriteDurably(path, AsBytes("k"), 0600));
  EXPECT_TRUE(file::RequireOwnerOnly(path));
  ::chmod(path.c_str(), 0644);
  auto result = file::RequireOwnerOnly(path);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), CoreErrc::kPermission);
  EXPECT_NE(result.error().message().find("0644"), std::string::npos);
}

TEST(EnsureDirectory, CreatesParentsAndRefusesFiles) {
  TempDir dir;
  EXPECT_TRUE(file::EnsureDirectory(dir / "a/b/c", 0700));
  EXPECT_TRUE(std::filesystem::is_directory(dir / "a/b/c"));
  ASSERT_TRUE(file::WriteDurably(dir / "f", AsBytes("x"), 0600));
  EXPECT_FALSE(file::EnsureDirectory(dir / "f", 0700));
}

}  // namespace
}  // namespace aspis
