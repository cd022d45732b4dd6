// The Application_Connect relay: who may connect, and that every message a real-time app receives
// names its true sender and every message it sends reaches only the app it names.
#include "device/apps/app_connections.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace aspis::device::apps {
namespace {

constexpr char kRealTime[] = "11111111-2222-4333-8444-555555555555";
constexpr char kHighLevel[] = "00112233-4455-6677-8899-aabbccddeeff";
constexpr char kOther[] = "99999999-8888-4777-8666-555555555555";

// What arrives on `fd` within 2 s, or nullopt (the relay dropped it).
std::optional<std::string> Receive(const Fd& fd, int timeout_ms = 2000) {
  pollfd ready{fd.get(), POLLIN, 0};
  if (::poll(&ready, 1, timeout_ms) != 1) return std::nullopt;
  std::string buffer(kIntercoreHeader + kMaxIntercorePayload + 64, '\0');
  const ssize_t got = ::recv(fd.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (got < 0) return std::nullopt;
  buffer.resize(static_cast<std::size_t>(got));
  return buffer;
}

void Send(const Fd& fd, const std::string& message) {
  ASSERT_EQ(::send(fd.get(), message.data(), message.size(), 0),
            static_cast<ssize_t>(message.size()));
}

// The header a real-time app sees on a message from, or puts on one for, `component`.
std::string Header(const std::string& component) {
  const auto guid = GuidBytes(component);
  std::string header(guid->begin(), guid->end());
  header.append(4, '\0');
  return header;
}

class AppConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = AppConnections::Start(
        [this](const std::string& component) -> std::optional<std::vector<std::string>> {
          const auto found = installed_.find(component);
          if (found == installed_.end()) return std::nullopt;
          return found->second;
        });
    ASSERT_TRUE(started) << started.error().message();
    relay_ = std::move(*started);
  }

  // Real-time app kRealTime is installed and runs, listing `allowed`: its channel.
  Fd RunRealTime(const std::vector<std::string>& allowed) {
    installed_[kRealTime] = allowed;
    auto channel = relay_->Attach(kRealTime, allowed);
    EXPECT_TRUE(channel) << channel.error().message();
    return channel ? std::move(*channel) : Fd(-1);
  }

  std::map<std::string, std::vector<std::string>> installed_;
  std::unique_ptr<AppConnections> relay_;
};

TEST(GuidBytesTest, AComponentIdIsLaidOutAsAGuid) {
  const auto bytes = GuidBytes("00112233-4455-6677-8899-AABBCCDDEEFF");
  ASSERT_TRUE(bytes);
  const std::array<std::uint8_t, 16> expected = {0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66,
                                                 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  EXPECT_EQ(*bytes, expected);
  EXPECT_EQ(GuidText(*bytes), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_FALSE(GuidBytes("00112233-4455-6677-8899-aabbccddeefg"));
  EXPECT_FALSE(GuidBytes("0011223344556677-8899-aabbccddeeff"));
}

TEST_F(AppConnectionsTest, AppsThatListEachOtherExchangeMessagesThroughTheHeader) {
  const Fd channel = RunRealTime({kHighLevel});
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection) << connection.error();
  Send(*connection, "ping");
  EXPECT_EQ(Receive(channel), Header(kHighLevel) + "ping");
  Send(channel, Header(kHighLevel) + "pong");
  EXPECT_EQ(Receive(*connection), "pong");
  EXPECT_EQ(relay_->dropped(), 0U);
}

TEST_F(AppConnectionsTest, ARealTimeAppOnACoprocessorExchangesThroughItsEndpoint) {
  // The endpoint's character device carries one message per read and write, as this pair does.
  std::array<int, 2> pair{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()), 0);
  const Fd firmware(pair[1]);
  installed_[kRealTime] = {kHighLevel};
  ASSERT_TRUE(relay_->AttachDevice(kRealTime, {kHighLevel}, Fd(pair[0])));
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection) << connection.error();
  // What one RPMsg buffer cannot carry is dropped before the kernel sees it.
  Send(*connection, std::string(kMaxRpmsgMessage - kIntercoreHeader + 1, 'x'));
  Send(*connection, std::string(kMaxRpmsgMessage - kIntercoreHeader, 'y'));
  EXPECT_EQ(Receive(firmware),
            Header(kHighLevel) + std::string(kMaxRpmsgMessage - kIntercoreHeader, 'y'));
  Send(*connection, "ping");
  EXPECT_EQ(Receive(firmware), Header(kHighLevel) + "ping");
  Send(firmware, Header(kHighLevel) + std::string(kMaxIntercorePayload + 1, 'x'));
  Send(firmware, Header(kHighLevel) + "pong");
  EXPECT_EQ(Receive(*connection), "pong");
  EXPECT_EQ(relay_->dropped(), 2U);  // each message one byte too long
}

TEST_F(AppConnectionsTest, ConnectIsRefusedUnlessBothManifestsListTheOther) {
  const Fd channel = RunRealTime({kHighLevel});
  EXPECT_EQ(relay_->Connect(kHighLevel, {}, kRealTime).error(), EACCES);
  EXPECT_EQ(relay_->Connect(kOther, {kRealTime}, kRealTime).error(), ECONNREFUSED);
  EXPECT_EQ(relay_->Connect(kHighLevel, {kOther}, kOther).error(), ECONNREFUSED);  // not installed
  EXPECT_EQ(relay_->Connect(kHighLevel, {kRealTime}, "not-a-component").error(), EINVAL);
  EXPECT_TRUE(relay_->Connect(kHighLevel, {kRealTime}, "11111111-2222-4333-8444-555555555555"));
}

TEST_F(AppConnectionsTest, AHighLevelAppCannotSpeakForAnotherApp) {
  installed_[kRealTime] = {kHighLevel, kOther};
  auto channel = relay_->Attach(kRealTime, {kHighLevel, kOther});
  ASSERT_TRUE(channel);
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  // The app writes another app's header itself: it arrives as payload behind its own.
  Send(*connection, Header(kOther) + "forged");
  EXPECT_EQ(Receive(*channel), Header(kHighLevel) + Header(kOther) + "forged");
}

TEST_F(AppConnectionsTest, ARealTimeAppReachesOnlyAnAppThatConnectedToIt) {
  installed_[kRealTime] = {kHighLevel, kOther};
  auto channel = relay_->Attach(kRealTime, {kHighLevel, kOther});
  ASSERT_TRUE(channel);
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  Send(*channel, Header(kOther) + "for an app that never connected");
  Send(*channel, Header(kHighLevel) + "for the app that did");
  EXPECT_EQ(Receive(*connection), "for the app that did");
  EXPECT_EQ(relay_->dropped(), 1U);
}

TEST_F(AppConnectionsTest, ARealTimeAppUpdatedToListNoOneReachesNoOne) {
  Fd channel = RunRealTime({kHighLevel});
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  relay_->Forget(kRealTime);
  channel = RunRealTime({});
  Send(*connection, "after the update");
  Send(channel, Header(kHighLevel) + "after the update");
  for (int i = 0; i < 500 && relay_->dropped() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(relay_->dropped(), 2U);
  EXPECT_EQ(Receive(channel, 0), std::nullopt);
  EXPECT_EQ(Receive(*connection, 0), std::nullopt);
}

TEST_F(AppConnectionsTest, AConnectionOutlivesARestartOfTheRealTimeApp) {
  Fd channel = RunRealTime({kHighLevel});
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  relay_->Forget(kRealTime);
  channel = RunRealTime({kHighLevel});
  Send(*connection, "again");
  EXPECT_EQ(Receive(channel), Header(kHighLevel) + "again");
}

TEST_F(AppConnectionsTest, AMessageTooLongOrWithoutAHeaderIsDroppedAndTheChannelLivesOn) {
  const Fd channel = RunRealTime({kHighLevel});
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  Send(*connection, std::string(kMaxIntercorePayload + 1, 'x'));
  Send(channel, "short");
  Send(channel, Header(kHighLevel) + std::string(kMaxIntercorePayload + 1, 'y'));
  Send(*connection, std::string(kMaxIntercorePayload, 'z'));
  EXPECT_EQ(Receive(channel), Header(kHighLevel) + std::string(kMaxIntercorePayload, 'z'));
  Send(channel, Header(kHighLevel) + std::string(kMaxIntercorePayload, 'w'));
  EXPECT_EQ(Receive(*connection), std::string(kMaxIntercorePayload, 'w'));
  EXPECT_EQ(relay_->dropped(), 3U);
}

TEST_F(AppConnectionsTest, AnAppHoldsOneConnectionToEachRealTimeApp) {
  const Fd channel = RunRealTime({kHighLevel});
  auto first = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  auto second = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Receive(*first), "");  // closed by aspisd: the end of the stream
  Send(channel, Header(kHighLevel) + "to the newest");
  EXPECT_EQ(Receive(*second), "to the newest");
  EXPECT_EQ(relay_->dropped(), 0U);
}

TEST_F(AppConnectionsTest, AnEmptyMessageFromARealTimeAppIsDroppedNotReadAsTheEnd) {
  const Fd channel = RunRealTime({kHighLevel});
  auto connection = relay_->Connect(kHighLevel, {kRealTime}, kRealTime);
  ASSERT_TRUE(connection);
  Send(channel, Header(kHighLevel));
  Send(channel, Header(kHighLevel) + "after");
  EXPECT_EQ(Receive(*connection), "after");
  EXPECT_EQ(relay_->dropped(), 1U);
}

}  // namespace
}  // namespace aspis::device::apps
