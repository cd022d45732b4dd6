// The app manager on the real kernel: installed apps (the hostile test app under several
// manifests) started in their sandboxes, restarted with a doubling delay, stopped with SIGTERM
// then SIGKILL, and their crashes and denials reported.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "device/apps/app_manager.hpp"
#include "support/temp_dir.hpp"

namespace aspis::device::apps {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kFirst[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
constexpr char kSecond[] = "1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e";

class AppManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto layout = sandbox::CgroupLayout::Find("/sys/fs/cgroup", "/proc/self/cgroup",
                                              "aspis-manager-test-" + std::to_string(::getpid()));
    ASSERT_TRUE(layout) << layout.error().message();
    parts_.cgroups = *layout;
    parts_.apps_dir = dir_ / "apps";
    parts_.run_dir = dir_ / "run";
    parts_.restart_delay = milliseconds(50);
    parts_.max_restart_delay = milliseconds(400);
    parts_.stop_grace = milliseconds(5000);
    parts_.storage_dir = dir_ / "storage";
  }
  void TearDown() override {
    manager_.reset();
    for (const auto& parent :
         {parts_.cgroups.unified, parts_.cgroups.memory, parts_.cgroups.pids}) {
      if (!parent.empty()) ::rmdir(parent.c_str());
    }
  }

  // Installs the hostile app as `component` named `name`, run with `args`, as the update agent
  // leaves an installed version.
  void Install(const std::string& component, const std::string& name,
               const std::vector<std::string>& args, const std::string& capabilities = "{}") {
    const fs::path version = parts_.apps_dir / component / "image-1";
    fs::create_directories(version / "bin");
    fs::copy_file(ASPIS_HOSTILE_APP, version / "bin" / "app");
    std::string list;
    for (const auto& arg : args) list += (list.empty() ? "\"" : ", \"") + arg + "\"";
    std::ofstream(version / "app_manifest.json")
        << R"({"SchemaVersion": 1, "Name": ")" << name << R"(", "ComponentId": ")" << component
        << R"(", "EntryPoint": "/bin/app", "CmdArgs": [)" << list << R"(], "Capabilities": )"
        << capabilities << "}";
    fs::create_directory_symlink("image-1", parts_.apps_dir / component / "current");
  }

  void Create() {
    auto manager = AppManager::Create(parts_, [this](const AppReport& report) {
      std::lock_guard lock(mutex_);
      reports_.push_back({report, Clock::now()});
      arrived_.notify_all();
    });
    ASSERT_TRUE(manager) << manager.error().message();
    manager_ = std::move(*manager);
  }

  // Waits until `count` reports of `kind` arrived (the test's timeout ends a wait that never does).
  std::vector<std::pair<AppReport, Clock::time_point>> Await(const std::string& kind,
                                                             std::size_t count) {
    std::unique_lock lock(mutex_);
    std::vector<std::pair<AppReport, Clock::time_point>> found;
    arrived_.wait(lock, [&] {
      found.clear();
      for (const auto& r : reports_) {
        if (r.first.kind == kind) found.push_back(r);
      }
      return found.size() >= count;
    });
    return found;
  }

  testing::TempDir dir_;
  AppManagerParts parts_;
  std::unique_ptr<AppManager> manager_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::pair<AppReport, Clock::time_point>> reports_;
};

TEST_F(AppManagerTest, StartsEveryInstalledAppAndShowsItsStatus) {
  Install(kFirst, "first", {"sleep"});
  Install(kSecond, "second", {"sleep"});
  Create();
  manager_->StartAll();
  const auto status = manager_->Status();
  ASSERT_EQ(status.size(), 2U);
  for (const auto& app : status) {
    EXPECT_EQ(app.state, "running") << app.name << ": " << app.last_exit;
    EXPECT_GT(app.pid, 0);
    EXPECT_GT(app.memory_bytes, 0U);
  }
  EXPECT_EQ(status[0].name, "first");
  EXPECT_EQ(status[1].name, "second");
}

TEST_F(AppManagerTest, ACrashingAppIsRestartedAfterADoublingDelay) {
  Install(kFirst, "crasher", {"exit", "3"});
  Create();
  manager_->StartAll();
  const auto ends = Await("exit", 5);
  for (const auto& [report, when] : ends) EXPECT_EQ(report.description, "exited with code 3");
  // Each restart waits at least its delay: 50, 100, 200, then the cap of 400 ms.
  const milliseconds delays[] = {milliseconds(50), milliseconds(100), milliseconds(200),
                                 milliseconds(400)};
  for (std::size_t i = 0; i + 1 < ends.size(); ++i) {
    EXPECT_GE(ends[i + 1].second - ends[i].second, delays[i]) << "restart " << i + 1;
  }
  EXPECT_GE(manager_->Status(kFirst)->restarts, 5);
}

TEST_F(AppManagerTest, StopSendsSigtermAndTheAppStaysStoppedUntilStarted) {
  Install(kFirst, "sleeper", {"sleep"});
  Create();
  manager_->StartAll();
  manager_->Stop(kFirst);
  auto status = manager_->Status(kFirst);
  EXPECT_EQ(status->state, "stopped");
  // SIGTERM reached it: it exited by its handler, or by the signal if it came before that.
  EXPECT_TRUE(status->last_exit == "exited with code 0" ||
              status->last_exit == "killed by signal 15 (Terminated)")
      << status->last_exit;
  EXPECT_EQ(status->restarts, 0);
  ASSERT_TRUE(manager_->Start(kFirst));
  EXPECT_EQ(manager_->Status(kFirst)->state, "running");
  std::lock_guard lock(mutex_);
  EXPECT_TRUE(reports_.empty()) << "a planned stop is not a crash";
}

TEST_F(AppManagerTest, StopKillsAnAppThatIgnoresSigtermAfterTheGracePeriod) {
  parts_.stop_grace = milliseconds(200);
  std::array<int, 2> pipe{};
  ASSERT_EQ(::pipe2(pipe.data(), O_CLOEXEC), 0);
  Fd read_end(pipe[0]);
  Fd write_end(pipe[1]);
  parts_.output = write_end.get();
  Install(kFirst, "stubborn", {"ignore-term"});
  Create();
  manager_->StartAll();
  std::string line;
  for (char c = 0; ::read(read_end.get(), &c, 1) == 1 && c != '\n';) line += c;
  EXPECT_EQ(line, "sleeping");  // it ignores SIGTERM from now on
  manager_->Stop(kFirst);
  EXPECT_EQ(manager_->Status(kFirst)->last_exit, "killed by signal 9 (Killed)");
}

TEST_F(AppManagerTest, CrashesAndDenialsAreReported) {
  Install(kFirst, "aborter", {"abort"});
  Install(kSecond, "tracer", {"ptrace"});
  Create();
  manager_->StartAll();
  const auto ends = Await("exit", 1);
  EXPECT_EQ(ends[0].first.description, "killed by signal 6 (Aborted)");
  EXPECT_EQ(ends[0].first.name, "aborter");
  const auto denials = Await("denial", 1);
  EXPECT_EQ(denials[0].first.component_id, kSecond);
  EXPECT_EQ(denials[0].first.description, "syscall: ptrace");
}

TEST_F(AppManagerTest, AFloodOfRefusedConnectionsIsReportedAtMost100ASecondThenCounted) {
  // Each refusal names a new address and port: reported one by one, each would be a log line and
  // an error report entry of its own.
  Install(kFirst, "flooder", {"deny-flood", "127.0.0.2", "3000"});
  Create();
  manager_->StartAll();
  Await("exit", 1);
  std::lock_guard lock(mutex_);
  std::size_t refused = 0;
  for (const auto& [report, at] : reports_) {
    refused += report.kind == "denial" && report.description.starts_with("connection: ");
  }
  EXPECT_GE(refused, 1U);
  EXPECT_LT(refused, 1500U) << "every refusal was reported";
}

TEST_F(AppManagerTest, AnAppWhoseManifestIsInvalidDoesNotStartAndSaysWhy) {
  Install(kFirst, "bad name!", {"sleep"});
  Create();
  manager_->StartAll();
  const auto status = manager_->Status(kFirst);
  EXPECT_EQ(status->state, "failed");
  EXPECT_NE(status->last_exit.find("\"Name\""), std::string::npos) << status->last_exit;
  EXPECT_FALSE(manager_->Start("2c3d4e5f-6a7b-4c8d-8e9f-0a1b2c3d4e5f"));
}

}  // namespace
}  // namespace aspis::device::apps

namespace aspis::device::apps {
namespace {

TEST_F(AppManagerTest, AnAppsMutableStorageIsShownAsItsQuotaAndDeletedWithTheApp) {
  Install(kFirst, "keeper", {"storage-write", "2"}, R"({"MutableStorage": {"SizeKB": 4}})");
  Create();
  manager_->StartAll();
  const auto ends = Await("exit", 1);
  EXPECT_EQ(ends[0].first.description, "exited with code 0");
  auto status = manager_->Status(kFirst);
  EXPECT_EQ(status->storage_bytes, 2048U);
  EXPECT_EQ(status->storage_limit, 4096U);
  ASSERT_TRUE(fs::exists(parts_.storage_dir / kFirst));
  manager_->Remove(kFirst);
  EXPECT_FALSE(fs::exists(parts_.storage_dir / kFirst)) << "the storage goes with the app";
  EXPECT_FALSE(manager_->Status(kFirst));
}

}  // namespace
}  // namespace aspis::device::apps
