#include "device/cli/aspisd_cli.hpp"

#include <CLI/CLI.hpp>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "crypto/dsse.hpp"
#include "device/board/board_definition.hpp"
#include "device/daemon/daemon.hpp"
#include "device/measure/measured_launch.hpp"
#include "device/sim/supervisor.hpp"
#include "device/update/slot_writer.hpp"
#include "package/measure.hpp"
#include "rot/root_of_trust.hpp"

namespace aspis::device {

namespace {

constexpr char kDefaultStateDir[] = "/var/lib/aspisd";

int Report(const Error& error, std::ostream& err) {
  err << "aspisd: " << error.message() << "\n";
  return 1;
}

int PrintIdentity(rot::RootOfTrust& rot, const std::string& output, std::ostream& out,
                  std::ostream& err) {
  auto identity = rot.GetIdentity();
  if (!identity) return Report(identity.error(), err);
  auto pem = identity->public_key.ToPem();
  if (!pem) return Report(pem.error(), err);
  if (output == "json") {
    out << json::Json{{"device_id", identity->device_id},
                      {"backend", rot.Backend()},
                      {"register", rot.RegisterName()},
                      {"public_key_pem", *pem}}
               .dump(2)
        << "\n";
  } else {
    out << "Device ID:   " << identity->device_id << "\n"
        << "Backend:     " << rot.Backend() << "\n"
        << "Register:    " << rot.RegisterName() << "\n"
        << "Public key:\n"
        << *pem;
  }
  return 0;
}

// Runs the daemon until SIGTERM or SIGINT; 0 after a clean stop, kRebootExitCode when the update
// agent asks for a reboot.
int RunUntilSignalled(const DaemonConfig& config, std::ostream& err) {
  // A closed stream (journald's socket as stderr, a peer gone) fails the write, not aspisd.
  (void)::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::atomic<bool> finished{false};
  Expected<DaemonExit> result;
  std::jthread daemon([&](const std::stop_token& stop) {
    result = RunDaemon(config, SystemEnv(), stop);
    finished = true;
  });
  const timespec slice{0, 200'000'000};
  while (!finished) {
    const int signal = sigtimedwait(&signals, nullptr, &slice);
    if (signal > 0) {
      log::Info("received signal {}; stopping", signal);
      daemon.request_stop();
      break;
    }
  }
  daemon.join();
  if (!result) return Report(result.error(), err);
  return *result == DaemonExit::kReboot ? kRebootExitCode : 0;
}

// Where `aspisd flash` writes: a simulated board's slot directories, or a board's partition A.
struct FlashTarget {
  std::filesystem::path slots;
  std::filesystem::path partition;
  std::filesystem::path state_dir;  // with a partition: where its header goes
};

// `aspisd flash`: slot A receives the OS package, checked as an install is.
int Flash(const FlashTarget& target, const std::filesystem::path& package,
          const std::filesystem::path& keys_file, const std::filesystem::path& board,
          std::ostream& out, std::ostream& err) {
  auto pem = file::Read(keys_file, file::kSmallFileLimit);
  auto keys = pem ? crypto::PublicKey::AllFromPem(AsString(*pem))
                  : Expected<std::vector<crypto::PublicKey>>(std::unexpected(pem.error()));
  if (!keys) return Report(keys.error(), err);
  crypto::dsse::TrustedKeys trusted;
  for (const auto& key : *keys) trusted.Add(key);
  auto definition = board::BoardDefinition::Load(board);
  if (!definition) return Report(definition.error(), err);
  const std::string* const name = &definition->name();
  std::unique_ptr<update::SlotWriter> writer;
  if (!target.partition.empty()) {
    const std::filesystem::path headers = target.state_dir / "slots";
    if (auto ok = file::EnsureDirectory(headers, 0700); !ok) return Report(ok.error(), err);
    writer = std::make_unique<update::ImageSlotWriter>(
        std::array<std::filesystem::path, 2>{target.partition, {}}, headers,
        package::Publishers{.os = &trusted}, *name);
  } else {
    if (auto ok = file::EnsureDirectory(target.slots, 0755); !ok) return Report(ok.error(), err);
    writer = std::make_unique<update::DirectorySlotWriter>(
        [&](update::Slot slot) { return target.slots / (slot == update::Slot::kA ? "a" : "b"); },
        package::Publishers{.os = &trusted}, *name);
  }
  auto written = writer->Write(update::Slot::kA, package, update::AcceptAnyPackage);
  if (!written) return Report(written.error(), err);
  out << "slot A holds OS " << written->version << " (image " << written->image_id << ")\n";
  return 0;
}

}  // namespace

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspisd: the Aspis device runtime", "aspisd");
  app.require_subcommand(1);
  auto* identity = app.add_subcommand("identity", "Device identity in the root of trust");
  identity->require_subcommand(1);

  rot::Config config;
  config.state_dir = kDefaultStateDir;
  std::string state_dir = kDefaultStateDir;
  std::string output = "table";

  auto* init = identity->add_subcommand(
      "init", "Create the identity key, counters and state (idempotent) and show the identity");
  init->add_option("--rot", config.backend, "Root-of-trust backend")
      ->check(CLI::IsMember({"software", "tpm2"}))
      ->required();
  init->add_option("--tcti", config.tcti,
                   "tpm2-tss TCTI, e.g. device:/dev/tpmrm0 or swtpm:port=2321")
      ->capture_default_str();
  init->add_option("--state", state_dir, "State directory")->capture_default_str();
  init->add_option("--output", output)->check(CLI::IsMember({"table", "json"}));

  auto* show = identity->add_subcommand("show", "Show the device ID and identity public key");
  show->add_option("--state", state_dir, "State directory")->capture_default_str();
  show->add_option("--output", output)->check(CLI::IsMember({"table", "json"}));

  DaemonConfig daemon;
  std::string daemon_state = daemon.state_dir.string();
  std::string trust_bundle, os_image, board, admin_socket = daemon.admin_socket.string();
  std::string boot_id_file = daemon.boot_id_file.string();
  std::string slots, slot_a, slot_b, boot_environment;
  std::string kernel_cmdline = daemon.kernel_cmdline.string();
  int retry_max_seconds = 600;
  auto* run = app.add_subcommand("run", "Run the device runtime until SIGTERM");
  run->set_config("--config", "",
                  "TOML file holding any of these options by their long names "
                  "(service = \"https://...\"); flags given too take precedence");
  run->allow_config_extras(CLI::config_extras_mode::error);
  run->add_option("--state", daemon_state, "State directory")->capture_default_str();
  run->add_option("--service", daemon.service_url, "Security service URL (https://host:port)")
      ->required();
  run->add_option("--trust-bundle", trust_bundle,
                  "PEM file of the platform root CA to pin and the OS publisher keys (not with "
                  "the simulator, whose booted slot holds it)");
  run->add_option("--rot", daemon.rot, "Root-of-trust backend")
      ->check(CLI::IsMember({"software", "tpm2"}))
      ->capture_default_str();
  run->add_option("--tcti", daemon.tcti,
                  "tpm2-tss TCTI (tpm2 backend), through a resource manager: tabrmd:... or "
                  "device:/dev/tpmrm0")
      ->capture_default_str();
  auto* image_option =
      run->add_option("--os-image", os_image, "The OS slot image (a file, or a directory)");
  auto* bootloader_option =
      run->add_option("--bootloader", daemon.bootloader,
                      "The A/B bootloader the OS is updated through: simulator (slot directories "
                      "a and b under --slots, the booted one holding the trust bundle), or u-boot "
                      "or grub (OS images in --slot-a and --slot-b); the booted slot is the OS "
                      "image")
          ->check(CLI::IsMember({"simulator", "u-boot", "grub"}));
  run->add_option("--slots", slots, "The simulator's slot directory")->needs(bootloader_option);
  run->add_option("--slot-a", slot_a, "u-boot, grub: OS partition A (a block device)")
      ->needs(bootloader_option);
  run->add_option("--slot-b", slot_b, "u-boot, grub: OS partition B (a block device)")
      ->needs(bootloader_option);
  run->add_option("--boot-environment", boot_environment,
                  "u-boot: the fw_env.config naming its environment; grub: the grubenv block")
      ->needs(bootloader_option);
  run->add_option("--kernel-cmdline", kernel_cmdline,
                  "u-boot, grub: where the boot script's aspis.slot=A|B is read")
      ->capture_default_str();
  bootloader_option->excludes(image_option);
  int trial_seconds = static_cast<int>(daemon.trial_time.count());
  run->add_option("--trial-seconds", trial_seconds,
                  "How long a new OS may take to attest and check in before it is reverted")
      ->check(CLI::Range(10, 24 * 3600))
      ->capture_default_str();
  run->add_option("--board", board, "The board definition file")->required();
  run->add_option("--admin-socket", admin_socket, "Local admin socket")->capture_default_str();
  run->add_option("--boot-id-file", boot_id_file,
                  "Software backend: the file whose change means a reboot")
      ->capture_default_str();
  run->add_option("--os-version", daemon.os_version, "The OS version this device runs (reported)")
      ->capture_default_str();
  run->add_option("--publisher-root", daemon.publisher_root,
                  "The tenant's publisher root fingerprint (publisher-key-set show), provisioned "
                  "so the first key set must carry it; without it the first set is trusted on "
                  "first use");
  std::uint64_t staging_mib = daemon.staging_capacity >> 20;
  run->add_option("--staging-max-mib", staging_mib,
                  "MiB the staging area for downloaded images may hold")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20))
      ->capture_default_str();
  int check_in_seconds = static_cast<int>(daemon.check_in_interval.count());
  run->add_option("--check-in-interval", check_in_seconds, "Seconds between check-ins")
      ->check(CLI::Range(1, 7 * 24 * 3600))
      ->capture_default_str();
  run->add_option("--retry-max-seconds", retry_max_seconds,
                  "Longest wait between retries while the service is unreachable")
      ->check(CLI::Range(1, 24 * 3600))
      ->capture_default_str();
  run->add_flag("--run-apps", daemon.run_apps,
                "Run the installed apps in their sandboxes (root, cgroup memory and pids)");
  run->add_option(
         "--app-resolver", daemon.app_resolver,
         "The first of the loopback addresses (to the end of its /16) where aspisd answers "
         "each app's DNS, one address per app (port 53)")
      ->capture_default_str();
  std::uint64_t app_memory_mib = daemon.app_memory_bytes >> 20;
  run->add_option("--app-memory-mib", app_memory_mib, "MiB of memory (and swap) each app may use")
      ->check(CLI::Range(std::uint64_t{4}, std::uint64_t{1} << 20))
      ->capture_default_str();
  run->add_option("--app-max-processes", daemon.app_max_processes,
                  "Processes and threads each app may have")
      ->check(CLI::Range(2U, 1U << 16))
      ->capture_default_str();
  run->add_option("--app-first-uid", daemon.app_first_uid,
                  "Apps run as this uid (and gid) and the ones after it, used by nothing else")
      ->check(CLI::Range(1000U, 0x7fffffffU))
      ->capture_default_str();

  sim::SupervisorConfig board_config;
  std::string board_slots, board_boot_id;
  auto* simulate = app.add_subcommand(
      "simulate",
      "Run the simulated board: boot a slot, run its aspisd (the `run` options follow `--`), and "
      "boot again when it asks for a reboot");
  simulate->add_option("--slots", board_slots, "The slot directories a and b")->required();
  simulate->add_option("--boot-id-file", board_boot_id, "Written with a new ID at each boot")
      ->required();
  simulate->add_option("run-options", board_config.run_args,
                       "The options of `aspisd run` for the slot's aspisd, after --");

  std::string flash_package, flash_keys;
  auto* flash = app.add_subcommand(
      "flash",
      "Write an OS package into slot A of a board, as its factory does (verified with "
      "the OS publisher keys; the board definition's name must be among its target boards)");
  auto* flash_slots =
      flash->add_option("--slots", board_slots, "The simulator's slot directories a and b");
  std::string flash_partition;
  auto* flash_partition_option = flash->add_option(
      "--partition", flash_partition,
      "Instead, OS partition A of a board with u-boot or grub (the package's image is written "
      "there, its header in --state)");
  flash_slots->excludes(flash_partition_option);
  flash->add_option("--state", daemon_state, "With --partition: aspisd's state directory")
      ->capture_default_str();
  flash->add_option("--image", flash_package, "The OS package (.aspkg)")->required();
  flash->add_option("--os-publisher-keys", flash_keys, "PEM public keys of the OS publishers")
      ->required();
  flash->add_option("--board", board, "The board definition file")->required();

  auto* measure = app.add_subcommand(
      "measure",
      "Print the digests this aspisd would measure at launch (NAME=SHA256 lines, as `aspis "
      "os-release add --component` takes them)");
  measure->add_option("--os-image", os_image, "The OS slot image")->required();
  measure->add_option("--board", board, "The board definition file")->required();
  measure->add_option("--trust-bundle", trust_bundle, "The trust bundle")->required();
  measure->add_option("--output", output)->check(CLI::IsMember({"table", "json"}));

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }

  if (flash->parsed()) {
    if (board_slots.empty() == flash_partition.empty()) {
      err << "aspisd flash: give --slots or --partition\n";
      return 2;
    }
    return Flash({.slots = board_slots, .partition = flash_partition, .state_dir = daemon_state},
                 flash_package, flash_keys, board, out, err);
  }
  if (simulate->parsed()) {
    board_config.slots = board_slots;
    board_config.boot_id_file = board_boot_id;
    return sim::Supervise(board_config, err);
  }
  if (measure->parsed()) {
    json::Json digests = json::Json::object();
    for (const auto& component :
         measure::LaunchComponents(os_image, daemon.aspisd_binary, board, trust_bundle)) {
      auto digest = package::MeasurePath(component.path);
      if (!digest) return Report(digest.error(), err);
      digests[component.name] = crypto::ToHex(*digest);
      if (output != "json") out << component.name << "=" << crypto::ToHex(*digest) << "\n";
    }
    if (output == "json") out << digests.dump(2) << "\n";
    return 0;
  }
  if (run->parsed()) {
    if (daemon.bootloader.empty() && (os_image.empty() || trust_bundle.empty())) {
      err << "aspisd run: give --os-image and --trust-bundle, or --bootloader and its slots\n";
      return 2;
    }
    if (daemon.bootloader == "simulator" && (slots.empty() || !trust_bundle.empty())) {
      err << "aspisd run: --bootloader simulator needs --slots (the booted slot holds the trust "
             "bundle)\n";
      return 2;
    }
    const bool partitions = daemon.bootloader == "u-boot" || daemon.bootloader == "grub";
    if (partitions &&
        (slot_a.empty() || slot_b.empty() || boot_environment.empty() || trust_bundle.empty())) {
      err << "aspisd run: --bootloader " << daemon.bootloader
          << " needs --slot-a, --slot-b, --boot-environment and --trust-bundle\n";
      return 2;
    }
    daemon.slots = slots;
    daemon.slot_a = slot_a;
    daemon.slot_b = slot_b;
    daemon.boot_environment = boot_environment;
    daemon.kernel_cmdline = kernel_cmdline;
    daemon.trial_time = std::chrono::seconds(trial_seconds);
    daemon.state_dir = daemon_state;
    daemon.trust_bundle = trust_bundle;
    daemon.os_image = os_image;
    daemon.board = board;
    daemon.admin_socket = admin_socket;
    daemon.boot_id_file = boot_id_file;
    daemon.retry_cap = std::chrono::seconds(retry_max_seconds);
    daemon.check_in_interval = std::chrono::seconds(check_in_seconds);
    daemon.staging_capacity = staging_mib << 20;
    daemon.app_memory_bytes = app_memory_mib << 20;
    daemon.retry_base = std::min<std::chrono::milliseconds>(daemon.retry_base, daemon.retry_cap);
    return RunUntilSignalled(daemon, err);
  }
  if (init->parsed()) {
    config.state_dir = state_dir;
    auto rot = rot::Initialize(config);
    if (!rot) return Report(rot.error(), err);
    return PrintIdentity(**rot, output, out, err);
  }
  auto rot = rot::Open(state_dir);
  if (!rot) return Report(rot.error(), err);
  return PrintIdentity(**rot, output, out, err);
}

}  // namespace aspis::device
