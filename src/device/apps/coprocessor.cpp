#include "device/apps/coprocessor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <optional>
#include <system_error>
#include <thread>

#include "core/log.hpp"
#include "device/apps/errors.hpp"
#include "device/apps/firmware_image.hpp"
#include "device/board/sysfs.hpp"
#include "package/manifest.hpp"

namespace aspis::device::apps {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kMaxSysfsEntries = 2000;  // looked at in one search for the endpoint

std::unexpected<Error> Failed(const CoprocessorConfig& core, const std::string& why) {
  return Fail(AppsErrc::kSandbox, "coprocessor " + core.name + ": " + why);
}

// The core's state ("offline", "running", "crashed", ...), or the error reading it.
Expected<std::string> State(const CoprocessorConfig& core) {
  return board::ReadAttribute(core.remoteproc / "state");
}

bool StateIs(const CoprocessorConfig& core, std::string_view wanted) {
  const auto state = State(core);
  return state && *state == wanted;
}

void Write(const CoprocessorConfig& core, const char* attribute, const std::string& value) {
  if (auto written = board::WriteAttribute(core.remoteproc / attribute, value); !written) {
    log::Warning("coprocessor {}: {}", core.name, written.error().message());
  }
}

// Waits (at most settle_timeout) for the core's state to be `wanted`.
bool Settles(const CoprocessorConfig& core, std::string_view wanted) {
  const auto deadline = Clock::now() + core.settle_timeout;
  while (!StateIs(core, wanted)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Stops the core. The kernel stops only a running core: a crashed one is recovered first.
bool Stop(const CoprocessorConfig& core) {
  if (StateIs(core, "offline")) return true;
  std::error_code ec;
  if (StateIs(core, "crashed") && fs::exists(core.remoteproc / "recovery", ec)) {
    Write(core, "recovery", "recover");
    Settles(core, "running");
  }
  Write(core, "state", "stop");
  return Settles(core, "offline");
}

// The sysfs directory of the character device rpmsg_char made for an "rpmsg-raw" channel of the
// core's: <rpmsg device "virtioN.rpmsg-raw.SRC.DST">/rpmsg/rpmsgM under the remoteproc's device.
std::optional<fs::path> FindEndpoint(const CoprocessorConfig& core) {
  std::error_code ec;
  const fs::path device = fs::canonical(core.remoteproc, ec);
  if (ec) return std::nullopt;
  int looked = 0;
  for (auto it = fs::recursive_directory_iterator(device, ec);
       !ec && it != end(it) && ++looked <= kMaxSysfsEntries; it.increment(ec)) {
    if (it.depth() > 6) {
      it.disable_recursion_pending();
      continue;
    }
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (it->is_directory(ec) && name.starts_with("rpmsg") && name.size() > 5 &&
        std::all_of(name.begin() + 5, name.end(),
                    [](unsigned char c) { return std::isdigit(c) != 0; }) &&
        path.parent_path().filename() == "rpmsg" &&
        path.parent_path().parent_path().filename().string().find(".rpmsg-raw.") !=
            std::string::npos) {
      return path;
    }
  }
  return std::nullopt;
}

// Opens `device`, which must be the character device whose number sysfs gives in <sysfs>/dev.
Expected<Fd> OpenDevice(const fs::path& device, const fs::path& sysfs) {
  const auto number = board::ReadAttribute(sysfs / "dev");
  unsigned major_number = 0;
  unsigned minor_number = 0;
  if (!number ||
      std::sscanf(number->c_str(), "%u:%u", &major_number, &minor_number) != 2) {  // NOLINT
    return Fail(AppsErrc::kSandbox, "no device number in " + (sysfs / "dev").string());
  }
  Fd opened(::open(device.c_str(), O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (opened.get() < 0 || ::fstat(opened.get(), &st) != 0 || !S_ISCHR(st.st_mode) ||
      st.st_rdev != makedev(major_number, minor_number)) {
    return Fail(AppsErrc::kSandbox, device.string() + " is not the endpoint sysfs names");
  }
  return opened;
}

// The image: a regular ELF file of at most `max` bytes (opened without following a link) whose
// resource table asks for no more than `limits` allow (firmware_image.hpp), read whole so that
// what was checked is what the kernel loads.
Expected<Bytes> ReadImage(const fs::path& image, std::uint64_t max, const FirmwareLimits& limits) {
  const std::string name = image.filename().string();
  const Fd in(::open(image.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (in.get() < 0 || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail(AppsErrc::kSandbox, name + " is not an ELF image");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max) {
    return Fail(AppsErrc::kSandbox, name + " is larger than " + std::to_string(max) + " bytes");
  }
  Bytes bytes(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t size = 0;
  for (ssize_t got = 1; got > 0 && size < bytes.size(); size += static_cast<std::size_t>(got)) {
    got = ::read(in.get(), bytes.data() + size, bytes.size() - size);
    if (got < 0) return Fail(AppsErrc::kSandbox, "cannot read " + name);
    if (got == 0) break;
  }
  if (size != static_cast<std::size_t>(st.st_size)) {
    return Fail(AppsErrc::kSandbox, name + " changed while it was read");
  }
  bytes.resize(size);
  if (auto checked = CheckFirmwareImage(bytes, limits); !checked) {
    return std::unexpected(std::move(checked.error()).WithContext(name));
  }
  return bytes;
}

Expected<void> WriteImage(ByteView image, const fs::path& to) {
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  bool written = out.get() >= 0;
  while (written && !image.empty()) {
    const ssize_t put = ::write(out.get(), image.data(), image.size());
    written = put > 0;
    if (written) image = image.subspan(static_cast<std::size_t>(put));
  }
  if (!written || out.Close() != 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot write " + to.string() + ": " + std::generic_category().message(errno));
  }
  return {};
}

class CoprocessorRun final : public sandbox::AppRun {
 public:
  CoprocessorRun(CoprocessorConfig core, fs::path firmware, Fd timer, bool needs_endpoint,
                 EndpointSink endpoint)
      : core_(std::move(core)),
        firmware_(std::move(firmware)),
        timer_(std::move(timer)),
        needs_endpoint_(needs_endpoint),
        endpoint_(std::move(endpoint)),
        endpoint_deadline_(Clock::now() + core_.endpoint_timeout) {}
  ~CoprocessorRun() override {
    if (!Stop(core_)) log::Warning("coprocessor {} does not stop", core_.name);
    std::error_code ec;
    fs::remove(firmware_, ec);
  }
  CoprocessorRun(const CoprocessorRun&) = delete;
  CoprocessorRun& operator=(const CoprocessorRun&) = delete;

  pid_t pid() const override { return 0; }
  int exit_descriptor() const override { return timer_.get(); }

  std::optional<sandbox::AppExit> Wait(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      std::uint64_t ticks = 0;
      (void)::read(timer_.get(), &ticks, sizeof(ticks));
      if (!exit_) Check();
      if (exit_) return exit_;
      const auto now = Clock::now();
      if (now >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::min<Clock::duration>(core_.poll_interval, deadline - now));
    }
  }

  // Asks the kernel to stop the core and returns: Wait sees it offline. After SIGKILL, the run
  // has ended whatever the core does.
  void Signal(int signal) const override {
    if (signal == SIGKILL) killed_ = true;
    Write(core_, "state", "stop");
  }

 private:
  void End(const std::string& how) {
    exit_ = sandbox::AppExit{.ended = "ended on coprocessor " + core_.name + ", " + how};
  }

  void Check() {
    const auto state = State(core_);
    if (!state) return End("whose state cannot be read: " + state.error().message());
    // The states in which the core runs nothing (Linux's rproc_state_string); "running",
    // "attached" and "suspended" keep the app, and so does a state the kernel is still settling.
    constexpr std::array<std::string_view, 5> kEnded = {"offline", "crashed", "deleted", "invalid",
                                                        "detached"};
    if (std::find(kEnded.begin(), kEnded.end(), *state) != kEnded.end()) {
      return End(*state == "crashed" ? "that crashed" : "that is " + *state);
    }
    if (killed_) return End("which does not stop");
    if (endpoint_found_) return;
    if (const auto sysfs = FindEndpoint(core_)) {
      const fs::path device = core_.dev_dir / sysfs->filename();
      auto opened =
          core_.open_endpoint ? core_.open_endpoint(device, *sysfs) : OpenDevice(device, *sysfs);
      if (opened) {
        endpoint_found_ = true;
        if (endpoint_) endpoint_(std::move(*opened));
        return;
      }
      log::Warning("coprocessor {}: {}", core_.name, opened.error().message());
    }
    if (Clock::now() >= endpoint_deadline_) {
      endpoint_found_ = true;  // looked for long enough
      if (needs_endpoint_) {
        Write(core_, "state", "stop");
        End("whose firmware announced no rpmsg-raw endpoint");
      }
    }
  }

  const CoprocessorConfig core_;
  const fs::path firmware_;
  const Fd timer_;
  const bool needs_endpoint_;
  const EndpointSink endpoint_;
  const Clock::time_point endpoint_deadline_;
  bool endpoint_found_ = false;
  mutable std::atomic<bool> killed_ = false;
  std::optional<sandbox::AppExit> exit_;
};

}  // namespace

Expected<std::unique_ptr<sandbox::AppRun>> StartOnCoprocessor(const CoprocessorConfig& core,
                                                              const fs::path& image,
                                                              const std::string& component,
                                                              bool needs_endpoint,
                                                              EndpointSink endpoint) {
  if (!package::IsUuid(component)) return Failed(core, "not a component ID");
  const auto loaded = ReadImage(image, core.max_image_bytes, core.firmware_limits);
  if (!loaded) return std::unexpected(loaded.error());
  if (!Stop(core)) return Failed(core, "does not stop");
  const std::string name = "aspis-" + component + ".elf";
  const fs::path firmware = core.firmware_dir / name;
  const fs::path partial = core.firmware_dir / ("." + name + ".partial");
  std::error_code ec;
  fs::create_directories(core.firmware_dir, ec);
  if (auto copied = WriteImage(*loaded, partial); !copied) {
    fs::remove(partial, ec);
    return std::unexpected(copied.error());
  }
  fs::rename(partial, firmware, ec);
  if (ec) {
    fs::remove(partial, ec);
    return Failed(core, "cannot place its firmware in " + core.firmware_dir.string());
  }
  const auto abandon = [&](const std::string& why) {
    Stop(core);
    std::error_code ignored;
    fs::remove(firmware, ignored);
    return Failed(core, why);
  };
  // aspisd restarts apps that end; the kernel's recovery would restart a crashed one unseen.
  if (fs::exists(core.remoteproc / "recovery", ec)) Write(core, "recovery", "disabled");
  for (const auto& [attribute, value] :
       {std::pair<std::string, std::string>{"firmware", name}, {"state", "start"}}) {
    if (auto written = board::WriteAttribute(core.remoteproc / attribute, value); !written) {
      return abandon(written.error().message());
    }
  }
  if (!Settles(core, "running")) return abandon("does not run its firmware");
  Fd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(core.poll_interval);
  itimerspec every{};
  every.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1'000'000'000);
  every.it_interval.tv_nsec = static_cast<long>(interval.count() % 1'000'000'000);
  every.it_value = every.it_interval;
  if (timer.get() < 0 || ::timerfd_settime(timer.get(), 0, &every, nullptr) != 0) {
    return abandon("cannot make a timer");
  }
  return std::make_unique<CoprocessorRun>(core, firmware, std::move(timer), needs_endpoint,
                                          std::move(endpoint));
}

void ResetCoprocessor(const CoprocessorConfig& core) {
  if (!Stop(core)) log::Warning("coprocessor {} does not stop", core.name);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(core.firmware_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if ((name.starts_with("aspis-") || name.starts_with(".aspis-")) &&
        (name.ends_with(".elf") || name.ends_with(".elf.partial"))) {
      fs::remove(entry.path(), ec);
    }
  }
}

}  // namespace aspis::device::apps
