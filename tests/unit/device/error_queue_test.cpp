// The device's error report queue: counted repeats, a bounded queue that drops the oldest and
// counts the drops, kept across restarts, emptied only by what the service acknowledged.
#include "device/reports/error_queue.hpp"

#include <gtest/gtest.h>

#include "support/faulty_file_system.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::reports {
namespace {

class ErrorQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<ErrorQueue> Open() {
    auto queue = ErrorQueue::Open(state::StateStore(file::RealFileSystem(), dir_.path()));
    EXPECT_TRUE(queue) << queue.error().message();
    return queue ? std::move(*queue) : nullptr;
  }
  testing::TempDir dir_;
};

TEST_F(ErrorQueueTest, ARepeatedEventIsCountedIntoOneEntryWithItsTimeSpan) {
  auto queue = Open();
  queue->Add(wire::kUnplanned, wire::kClassApplication, "AppExit - code 3", 100);
  queue->Add(wire::kUnplanned, wire::kClassApplication, "AppExit - code 3", 130);
  queue->Add(wire::kUnplanned, wire::kClassApplication, "AppExit - signal 6", 140);
  const auto [events, dropped] = queue->Pending();
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].count, 2U);
  EXPECT_EQ(events[0].start, 100);
  EXPECT_EQ(events[0].end, 130);
  EXPECT_EQ(events[1].sequence, 2U);
  EXPECT_EQ(dropped, 0U);
}

TEST_F(ErrorQueueTest, AnAppsExitsAreOneEntryThatTellsTheLatestRestartCountAcrossARestart) {
  const std::string exit = "AppExit - component: c; name: blink; exited with code 3";
  auto queue = Open();
  queue->Add(wire::kUnplanned, wire::kClassApplication, exit + "; restarts: 1", 100, exit);
  queue = Open();
  queue->Add(wire::kUnplanned, wire::kClassApplication, exit + "; restarts: 2", 101, exit);
  queue->Add(wire::kUnplanned, wire::kClassApplication, exit + "; restarts: 3", 104, exit);
  const auto [events, dropped] = queue->Pending();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].description, exit + "; restarts: 3");
  EXPECT_EQ(events[0].count, 3U);
  EXPECT_EQ(events[0].start, 100);
  EXPECT_EQ(events[0].end, 104);
}

TEST(ErrorQueueWrites, ANewEntryIsDurableAtOnceAndAFloodOfThemCostsAWriteASecond) {
  testing::FaultyFileSystem fs;
  auto queue = ErrorQueue::Open(state::StateStore(fs, "/state"));
  ASSERT_TRUE(queue) << queue.error().message();
  (*queue)->Add(wire::kUnplanned, wire::kClassApplication, "AppDenial - 10.0.0.0", 100);
  const int one_write = fs.operations();
  fs.Crash();
  auto reopened = ErrorQueue::Open(state::StateStore(fs, "/state"));
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->Pending().first.size(), 1U) << "the first entry was written at once";
  const int before = fs.operations();
  for (int i = 1; i <= 1000; ++i) {
    (*reopened)->Add(wire::kUnplanned, wire::kClassApplication,
                     "AppDenial - 10.0.0." + std::to_string(i), 100);
  }
  // A write for the first at once, then at most one a second (this loop takes far less than the
  // ten seconds that would allow ten).
  EXPECT_LE(fs.operations() - before, 10 * one_write);
  EXPECT_EQ((*reopened)->Pending().first.size(), kQueueCapacity);
  fs.Crash();
  EXPECT_EQ((*ErrorQueue::Open(state::StateStore(fs, "/state")))->Pending().first.size(),
            kQueueCapacity)
      << "what is uploaded was written first";
}

TEST_F(ErrorQueueTest, AFullQueueDropsTheOldestAndCountsTheDrops) {
  auto queue = Open();
  for (std::size_t i = 0; i < kQueueCapacity + 5; ++i) {
    queue->Add(wire::kUnplanned, wire::kClassOs, "event " + std::to_string(i), 1);
  }
  const auto [events, dropped] = queue->Pending();
  ASSERT_EQ(events.size(), kQueueCapacity);
  EXPECT_EQ(events.front().description, "event 5");
  EXPECT_EQ(dropped, 5U);
}

TEST_F(ErrorQueueTest, TheQueueSurvivesARestartAndOnlyAcknowledgedEntriesLeave) {
  auto queue = Open();
  queue->Add(wire::kUnplanned, wire::kClassOs, "AttestationFailure - quote", 1);
  queue->Add(wire::kPlanned, wire::kClassOs, "UpdateFailure - OS 1.1", 2);
  queue->Add(wire::kUnplanned, wire::kClassOs, "AttestationFailure - quote", 3);  // counted
  auto [sent, dropped] = queue->Pending();
  queue->Add(wire::kUnplanned, wire::kClassApplication, "AppExit - code 1", 4);  // after the send
  queue->Acknowledge(sent.back().sequence, dropped);
  queue.reset();
  queue = Open();
  const auto [left, left_dropped] = queue->Pending();
  ASSERT_EQ(left.size(), 1U);
  EXPECT_EQ(left[0].description, "AppExit - code 1");
  EXPECT_EQ(left[0].sequence, 3U);
  EXPECT_EQ(left_dropped, 0U);
  queue->Add(wire::kUnplanned, wire::kClassOs, "next", 5);
  EXPECT_EQ(queue->Pending().first.back().sequence, 4U) << "sequence numbers are never reused";
}

TEST_F(ErrorQueueTest, ADescriptionTooLongIsCutNotRefused) {
  auto queue = Open();
  queue->Add(wire::kUnplanned, wire::kClassApplication, std::string(5000, 'x'), 1);
  EXPECT_LE(queue->Pending().first.at(0).description.size(), wire::kMaxErrorDescription);
}

}  // namespace
}  // namespace aspis::device::reports
