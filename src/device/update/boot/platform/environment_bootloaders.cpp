#include "device/update/boot/platform/environment_bootloaders.hpp"

#include <fcntl.h>
#include <libuboot.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "device/update/errors.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace aspis::device::update {

namespace fs = std::filesystem;

namespace {

std::string Name(Slot slot) { return std::string(SlotName(slot)); }
std::string Order(Slot first) { return Name(first) + " " + Name(Other(first)); }

// --- U-Boot ---

struct UbootContextDeleter {
  void operator()(uboot_ctx* ctx) const {
    libuboot_close(ctx);
    libuboot_exit(ctx);
  }
};
using UbootContext = std::unique_ptr<uboot_ctx, UbootContextDeleter>;

Error UbootError(std::string_view what, int rc) {
  return Error(CoreErrc::kIo,
               std::string(what) + " (libubootenv: " + std::generic_category().message(-rc) + ")");
}

// The environment described by `config`, read; empty when it was never written.
Expected<UbootContext> OpenEnvironment(const fs::path& config) {
  uboot_ctx* raw = nullptr;
  if (const int rc = libuboot_initialize(&raw, nullptr); rc < 0) {
    return std::unexpected(UbootError("cannot start libubootenv", rc));
  }
  if (const int rc = libuboot_read_config(raw, config.c_str()); rc < 0) {
    libuboot_exit(raw);
    return std::unexpected(UbootError("cannot read " + config.string(), rc));
  }
  // No valid copy (-ENODATA) is a board whose environment was never written: it starts empty.
  if (const int rc = libuboot_open(raw); rc < 0 && rc != -ENODATA) {
    libuboot_exit(raw);
    return std::unexpected(UbootError("cannot open the U-Boot environment", rc));
  }
  return UbootContext(raw);
}

// --- GRUB ---

// Runs grub-editenv with `args`; its error output in the error when it fails.
Expected<void> GrubEditenv(const fs::path& envblk, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"grub-editenv", envblk.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> raw;
  raw.reserve(argv.size() + 1);
  for (auto& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Fail(CoreErrc::kIo, "cannot make a pipe");
  const Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  write_end.Close();
  if (rc != 0)
    return Fail(CoreErrc::kIo,
                std::string("grub-editenv does not run: ") + std::generic_category().message(rc));
  std::string errors;
  char buffer[512];
  for (ssize_t n; (n = ::read(read_end.get(), buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (errors.size() < 4096) errors.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Fail(CoreErrc::kIo, "grub-editenv failed: " + errors);
  }
  return {};
}

}  // namespace

Expected<Slot> SlotFromCommandLine(const fs::path& cmdline) {
  auto text = file::Read(cmdline, file::kSmallFileLimit);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("kernel command line"));
  std::istringstream words{std::string(AsString(*text))};
  for (std::string word; words >> word;) {
    if (word.starts_with("aspis.slot=")) return ParseSlot(word.substr(11));
  }
  return Fail(UpdateErrc::kBadState,
              "the kernel command line names no slot (the boot script must add aspis.slot=A|B)");
}

Expected<std::unique_ptr<UBootBootloader>> UBootBootloader::Open(fs::path config,
                                                                 fs::path cmdline) {
  std::unique_ptr<UBootBootloader> boot(new UBootBootloader(std::move(config), std::move(cmdline)));
  auto env = OpenEnvironment(boot->config_);
  if (!env) return std::unexpected(env.error());
  char* order = libuboot_get_env(env->get(), "BOOT_ORDER");
  const bool fresh = order == nullptr;
  std::free(order);  // NOLINT(cppcoreguidelines-no-malloc): libubootenv allocates with malloc
  env->reset();
  if (fresh) {
    auto ok = boot->Set({{"BOOT_ORDER", Order(Slot::kA)},
                         {"BOOT_A_LEFT", std::to_string(kBootTries)},
                         {"BOOT_B_LEFT", std::to_string(kBootTries)}});
    if (!ok) return std::unexpected(ok.error());
  }
  return boot;
}

Expected<void> UBootBootloader::Set(const std::map<std::string, std::string>& values) {
  auto env = OpenEnvironment(config_);
  if (!env) return std::unexpected(env.error());
  for (const auto& [name, value] : values) {
    if (const int rc = libuboot_set_env(env->get(), name.c_str(), value.c_str()); rc < 0) {
      return std::unexpected(UbootError("cannot set " + name, rc));
    }
  }
  if (const int rc = libuboot_env_store(env->get()); rc < 0) {
    return std::unexpected(UbootError("cannot store the U-Boot environment", rc));
  }
  return {};
}

Expected<void> UBootBootloader::TryNext(Slot slot) {
  return Set(
      {{"BOOT_ORDER", Order(slot)}, {"BOOT_" + Name(slot) + "_LEFT", std::to_string(kBootTries)}});
}

Expected<void> UBootBootloader::MarkGood(Slot slot) { return TryNext(slot); }

Expected<void> UBootBootloader::MarkBad(Slot slot) {
  return Set({{"BOOT_ORDER", Order(Other(slot))}, {"BOOT_" + Name(slot) + "_LEFT", "0"}});
}

Expected<std::unique_ptr<GrubBootloader>> GrubBootloader::Open(fs::path envblk, fs::path cmdline) {
  std::unique_ptr<GrubBootloader> boot(new GrubBootloader(std::move(envblk), std::move(cmdline)));
  std::error_code ec;
  if (!fs::exists(boot->envblk_, ec)) {
    if (auto ok = GrubEditenv(boot->envblk_, {"create"}); !ok) return std::unexpected(ok.error());
    auto ok = boot->Set(
        {{"ORDER", Order(Slot::kA)}, {"A_OK", "1"}, {"B_OK", "1"}, {"A_TRY", "0"}, {"B_TRY", "0"}});
    if (!ok) return std::unexpected(ok.error());
  }
  return boot;
}

Expected<void> GrubBootloader::Set(const std::map<std::string, std::string>& values) {
  std::vector<std::string> args = {"set"};
  for (const auto& [name, value] : values) {
    std::string arg = name;
    arg += '=';
    arg += value;
    args.push_back(std::move(arg));
  }
  return GrubEditenv(envblk_, args);
}

Expected<void> GrubBootloader::TryNext(Slot slot) {
  return Set({{"ORDER", Order(slot)}, {Name(slot) + "_OK", "1"}, {Name(slot) + "_TRY", "0"}});
}

Expected<void> GrubBootloader::MarkGood(Slot slot) { return TryNext(slot); }

Expected<void> GrubBootloader::MarkBad(Slot slot) {
  return Set({{"ORDER", Order(Other(slot))}, {Name(slot) + "_OK", "0"}});
}

}  // namespace aspis::device::update
