#include "device/apps/system_events.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <array>

#include "core/file.hpp"
#include "core/json.hpp"
#include "device/apps/errors.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::apps {
namespace {

using namespace std::chrono_literals;
using json::Json;

const Clock::TimePoint kStart = Clock::TimePoint(std::chrono::seconds(1'800'000'000));
constexpr char kApp[] = "1f0c6a4e-4b5d-4f38-9a57-2f0f3e6c1a11";
constexpr char kOther[] = "2e0c6a4e-4b5d-4f38-9a57-2f0f3e6c1a22";
constexpr std::uint32_t kAll = 7;
const std::vector<std::string> kUpdate = {"9b1d6a4e-4b5d-4f38-9a57-2f0f3e6c1a33"};

class SystemEventsTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  // Opens the events as aspisd does at start, over the same state directory.
  void Open() {
    auto events = SystemEvents::Open(state::StateStore(fs_, dir_.path()), clock_, 10s);
    ASSERT_TRUE(events) << events.error().message();
    events_ = std::move(*events);
  }

  Fd Register(const std::string& component, bool may_defer, std::uint32_t mask = kAll) {
    auto socket = events_->Register(component, mask, may_defer);
    EXPECT_TRUE(socket) << socket.error().message();
    return socket ? std::move(*socket) : Fd(-1);
  }

  // The next event waiting on `socket`, or null when none is.
  static Json Next(const Fd& socket) {
    std::array<char, 512> buffer{};
    const ssize_t got = ::recv(socket.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got <= 0) return nullptr;
    return *json::Parse(std::string_view(buffer.data(), static_cast<std::size_t>(got)));
  }
  static std::string Status(const Json& event) {
    return event.is_null()
               ? "none"
               : event["event"].get<std::string>() + " " + event["status"].get<std::string>();
  }

  std::optional<Clock::TimePoint> Hold() { return events_->Hold(kUpdate, UpdateType::kApp); }

  testing::TempDir dir_;
  file::FileSystem& fs_ = file::RealFileSystem();
  SimulatedClock clock_{kStart};
  std::unique_ptr<SystemEvents> events_;
};

TEST_F(SystemEventsTest, WithNoAppThatMayDeferAnUpdateStartsAtOnceAndTheAppsAreTold) {
  const Fd listener = Register(kApp, false);
  EXPECT_EQ(Hold(), std::nullopt);
  const Json pending = Next(listener);
  EXPECT_EQ(Status(pending), "UpdateReadyForInstall Pending");
  EXPECT_EQ(pending["update_type"], "App");
  EXPECT_EQ(pending["max_deferral_minutes"], 1440);
  EXPECT_EQ(Status(Next(listener)), "UpdateReadyForInstall Final");
  events_->Started(UpdateType::kApp);
  EXPECT_EQ(Status(Next(listener)), "UpdateStarted Complete");
  events_->NothingToUpdate();
  EXPECT_EQ(Status(Next(listener)), "NoUpdateAvailable Complete");
  EXPECT_EQ(Status(Next(listener)), "none");
}

TEST_F(SystemEventsTest, AnAppsDeferralIsHonouredAndTheUpdateIsAnnouncedAgainWhenItEnds) {
  const Fd app = Register(kApp, true);
  ASSERT_EQ(Hold(), kStart + 10s) << "the apps have the response window to answer";
  EXPECT_EQ(Status(Next(app)), "UpdateReadyForInstall Pending");
  clock_.Advance(2s);
  auto granted = events_->Defer(kApp, 60min);
  ASSERT_TRUE(granted) << granted.error().message();
  EXPECT_EQ(*granted, 60min);
  const Json deferred = Next(app);
  EXPECT_EQ(Status(deferred), "UpdateReadyForInstall Deferred");
  EXPECT_EQ(deferred["deferred_minutes"], 60);
  EXPECT_EQ(Hold(), kStart + 2s + 60min);
  clock_.Advance(30min);
  EXPECT_EQ(Hold(), kStart + 2s + 60min);
  clock_.Advance(31min);
  // Ran out: asked again, with what is left of the 24 hours.
  EXPECT_EQ(Hold(), clock_.Now() + 10s);
  const Json again = Next(app);
  EXPECT_EQ(Status(again), "UpdateReadyForInstall Pending");
  EXPECT_EQ(again["max_deferral_minutes"], 1440 - 62);
  clock_.Advance(10s);
  EXPECT_EQ(Hold(), std::nullopt) << "not deferred again";
  EXPECT_EQ(Status(Next(app)), "UpdateReadyForInstall Final");
}

TEST_F(SystemEventsTest, ResumingLetsTheUpdateStartOnceTheWindowEnds) {
  const Fd app = Register(kApp, true);
  ASSERT_TRUE(Hold());
  ASSERT_TRUE(events_->Defer(kApp, 600min));
  ASSERT_TRUE(events_->Resume(kApp));
  clock_.Advance(10s);
  EXPECT_EQ(Hold(), std::nullopt);
}

TEST_F(SystemEventsTest, DeferralsAreCappedAt24HoursInAllAcrossRepeatsAndRestarts) {
  Fd app = Register(kApp, true);
  ASSERT_TRUE(Hold());
  ASSERT_EQ(*events_->Defer(kApp, 20h), 20h);
  clock_.Advance(20h);
  ASSERT_TRUE(Hold());
  // aspisd restarts: when the update was first ready is kept.
  Open();
  app = Register(kApp, true);
  EXPECT_EQ(Hold(), clock_.Now() + 10s);
  const Json pending = Next(app);
  EXPECT_EQ(pending["max_deferral_minutes"], 4 * 60);
  auto granted = events_->Defer(kApp, 1440min);
  ASSERT_TRUE(granted) << granted.error().message();
  EXPECT_EQ(*granted, 4h) << "no more than what is left";
  EXPECT_EQ(Hold(), kStart + 24h);
  clock_.Advance(4h);
  EXPECT_EQ(Hold(), std::nullopt) << "at 24 hours the update starts, whatever the apps ask";
  EXPECT_EQ(Status(Next(app)), "UpdateReadyForInstall Deferred");
  EXPECT_EQ(Status(Next(app)), "UpdateReadyForInstall Final");
}

TEST_F(SystemEventsTest, DeferralAttackAnAppWithoutSoftwareUpdateDeferralCannotHoldAnUpdate) {
  const Fd app = Register(kApp, false);
  EXPECT_EQ(Hold(), std::nullopt);
  const Fd deferring = Register(kOther, true);
  ASSERT_TRUE(Hold()) << "the twin: one that may defer is waited for";
  auto refused = events_->Defer(kApp, 60min);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), AppsErrc::kNotPermitted);
  clock_.Advance(10s);
  EXPECT_EQ(Hold(), std::nullopt);
}

TEST_F(SystemEventsTest, NothingCanBeDeferredWhenNoUpdateIsPendingOrByAnAppNotRegistered) {
  const Fd app = Register(kApp, true);
  auto refused = events_->Defer(kApp, 60min);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), AppsErrc::kNoEvent);
  ASSERT_TRUE(Hold());
  EXPECT_EQ(events_->Defer(kOther, 60min).error(), AppsErrc::kNoEvent);
  const Fd started_only =
      Register(kOther, true, static_cast<std::uint32_t>(SysEvent::kUpdateStarted));
  EXPECT_EQ(events_->Defer(kOther, 60min).error(), AppsErrc::kNoEvent);
  events_->Unregister(kApp);
  EXPECT_EQ(events_->Defer(kApp, 60min).error(), AppsErrc::kNoEvent);
}

TEST_F(SystemEventsTest, AnAppThatRegistersWhileAnUpdateWaitsIsToldAtOnce) {
  const Fd first = Register(kOther, true);
  ASSERT_TRUE(Hold());
  clock_.Advance(5min);
  const Fd late = Register(kApp, false);
  const Json pending = Next(late);
  EXPECT_EQ(Status(pending), "UpdateReadyForInstall Pending");
  EXPECT_EQ(pending["max_deferral_minutes"], 1440 - 5);
}

TEST_F(SystemEventsTest, ANewUpdateIsGivenItsOwn24HoursAndNoUpdateForgetsTheOld) {
  const Fd app = Register(kApp, true);
  ASSERT_TRUE(Hold());
  ASSERT_TRUE(events_->Defer(kApp, 1440min));
  clock_.Advance(23h);
  events_->NothingToUpdate();  // the deployment withdrew it
  EXPECT_EQ(events_->Defer(kApp, 60min).error(), AppsErrc::kNoEvent);
  ASSERT_TRUE(Hold());
  EXPECT_EQ(*events_->Defer(kApp, 1440min), 24h);
}

TEST_F(SystemEventsTest, AnAppThatClosedItsSocketIsDroppedAndOthersStillHear) {
  Fd gone = Register(kApp, true);
  const Fd other = Register(kOther, false);
  gone = Fd(-1);
  EXPECT_EQ(Hold(), std::nullopt) << "the closed one cannot defer";
  EXPECT_EQ(Status(Next(other)), "UpdateReadyForInstall Pending");
}

TEST_F(SystemEventsTest, ADamagedRecordLetsWhatWasHeldStartAtOnceAndNewUpdatesWaitAgain) {
  ASSERT_TRUE(state::StateStore(fs_, dir_.path())
                  .Put("update-deferral", {{"first_ready", {{"x", "yesterday"}}}}));
  Open();
  const Fd app = Register(kApp, true);
  EXPECT_EQ(Hold(), std::nullopt) << "how long it waited is unknown: it waits no more";
  EXPECT_EQ(events_->Hold({"another"}, UpdateType::kApp), clock_.Now() + 10s);
}

TEST_F(SystemEventsTest, SettingTheClockBackGrantsNoNew24Hours) {
  Fd app = Register(kApp, true);
  ASSERT_TRUE(Hold());
  ASSERT_TRUE(events_->Defer(kApp, 720min));
  clock_.Advance(12h);
  clock_.Advance(-60h);  // to 48 hours before it was first ready; and aspisd restarts
  Open();
  app = Register(kApp, true);
  EXPECT_EQ(Hold(), std::nullopt);
}

TEST_F(SystemEventsTest, AnAppThatEndsWithdrawsItsDeferral) {
  const Fd app = Register(kApp, true);
  int woken = 0;
  events_->OnResume([&] { ++woken; });
  ASSERT_TRUE(Hold());
  ASSERT_TRUE(events_->Defer(kApp, 600min));
  events_->Unregister(kApp);
  EXPECT_EQ(woken, 1) << "the device is told to ask again";
  clock_.Advance(10s);
  EXPECT_EQ(Hold(), std::nullopt);
}

}  // namespace
}  // namespace aspis::device::apps
