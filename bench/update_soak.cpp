// Soak of the update agent under injected kills: OS and app updates, one after another, on a
// simulated board (slot directories, the simulated bootloader, a software root of trust), with the
// agents run in a child process that is killed (SIGKILL) at a random kill point of the install
// (device/kill_point.hpp) in most runs. After each kill the board restarts the process or reboots.
// Every boot checks what a real aspisd checks before it runs: a slot is booted, and its tree is
// the OS its signed header names at a security version not below the anti-rollback counter; a
// boot that fails this is a brick. Some releases are bad (their trial fails, or the app cannot
// run here) and must be reverted.
//
//   update_soak [--kills N] [--seed S] [--dir DIR]
//
// Prints kills, bricks (must be 0), reverts and the cycles run.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "device/env.hpp"
#include "device/state/state_store.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/app_health.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/slot_writer.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"
#include "rot/root_of_trust.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace aspis;
using namespace aspis::device::update;

constexpr char kBoard[] = "mt3620-sim";
constexpr char kComponent[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";
constexpr int kReboot = 10;
constexpr int kNoBootableSlot = 20;
constexpr int kSlotNotItsOs = 21;
constexpr int kFailed = 30;

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// What the parent makes once: keys, two OS releases, two app versions and a bad one.
struct Fixture {
  fs::path dir;
  crypto::PrivateKey os_key;
  crypto::PrivateKey app_key;
};

// Packs `tree` as a package of `kind`; returns its path.
fs::path Pack(const Fixture& f, const fs::path& tree, package::Kind kind,
              const std::string& version, const std::string& image_id) {
  const bool os = kind == package::Kind::kOs;
  const fs::path payload = f.dir / "payload";
  fs::remove(payload);
  auto packed = package::PackDirectory(tree, payload, {.symlinks = os});
  if (!packed) throw std::runtime_error(packed.error().message());
  package::Manifest m;
  m.image_id = image_id;
  m.component_id = os ? "0f0e0d0c-0b0a-4908-8706-050403020100" : kComponent;
  m.name = os ? "Aspis OS" : "blink";
  m.kind = kind;
  m.version = version;
  m.security_version = 1;
  m.payload.compression = package::Compression::kZstd;
  m.payload.unpacked_size = packed->unpacked_size;
  m.target_boards = {kBoard};
  if (os) {
    m.measurements = *package::MeasureOsTree(tree);
  } else {
    m.app_manifest = std::string(R"({"Name": "blink", "ComponentId": ")") + kComponent +
                     R"(", "EntryPoint": "/bin/app"})";
  }
  const fs::path path = f.dir / (image_id + ".aspkg");
  const crypto::PrivateKey& key = os ? f.os_key : f.app_key;
  if (auto ok = package::Write(m, payload, std::span(&key, 1), path); !ok) {
    throw std::runtime_error(ok.error().message());
  }
  return path;
}

// Image IDs: a fixed UUID whose last group is `group` (4 hex digits) and `n`.
std::string ImageId(std::string_view group, int n) {
  return fmt::format("00000000-0000-4000-8000-{}{:08x}", group, n);
}

// OS and app release `n`, packed from trees that differ in a few files. A bad app is built for
// another machine (IBM S/390), so it cannot run here and is reverted.
struct Release {
  std::string os_image, os_version, app_image, app_version;
};

Release MakeRelease(const Fixture& f, int n, bool bad_app) {
  const Release r{ImageId("0a00", n), fmt::format("1.{}", n), ImageId("0b00", n),
                  fmt::format("1.{}", n)};
  const fs::path os = f.dir / "tree-os";
  fs::remove_all(os);
  WriteText(os / "usr/sbin/aspisd", "aspisd " + r.os_version);
  WriteText(os / "etc/aspis/trust-bundle.pem", "roots");
  WriteText(os / "usr/lib/libc.so", std::string(std::size_t{256} << 10, 'c') + r.os_version);
  fs::create_directory_symlink("usr/bin", os / "bin");
  Pack(f, os, package::Kind::kOs, r.os_version, r.os_image);
  const fs::path app = f.dir / "tree-app";
  fs::remove_all(app);
  WriteText(app / "app_manifest.json", R"({"Name": "blink", "EntryPoint": "/bin/app"})");
  std::string program = "#!/bin/sh\necho " + r.app_version + "\n";
  if (bad_app) {
    program.assign(64, '\0');
    program.replace(0, 4,
                    "\x7f"
                    "ELF");
    program[4] = 2;    // 64-bit
    program[5] = 1;    // little-endian
    program[16] = 3;   // a shared object
    program[18] = 22;  // IBM S/390
  }
  WriteText(app / "bin/app", program);
  fs::permissions(app / "bin/app", fs::perms::owner_all);
  Pack(f, app, package::Kind::kApp, r.app_version, r.app_image);
  return r;
}

// The board's process: boots, checks the booted slot, and drives the agents toward the targets
// until everything is idle (0) or a reboot is asked (kReboot).
int Child(const fs::path& dir, const std::string& boot_id, const Release& release, bool os_bad) {
  crypto::dsse::TrustedKeys os_keys;
  crypto::dsse::TrustedKeys app_keys;
  os_keys.Add(*crypto::PublicKey::FromPem(
      AsString(*file::Read(dir / "os.key.pub", file::kSmallFileLimit))));
  app_keys.Add(*crypto::PublicKey::FromPem(
      AsString(*file::Read(dir / "app.key.pub", file::kSmallFileLimit))));
  file::FileSystem& real = file::RealFileSystem();
  auto rot = rot::Initialize({.backend = "software", .state_dir = dir / "rot"});
  auto boot = SimulatedBootloader::Open(real, dir / "slots");
  if (!rot || !boot) return kFailed;
  auto booted = boot->Boot(boot_id);
  if (!booted) return kNoBootableSlot;
  const fs::path slot = boot->SlotDir(*booted);
  auto measured = package::MeasureOsTree(slot);
  auto counter = (*rot)->ReadCounter(kOsSecurityVersionCounter);
  if (!measured || !counter ||
      !CheckBootedOs(SlotHeader(slot), {.os = &os_keys}, measured->at("os"), *counter)) {
    return kSlotNotItsOs;
  }
  device::state::StateStore store(real, dir / "state");
  DirectorySlotWriter writer([&](Slot s) { return boot->SlotDir(s); }, {.os = &os_keys}, kBoard);
  bool reboot = false;
  auto os = OsAgent::Open({.env = device::SystemEnv(),
                           .store = store,
                           .boot = *boot,
                           .writer = writer,
                           .rot = **rot,
                           .reboot = [&] { reboot = true; },
                           .trial_time = std::chrono::minutes(10)},
                          boot_id);
  if (!os || !os->Resume()) return kFailed;
  if (reboot) return kReboot;
  if (os->record().step == Step::kTrial) {
    auto judged =
        os_bad ? os->Unhealthy("soak: this release does not come up healthy") : os->Healthy();
    if (!judged) return kFailed;
    if (reboot) return kReboot;
  }
  const OsRecord& r = os->record();
  const bool settled = r.installed_image_id == release.os_image ||
                       (r.target.image_id == release.os_image && r.outcome == Outcome::kReverted);
  if (r.step == Step::kIdle && !settled) {
    if (!os->Install(
            {release.os_image, release.os_version, 1, dir / (release.os_image + ".aspkg")})) {
      return kFailed;
    }
    if (reboot) return kReboot;
  }
  auto apps = AppAgent::Open({.store = store,
                              .apps_dir = dir / "apps",
                              .publishers = [&] { return package::Publishers{.apps = &app_keys}; },
                              .health = CheckAppRunsHere});
  if (!apps || !apps->Resume()) return kFailed;
  if (!apps->Install({kComponent, release.app_image, release.app_version, 1,
                      dir / (release.app_image + ".aspkg")})) {
    return kFailed;
  }
  return 0;
}

// Every kill point of an OS or app install.
std::vector<std::string> KillPoints() {
  std::vector<std::string> points = {"slot.unpacked", "slot.cleared", "app.unpacked"};
  for (const auto& t : kTransitions) {
    for (const char* when : {".before", ".after"}) {
      points.push_back(fmt::format("os.{}-{}{}", StepName(t.from), StepName(t.to), when));
    }
  }
  for (const auto& t : kAppTransitions) {
    if (t.on == AppEvent::kRetired) continue;
    for (const char* when : {".before", ".after"}) {
      points.push_back(fmt::format("app.{}-{}{}", AppStepName(t.from), AppStepName(t.to), when));
    }
  }
  return points;
}

struct Run {
  int exit_code = -1;
  bool killed = false;
};

Run Spawn(const std::string& self, const std::vector<std::string>& args, const std::string& kill_at,
          const fs::path& marks, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!kill_at.empty()) {
      ::setenv("ASPIS_KILL_AT", kill_at.c_str(), 1);   // NOLINT(concurrency-mt-unsafe)
      ::setenv("ASPIS_KILL_MARKS", marks.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    }
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out >= 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
    }
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(self.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(self.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return {-1, WTERMSIG(status) == SIGKILL};
  return {WEXITSTATUS(status), false};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli("Soak of the update agent under injected kills");
  int kills_wanted = 1000;
  unsigned seed = 1;
  std::string work;
  std::vector<std::string> child;
  cli.add_option("--kills", kills_wanted, "Kills to inject (default 1000)");
  cli.add_option("--seed", seed, "Random seed");
  cli.add_option("--dir", work, "Working directory (default: a temporary one)");
  cli.add_option("--child", child,
                 "(internal) DIR BOOT_ID OS_IMAGE OS_VERSION APP_IMAGE APP_VERSION OS_BAD")
      ->expected(7);
  CLI11_PARSE(cli, argc, argv);
  if (!child.empty()) {
    return Child(child[0], child[1], {child[2], child[3], child[4], child[5]}, child[6] == "1");
  }

  std::optional<testing::TempDir> temporary;
  if (work.empty()) temporary.emplace();
  const fs::path dir = work.empty() ? temporary->path() : fs::path(work);
  Fixture f{dir, *crypto::PrivateKey::GenerateP256(), *crypto::PrivateKey::GenerateP256()};
  std::ofstream(dir / "os.key.pub") << *f.os_key.Public().ToPem();
  std::ofstream(dir / "app.key.pub") << *f.app_key.Public().ToPem();
  const Release factory = MakeRelease(f, 0, false);
  // The factory install: OS 1.0 in slot A, committed.
  {
    crypto::dsse::TrustedKeys os_keys;
    os_keys.Add(f.os_key.Public());
    fs::create_directories(dir / "slots");
    auto boot = SimulatedBootloader::Open(file::RealFileSystem(), dir / "slots");
    DirectorySlotWriter writer([&](Slot s) { return boot->SlotDir(s); }, {.os = &os_keys}, kBoard);
    const auto fail = [](std::string_view what, const Error& error) {
      std::cerr << "factory install: " << what << ": " << error.message() << "\n";
      return 1;
    };
    if (!boot) return fail("bootloader", boot.error());
    auto written = writer.Write(Slot::kA, dir / (factory.os_image + ".aspkg"), AcceptAnyPackage);
    if (!written) return fail("slot A", written.error());
    auto rot = rot::Initialize({.backend = "software", .state_dir = dir / "rot"});
    if (!rot) return fail("root of trust", rot.error());
    if (auto ok = (*rot)->AdvanceCounter(kOsSecurityVersionCounter, 1); !ok) {
      return fail("counter", ok.error());
    }
    (void)file::EnsureDirectory(dir / "state", 0700);
    boot->Boot("factory");
    device::state::StateStore store(file::RealFileSystem(), dir / "state");
    auto os = OsAgent::Open({.env = device::SystemEnv(),
                             .store = store,
                             .boot = *boot,
                             .writer = writer,
                             .rot = **rot,
                             .reboot = [] {},
                             .trial_time = std::chrono::minutes(10)},
                            "factory");
    if (!os) return fail("agent", os.error());
    if (auto ok = os->Adopt(
            {factory.os_image, factory.os_version, 1, dir / (factory.os_image + ".aspkg")});
        !ok) {
      return fail("adopt", ok.error());
    }
  }

  const std::string self = fs::read_symlink("/proc/self/exe");
  const auto points = KillPoints();
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> chance(0, 1);
  int kills = 0;
  int bricks = 0;
  int wrong = 0;
  int stuck = 0;
  int reverts = 0;
  int cycles = 0;
  int runs = 0;
  int boots = 0;
  const auto started = std::chrono::steady_clock::now();
  device::state::StateStore records(file::RealFileSystem(), dir / "state");
  std::string running_os = factory.os_image;
  std::string running_app;
  for (int cycle = 1; kills < kills_wanted && bricks == 0 && wrong == 0; ++cycle) {
    ++cycles;
    const bool os_bad = chance(random) < 0.2;
    const bool app_bad = chance(random) < 0.2;
    const Release release = MakeRelease(f, cycle, app_bad);
    bool done = false;
    for (int attempt = 0; attempt < 60 && !done; ++attempt) {
      const bool inject = chance(random) < 0.8;
      const std::string point = inject ? points[random() % points.size()] : "";
      const fs::path marks = dir / "marks" / std::to_string(runs++);
      fs::create_directories(marks);
      const Run run =
          Spawn(self,
                {"--child", dir.string(), "boot-" + std::to_string(boots), release.os_image,
                 release.os_version, release.app_image, release.app_version, os_bad ? "1" : "0"},
                point, marks, dir / "board.log");
      fs::remove_all(marks);
      if (run.killed) {
        ++kills;
        if (chance(random) < 0.5) ++boots;  // the watchdog reboots, or aspisd restarts
      } else if (run.exit_code == kReboot) {
        ++boots;
      } else if (run.exit_code == 0) {
        done = true;
      } else if (run.exit_code == kNoBootableSlot || run.exit_code == kSlotNotItsOs) {
        ++bricks;
        std::cerr << "BRICK in cycle " << cycle << " (exit " << run.exit_code << ")\n";
        break;
      } else {
        std::cerr << "cycle " << cycle << ": the agent failed (exit " << run.exit_code
                  << "), retried; see " << (dir / "board.log").string() << "\n";
      }
    }
    if (!done && bricks == 0) ++stuck;
    // The outcome: a good release installed, a bad one reverted to what ran before.
    auto os = OsRecordFrom(records.Get("os")->value_or(json::Json::object()));
    auto apps = records.Get("apps");
    const json::Json app_doc =
        apps && *apps
            ? (**apps).value("components", json::Json::object()).value(kComponent, json::Json())
            : json::Json();
    auto app = app_doc.is_object() ? AppRecordFrom(app_doc) : Expected<AppRecord>();
    if (!os || !app) {
      ++wrong;
      break;
    }
    const std::string want_os = os_bad ? running_os : release.os_image;
    const std::string want_app = app_bad ? running_app : release.app_image;
    if (os->installed_image_id != want_os || app->installed_image_id != want_app) {
      std::cerr << fmt::format("cycle {}: runs OS {} and app {}, expected {} and {}\n", cycle,
                               os->installed_image_id, app->installed_image_id, want_os, want_app);
      ++wrong;
    }
    reverts +=
        (os->outcome == Outcome::kReverted ? 1 : 0) + (app->outcome == Outcome::kReverted ? 1 : 0);
    running_os = os->installed_image_id;
    running_app = app->installed_image_id;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << fmt::format(
      "kills {} (asked {}), bricks {} (limit 0), stuck {} (limit 0), wrong outcomes {} (limit "
      "0), reverts {}, cycles {}, process runs {}, boots {}, {:.0f} s\n",
      kills, kills_wanted, bricks, stuck, wrong, reverts, cycles, runs, boots, seconds);
  return bricks == 0 && stuck == 0 && wrong == 0 ? 0 : 1;
}
