#include "support/fake_remoteproc.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>

namespace aspis::testing {

namespace fs = std::filesystem;

namespace {

constexpr char kEndpoint[] = "remoteproc0#vdev0buffer/virtio0/virtio0.rpmsg-raw.-1.1024/rpmsg";

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

FakeRemoteproc::FakeRemoteproc(fs::path root, fs::path firmware_dir, bool announces_endpoint,
                               const std::string& state, bool stuck)
    : root_(std::move(root)),
      firmware_dir_(std::move(firmware_dir)),
      device_(root_ / "devices/platform/m4/remoteproc/remoteproc0"),
      announces_(announces_endpoint),
      stuck_(stuck) {
  fs::create_directories(device_);
  fs::create_directories(root_ / "class/remoteproc");
  fs::create_directories(root_ / "dev");
  fs::create_directory_symlink(device_, remoteproc());
  std::ofstream(device_ / "firmware") << "rproc-m4-fw\n";
  std::ofstream(device_ / "name") << "m4\n";
  std::ofstream(device_ / "recovery") << "enabled\n";
  Set(state);
  kernel_ = std::thread([this] { Kernel(); });
}

FakeRemoteproc::~FakeRemoteproc() {
  stopping_ = true;
  kernel_.join();
}

// A write the kernel makes is whole to any reader: the new file is renamed into place.
void FakeRemoteproc::Set(const std::string& state) {
  last_ = state;
  std::ofstream(device_ / "state.new") << state << "\n";
  fs::rename(device_ / "state.new", device_ / "state");
}

void FakeRemoteproc::Offline() {
  std::error_code ec;
  fs::remove_all(device_ / "remoteproc0#vdev0buffer", ec);
  const std::lock_guard lock(mutex_);
  firmware_ = Fd(-1);
}

void FakeRemoteproc::Load() {
  const fs::path image = firmware_dir_ / ReadText(device_ / "firmware");
  std::error_code ec;
  if (!fs::is_regular_file(image, ec)) {
    Set("offline");  // the kernel would have refused the write with ENOENT
    return;
  }
  {
    const std::lock_guard lock(mutex_);
    std::ifstream in(image, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    loaded_ = bytes.str();
  }
  ++starts_;
  if (announces_) fs::create_directories(device_ / kEndpoint / "rpmsg0");
  Set("running");
}

void FakeRemoteproc::Kernel() {
  while (!stopping_) {
    const std::string state = ReadText(device_ / "state");
    if (state == "start") {
      if (last_ == "running") {
        Set("running");  // the kernel refuses to start a running core (EBUSY)
      } else {
        Load();
      }
    } else if (state == "stop") {
      if (last_ != "running" || stuck_) {
        Set(last_);  // the kernel stops only a running core (EINVAL)
      } else {
        Offline();
        Set("offline");
      }
    }
    if (crash_) {
      Offline();
      Set("crashed");
      if (Recovery() == "enabled") Load();  // the kernel's own recovery
      crash_ = false;
    }
    if (ReadText(device_ / "recovery") == "recover") {
      std::ofstream(device_ / "recovery") << "disabled\n";
      if (last_ == "crashed") Load();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Expected<Fd> FakeRemoteproc::Open(const fs::path& path) {
  if (path != dev_dir() / "rpmsg0" || !fs::exists(device_ / kEndpoint / "rpmsg0")) {
    return Fail(std::make_error_code(std::errc::no_such_device), "no " + path.string());
  }
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    return Fail(std::make_error_code(std::errc::too_many_files_open), "socketpair");
  }
  const std::lock_guard lock(mutex_);
  firmware_ = Fd(pair[1]);
  return Fd(pair[0]);
}

Fd FakeRemoteproc::firmware() {
  const std::lock_guard lock(mutex_);
  return Fd(firmware_.get() < 0 ? -1 : ::fcntl(firmware_.get(), F_DUPFD_CLOEXEC, 0));
}

std::string FakeRemoteproc::State() const { return ReadText(device_ / "state"); }

std::string FakeRemoteproc::loaded() const {
  const std::lock_guard lock(mutex_);
  return loaded_;
}

std::string FakeRemoteproc::Recovery() const { return ReadText(device_ / "recovery"); }

void FakeRemoteproc::Crash() {
  crash_ = true;
  while (crash_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace aspis::testing
