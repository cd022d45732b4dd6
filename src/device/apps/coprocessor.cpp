#include "device/apps/coprocessor.hpp"

#include <fcntl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <thread>

#include "core/log.hpp"
#include "core/text.hpp"
#include "device/apps/errors.hpp"
#include "device/board/sysfs.hpp"

namespace aspis::device::apps {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::unexpected<Error> Failed(const CoprocessorConfig& core, const std::string& why) {
  return Fail(AppsErrc::kSandbox, "coprocessor " + core.name + ": " + why);
}

// The core's state ("offline", "running", "crashed", ...), or the error reading it.
Expected<std::string> State(const CoprocessorConfig& core) {
  return board::ReadAttribute(core.remoteproc / "state");
}

// Polls `done` every 10 ms until it holds or `core`'s start timeout passes.
bool Within(const CoprocessorConfig& core, const std::function<bool()>& done) {
  const auto deadline = Clock::now() + core.start_timeout;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Stop(const CoprocessorConfig& core) {
  if (const auto state = State(core); state && *state == "offline") return true;
  if (auto stopped = board::WriteAttribute(core.remoteproc / "state", "stop"); !stopped) {
    log::Warning("coprocessor {}: {}", core.name, stopped.error().message());
  }
  return Within(core, [&] {
    const auto state = State(core);
    return state && *state == "offline";
  });
}

// The name of the character device rpmsg_char made for an "rpmsg-raw" channel of the core's:
// in sysfs, <rpmsg device "virtioN.rpmsg-raw.SRC.DST">/rpmsg/rpmsgM somewhere under the
// remoteproc's device.
std::optional<std::string> FindEndpoint(const CoprocessorConfig& core) {
  std::error_code ec;
  const fs::path device = fs::canonical(core.remoteproc, ec);
  if (ec) return std::nullopt;
  for (auto it = fs::recursive_directory_iterator(device, ec); !ec && it != end(it);
       it.increment(ec)) {
    if (it.depth() > 6) {
      it.disable_recursion_pending();
      continue;
    }
    const fs::path& path = it->path();
    std::string name = path.filename().string();
    if (!it->is_directory(ec) || !name.starts_with("rpmsg") || name.size() == 5 ||
        !std::all_of(name.begin() + 5, name.end(),
                     [](unsigned char c) { return std::isdigit(c) != 0; }) ||
        path.parent_path().filename() != "rpmsg" ||
        path.parent_path().parent_path().filename().string().find(".rpmsg-raw.") ==
            std::string::npos) {
      continue;
    }
    return name;
  }
  return std::nullopt;
}

Expected<Fd> OpenDevice(const fs::path& path) {
  Fd device(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (device.get() < 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot open " + path.string() + ": " + std::generic_category().message(errno));
  }
  return device;
}

Expected<void> RequireElf(const fs::path& image) {
  const Fd file(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  std::array<char, 4> magic{};
  if (file.get() < 0 || ::read(file.get(), magic.data(), magic.size()) != 4 ||
      std::string_view(magic.data(), magic.size()) !=
          "\x7f"
          "ELF") {
    return Fail(AppsErrc::kSandbox, image.filename().string() + " is not an ELF image");
  }
  return {};
}

class CoprocessorRun final : public sandbox::AppRun {
 public:
  CoprocessorRun(CoprocessorConfig core, fs::path firmware, Fd timer)
      : core_(std::move(core)), firmware_(std::move(firmware)), timer_(std::move(timer)) {}
  ~CoprocessorRun() override {
    if (!exit_) Stop(core_);
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
      if (exit_) return exit_;
      const auto state = State(core_);
      if (!state || *state != "running") {
        const std::string how = !state ? "whose state cannot be read: " + state.error().message()
                                : *state == "crashed" ? "that crashed"
                                                      : "that is " + text::Printable(*state);
        exit_ = sandbox::AppExit{.ended = "ended on coprocessor " + core_.name + ", " + how};
        return exit_;
      }
      const auto now = Clock::now();
      if (now >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::min<Clock::duration>(core_.poll_interval, deadline - now));
    }
  }

  // Stops the core (the kernel has when its write returns; a test's kernel may take a moment).
  void Signal(int /*signal*/) const override { Stop(core_); }

 private:
  const CoprocessorConfig core_;
  const fs::path firmware_;
  const Fd timer_;
  std::optional<sandbox::AppExit> exit_;
};

}  // namespace

Expected<CoprocessorStart> StartOnCoprocessor(const CoprocessorConfig& core, const fs::path& image,
                                              const std::string& component, bool endpoint) {
  if (auto elf = RequireElf(image); !elf) return std::unexpected(elf.error());
  if (!Stop(core)) return Failed(core, "does not stop");
  const std::string name = "aspis-" + component + ".elf";
  const fs::path firmware = core.firmware_dir / name;
  const fs::path partial = core.firmware_dir / ("." + name + ".partial");
  std::error_code ec;
  fs::create_directories(core.firmware_dir, ec);
  fs::copy_file(image, partial, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(partial, firmware, ec);
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
  for (const auto& [attribute, value] :
       {std::pair<std::string, std::string>{"firmware", name}, {"state", "start"}}) {
    if (auto written = board::WriteAttribute(core.remoteproc / attribute, value); !written) {
      return abandon(written.error().message());
    }
  }
  if (!Within(core, [&] {
        const auto state = State(core);
        return state && *state == "running";
      })) {
    return abandon("does not run its firmware");
  }
  CoprocessorStart started;
  if (endpoint) {
    std::optional<std::string> device;
    if (!Within(core, [&] { return (device = FindEndpoint(core)).has_value(); })) {
      return abandon("its firmware announced no rpmsg-raw endpoint");
    }
    auto opened = core.open_endpoint ? core.open_endpoint(core.dev_dir / *device)
                                     : OpenDevice(core.dev_dir / *device);
    if (!opened) return abandon(opened.error().message());
    started.endpoint = std::move(*opened);
  }
  Fd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(core.poll_interval);
  itimerspec every{};
  every.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1'000'000'000);
  every.it_interval.tv_nsec = static_cast<long>(interval.count() % 1'000'000'000);
  every.it_value = every.it_interval;
  if (timer.get() < 0 || ::timerfd_settime(timer.get(), 0, &every, nullptr) != 0) {
    return abandon("cannot make a timer");
  }
  started.run = std::make_unique<CoprocessorRun>(core, firmware, std::move(timer));
  return started;
}

}  // namespace aspis::device::apps
