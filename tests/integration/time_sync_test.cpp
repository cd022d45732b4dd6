// The device's time sync as aspisd keeps it (board/time_sync.hpp): a real chronyd taking the time
// from a real NTP server (chronyd too), measuring only (-x): the test machine's clock stays.
#include "device/board/time_sync.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/ntp_server.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::board {
namespace {

using namespace std::chrono_literals;

// chronyd's socket directory, under `dir` (which chronyd's user may pass through).
TimeSync::Config Measuring(const testing::TempDir& dir, std::uint16_t port) {
  ::chmod(dir.path().c_str(), 0711);
  return {.default_servers = {},
          .dir = dir / "timesync",
          .socket_dir = dir / "chrony",
          .set_clock = false,
          .port = port,
          .poll = -2};
}

// LastSync once it has one, waiting up to 10 s.
TimeSyncResult<NtpSync> Synced(TimeSync& sync) {
  auto last = sync.LastSync();
  for (int i = 0; i < 100 && !last; ++i) {
    std::this_thread::sleep_for(100ms);
    last = sync.LastSync();
  }
  return last;
}

TEST(TimeSyncTest, ACustomServerIsWhereTheTimeComesFromAndTheChoiceOutlivesAspisd) {
  testing::TempDir dir;
  const testing::NtpServer server(dir / "server");
  auto opened = TimeSync::Open(Measuring(dir, server.port()));
  ASSERT_TRUE(opened);
  TimeSync& sync = **opened;
  // The board names no server: nothing to sync from yet.
  EXPECT_EQ(sync.LastSync().error(), ENOENT);
  ASSERT_TRUE(sync.UseCustom({server.address()}, /*fallback=*/false));
  const auto last = Synced(sync);
  ASSERT_TRUE(last) << last.error();
  EXPECT_EQ(last->server, server.address());
  const auto now = std::chrono::system_clock::now();
  EXPECT_LT(std::chrono::abs(now - last->ntp), 60s);
  EXPECT_LT(std::chrono::abs(last->ntp - last->before), 2s);  // the same clock, measured
  // Disabled: chronyd stops; the choice is kept, and read again by the next aspisd.
  ASSERT_TRUE(sync.SetEnabled(false));
  EXPECT_EQ(sync.LastSync().error(), ENOENT);
  opened->reset();
  auto again = TimeSync::Open(Measuring(dir, server.port()));
  ASSERT_TRUE(again);
  const TimeSyncChoice kept = (*again)->Choice();
  EXPECT_FALSE(kept.enabled);
  EXPECT_EQ(kept.source, NtpSource::kCustom);
  EXPECT_EQ(kept.custom, std::vector<std::string>{server.address()});
  ASSERT_TRUE((*again)->SetEnabled(true));
  EXPECT_TRUE(Synced(**again));
}

TEST(TimeSyncTest, AServerNameThatWouldAddToChronydsConfigurationIsRefusedAndChangesNothing) {
  testing::TempDir dir;
  auto opened = TimeSync::Open(Measuring(dir, 123));
  ASSERT_TRUE(opened);
  TimeSync& sync = **opened;
  for (const std::string& name :
       std::vector<std::string>{"a\nserver 192.0.2.1", "a b", "-x", "", std::string(254, 'a')}) {
    const auto refused = sync.UseCustom({name}, true);
    ASSERT_FALSE(refused) << name;
    EXPECT_EQ(refused.error(), EINVAL) << name;
  }
  EXPECT_EQ(sync.UseCustom({"a", "b", "c"}, true).error(), EINVAL);
  EXPECT_EQ(sync.Choice().source, NtpSource::kDefault);
  EXPECT_TRUE(sync.UseCustom({"time.example", "192.0.2.1"}, true));
  EXPECT_EQ(sync.Choice().custom, (std::vector<std::string>{"time.example", "192.0.2.1"}));
}

// The network's DHCP servers name one server, then another, then none: chronyd follows them, and
// falls back on the board's only when allowed.
TEST(TimeSyncTest, AutomaticNtpTakesTheTimeFromTheServersTheNetworkNamesAsTheyChange) {
  testing::TempDir dir;
  const testing::NtpServer board_server(dir / "board");
  const testing::NtpServer network_server(dir / "network", /*second=*/true, board_server.port());
  std::mutex mutex;
  std::vector<std::string> named;
  auto config = Measuring(dir, board_server.port());
  config.default_servers = {board_server.address()};
  config.network_servers = [&] {
    const std::lock_guard lock(mutex);
    return named;
  };
  config.recheck = 100ms;
  auto opened = TimeSync::Open(config);
  ASSERT_TRUE(opened);
  TimeSync& sync = **opened;
  ASSERT_TRUE(sync.UseAutomatic(/*fallback=*/false));
  EXPECT_EQ(sync.LastSync().error(), ENOENT);  // the network names none yet
  {
    const std::lock_guard lock(mutex);
    named = {network_server.address()};
  }
  auto last = Synced(sync);
  ASSERT_TRUE(last) << last.error();
  EXPECT_EQ(last->server, network_server.address());
  {
    const std::lock_guard lock(mutex);
    named.clear();
  }
  for (int i = 0; i < 100 && sync.LastSync(); ++i) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(sync.LastSync().error(), ENOENT);
  ASSERT_TRUE(sync.UseAutomatic(/*fallback=*/true));
  last = Synced(sync);
  ASSERT_TRUE(last) << last.error();
  EXPECT_EQ(last->server, board_server.address());
}

// What /proc says process `pid` runs, its arguments joined by spaces.
std::string CommandOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::replace(text.begin(), text.end(), '\0', ' ');
  return text;
}

TEST(TimeSyncTest, TheChronydOfAKilledAspisdIsEndedByTheNextOneWhoseChoiceThenApplies) {
  testing::TempDir dir;
  const testing::NtpServer server(dir / "server");
  auto config = Measuring(dir, server.port());
  config.default_servers = {server.address()};
  // An aspisd that started chronyd and was killed: no destructor ran.
  const pid_t killed = ::fork();
  ASSERT_GE(killed, 0);
  if (killed == 0) {
    auto sync = TimeSync::Open(config);
    ::_exit(sync && (*sync)->Choice().enabled ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(killed, &status, 0), killed);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream recorded(dir / "timesync" / "chronyd.pid");
  pid_t orphan = 0;
  recorded >> orphan;
  ASSERT_GT(orphan, 1);
  EXPECT_NE(CommandOf(orphan).find("chronyd"), std::string::npos);
  auto next = TimeSync::Open(config);
  ASSERT_TRUE(next);
  EXPECT_EQ(CommandOf(orphan).find("chronyd"), std::string::npos);
  EXPECT_TRUE(Synced(**next));  // its own chronyd, with the socket the orphan held
}

TEST(TimeSyncTest, ChronycsTrackingIsReadOnlyOnceChronydSynced) {
  EXPECT_FALSE(
      ParseTracking("00000000,,0,0.000000000,0.0,0.0,0.0,0.0,0.0,0.0,1.0,1.0,0.0,Not "
                    "synchronised\n"));
  const auto synced = ParseTracking(
      "7F003601,127.0.54.1,11,1796299749.378088230,-0.000001630,2.400000345,0.000000352,0.250,"
      "-0.006,0.903,0.000006628,0.000001185,0.3,Normal\n");
  ASSERT_TRUE(synced);
  EXPECT_EQ(synced->server, "127.0.54.1");
  EXPECT_EQ(synced->ntp.time_since_epoch().count(), 1796299749);
  EXPECT_EQ(synced->before.time_since_epoch().count(), 1796299751);  // 2.4 s ahead
  EXPECT_FALSE(ParseTracking("7F003601,127.0.54.1,11,nan,0,0,0,0,0,0,0,0,0,Normal"));
  EXPECT_FALSE(ParseTracking("7F003601,127.0.54.1,11,1e300,0,0,0,0,0,0,0,0,0,Normal"));
  EXPECT_FALSE(ParseTracking("garbage"));
}

// chronyc makes its socket in the directory chronyd's user owns: as root, it would follow a link
// that user put there. A chronyc that tells who it ran as (its uid as the server's name) and how
// many descriptors it had shows it runs as chronyd's user, with none of aspisd's.
TEST(TimeSyncTest, ChronycAsksAsChronydsUserNeverAsRootAndWithNoDescriptorOfAspisds) {
  testing::TempDir dir;
  auto config = Measuring(dir, 9);  // no NTP server answers: only chronyc is asked
  config.default_servers = {"127.0.0.1"};
  config.chronyc = dir / "chronyc";
  {
    std::ofstream script(config.chronyc);
    script << "#!/bin/sh\n"
              "printf '7F000001,uid%s-fds%s,2,1700000000.0,0.0,0.0,0,0,0,0,0,0,0,Normal\\n' "
              "\"$(id -u)\" \"$(ls /proc/self/fd | wc -l)\"\n";
  }
  ::chmod(config.chronyc.c_str(), 0755);
  const int held = ::open("/dev/null", O_RDONLY);  // a descriptor of aspisd's, not close-on-exec
  ASSERT_GE(held, 0);
  auto opened = TimeSync::Open(config);
  ASSERT_TRUE(opened);
  const auto last = (*opened)->LastSync();
  ::close(held);
  ASSERT_TRUE(last) << last.error();
  const passwd* chrony = ::getpwnam("_chrony");
  ASSERT_NE(chrony, nullptr);
  // ls's own: its standard three and the directory it reads.
  EXPECT_EQ(last->server, "uid" + std::to_string(chrony->pw_uid) + "-fds4");
}

}  // namespace
}  // namespace aspis::device::board
