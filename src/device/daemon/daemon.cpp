#include "device/daemon/daemon.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "crypto/sha256.hpp"
#include "crypto/tpm_key.hpp"
#include "device/apps/app_manager.hpp"
#include "device/board/linux_board.hpp"
#include "device/board/peripheral_server.hpp"
#include "device/board/sim_board.hpp"
#include "device/daemon/admin_socket.hpp"
#include "device/daemon/board_commands.hpp"
#include "device/daemon/certificate_commands.hpp"
#include "device/daemon/credentials.hpp"
#include "device/daemon/device.hpp"
#include "device/daemon/service_link.hpp"
#include "device/measure/measured_launch.hpp"
#include "device/state/state_store.hpp"
#include "device/update/app_agent.hpp"
#include "device/update/app_health.hpp"
#include "device/update/boot/platform/environment_bootloaders.hpp"
#include "device/update/boot/simulated_bootloader.hpp"
#include "device/update/os_agent.hpp"
#include "device/update/publisher_trust.hpp"
#include "device/update/slot_writer.hpp"
#include "device/update/staging.hpp"
#include "package/measure.hpp"
#include "wire/https_client.hpp"

namespace aspis::device {

namespace {

using json::Json;

// On the TPM backend the root of trust and the tpm2-openssl provider (the runtime key) each keep a
// connection to the TPM, so the TCTI must go through a resource manager that shares it.
Expected<void> RequireSharedTcti(std::string_view tcti) {
  const bool broker = tcti == "tabrmd" || tcti.starts_with("tabrmd:");
  const bool kernel_manager = tcti.starts_with("device:") && tcti.find("tpmrm") != tcti.npos;
  if (broker || kernel_manager) return {};
  return Fail(CoreErrc::kInvalidArgument,
              "TCTI \"" + std::string(tcti) +
                  "\" serves one connection, but the root of trust and the TPM-held runtime key "
                  "each need one: use a resource manager (tabrmd:... or device:/dev/tpmrm0)");
}

// The bootloader `config` names, with its state where that bootloader keeps it.
Expected<std::unique_ptr<update::Bootloader>> OpenBootloader(const DaemonConfig& config,
                                                             file::FileSystem& files) {
  if (config.bootloader == "simulator") {
    auto opened = update::SimulatedBootloader::Open(files, config.slots);
    if (!opened) return std::unexpected(opened.error());
    return std::make_unique<update::SimulatedBootloader>(std::move(*opened));
  }
  if (config.slot_a.empty() || config.slot_b.empty() || config.boot_environment.empty()) {
    return Fail(CoreErrc::kInvalidArgument,
                config.bootloader + " needs both OS partitions and the boot environment");
  }
  if (auto ok = file::EnsureDirectory(config.state_dir / "slots", 0700); !ok) {
    return std::unexpected(ok.error());
  }
  if (config.bootloader == "u-boot") {
    auto opened = update::UBootBootloader::Open(config.boot_environment, config.kernel_cmdline);
    if (!opened) return std::unexpected(opened.error());
    return std::unique_ptr<update::Bootloader>(std::move(*opened));
  }
  if (config.bootloader == "grub") {
    auto opened = update::GrubBootloader::Open(config.boot_environment, config.kernel_cmdline);
    if (!opened) return std::unexpected(opened.error());
    return std::unique_ptr<update::Bootloader>(std::move(*opened));
  }
  return Fail(CoreErrc::kInvalidArgument,
              "unknown bootloader \"" + config.bootloader + "\" (simulator, u-boot, grub)");
}

// A root file system mounted read-write changes as it runs (an ext4 superblock at mount), so it
// would no longer measure as the image its header signs: a partition board mounts it read-only.
Expected<void> RequireNotMountedReadWrite(const std::filesystem::path& partition) {
  struct stat st {};
  if (::stat(partition.c_str(), &st) != 0) {
    return Fail(CoreErrc::kNotFound, "cannot inspect the OS partition " + partition.string());
  }
  if (!S_ISBLK(st.st_mode)) return {};  // an image file (tests) is mounted by nothing
  auto mounts = file::Read("/proc/self/mountinfo", std::size_t{4} << 20);
  if (!mounts) return std::unexpected(std::move(mounts.error()).WithContext("mount table"));
  if (update::MountedReadWrite(AsString(*mounts), major(st.st_rdev), minor(st.st_rdev))) {
    return Fail(CoreErrc::kInvalidArgument,
                "the OS partition " + partition.string() +
                    " is mounted read-write: mounted so, it changes and no longer measures as its "
                    "signed image (mount the root read-only, and keep it so in /etc/fstab)");
  }
  return {};
}

// The size of the image the partition booted from `header` holds, as its verified header signs.
Expected<std::uint64_t> ImageLength(const std::filesystem::path& header,
                                    const crypto::dsse::TrustedKeys& os_keys) {
  auto source = package::FileSource::Open(header);
  if (!source) {
    return std::unexpected(
        std::move(source.error())
            .WithContext("its OS header (written by aspisd flash or an update)"));
  }
  auto reader = package::Reader::Open(*source, {.os = &os_keys});
  if (!reader) return std::unexpected(reader.error());
  if (reader->manifest().payload.format != package::PayloadFormat::kImage) {
    return Fail(CoreErrc::kInvalidArgument, "its OS header is not of a partition image");
  }
  return reader->manifest().payload.unpacked_size;
}

// The ID of this boot, from `path`.
Expected<std::string> ReadBootId(const std::filesystem::path& path) {
  auto text = file::Read(path, 4096);
  if (!text) return std::unexpected(std::move(text.error()).WithContext("boot ID"));
  std::string id(AsString(*text));
  id.erase(id.find_last_not_of(" \n") + 1);
  if (id.empty()) return Fail(CoreErrc::kParse, path.string() + " holds no boot ID");
  return id;
}

}  // namespace

namespace {

// The app manager and the resolver its sandboxes name, when the device runs apps.
struct AppRuntime {
  std::unique_ptr<board::NetworkControl> network;  // when aspisd manages interfaces; the resolver
                                                   // asks its DNS servers
  std::unique_ptr<apps::sandbox::AppResolver> resolver;
  std::unique_ptr<apps::SystemEvents> events;
  std::unique_ptr<board::Peripherals> board;  // what drives the board's peripherals
  board::SimBoard* sim = nullptr;             // the board, when it is the virtual one
  std::unique_ptr<board::PeripheralServer> peripherals;
  std::unique_ptr<board::Wifi> wifi;             // when the board has Wi-Fi
  std::unique_ptr<board::CertStore> cert_store;  // with Wi-Fi
  std::unique_ptr<board::TimeSync> time_sync;    // when aspisd keeps the device's time
  std::unique_ptr<apps::AppManager> manager;
};

Expected<AppRuntime> StartApps(const DaemonConfig& config, const Env& env,
                               const board::BoardDefinition& board, reports::ErrorQueue& errors,
                               std::function<std::string()> tenant,
                               const apps::DeviceActions& actions) {
  AppRuntime runtime;
  if (!config.run_apps) return runtime;
  if (board.backend() == "sim") {
    auto sim = std::make_unique<board::SimBoard>(board);
    runtime.sim = sim.get();
    runtime.board = std::move(sim);
  } else {
    // A chip that cannot be opened leaves the board without GPIOs (ENODEV), not without apps.
    std::unique_ptr<board::GpioChip> chip;
    if (const auto& path = board.linux_devices().gpio_chip; !path.empty()) {
      auto opened = board::OpenGpiodChip(path);
      if (opened) {
        chip = std::move(*opened);
      } else {
        log::Warning("the board {}'s GPIOs are off: {}", board.name(), opened.error().message());
      }
    }
    runtime.board =
        std::make_unique<board::LinuxBoard>(board, std::move(chip), board::KernelBusDevices());
  }
  auto server = board::PeripheralServer::Start(board, *runtime.board);
  if (!server) return std::unexpected(server.error());
  runtime.peripherals = std::move(*server);
  auto events =
      apps::SystemEvents::Open(state::StateStore(env.fs, config.state_dir / "update"), env.clock);
  if (!events) return std::unexpected(events.error());
  runtime.events = std::move(*events);
  // Named after the state directory: two aspisd on one machine (simulated boards, tests) in one
  // control group never take each other's apps' groups.
  const auto state_digest = crypto::Sha256Of(AsBytes(config.state_dir.string()));
  if (!state_digest) return std::unexpected(state_digest.error());
  auto cgroups =
      apps::sandbox::CgroupLayout::Find("/sys/fs/cgroup", "/proc/self/cgroup",
                                        "aspis-apps-" + crypto::ToHex(*state_digest).substr(0, 12));
  if (!cgroups) return std::unexpected(cgroups.error());
  if (const auto& control = board.linux_devices().wifi; !control.empty()) {
    runtime.wifi = std::make_unique<board::Wifi>(control);
    auto store = board::CertStore::Open(config.state_dir / "certstore");
    if (!store) return std::unexpected(store.error());
    runtime.cert_store = std::move(*store);
  }
  if (const auto& managed = board.linux_devices().network; !managed.empty()) {
    auto network =
        board::NetworkControl::Open(managed, {}, {.leases_dir = config.state_dir / "dhcp"});
    if (network) {
      runtime.network = std::move(*network);
    } else {
      log::Warning("the board's network is not managed: netlink: {}",
                   std::generic_category().message(network.error()));
    }
  }
  if (const auto& servers = board.linux_devices().time_servers; !servers.empty()) {
    std::function<std::vector<std::string>()> leased;
    if (runtime.network) {
      leased = [network = runtime.network.get()] { return board::AsText(network->NtpServers()); };
    }
    auto sync = board::TimeSync::Open(
        {.default_servers = servers,
         .dir = config.state_dir / "timesync",
         .socket_dir = "/run/aspis-chrony-" + crypto::ToHex(*state_digest).substr(0, 12),
         .network_servers = std::move(leased)});
    if (!sync) {
      return Fail(CoreErrc::kIo, "time sync: " + std::generic_category().message(sync.error()));
    }
    runtime.time_sync = std::move(*sync);
  }
  apps::sandbox::AppResolver::Servers dns;
  if (runtime.network) dns = [network = runtime.network.get()] { return network->DnsServers(); };
  auto resolver = apps::sandbox::AppResolver::Start(
      config.app_resolver, 53, apps::sandbox::AppResolver::SystemLookup, std::move(dns));
  if (!resolver) return std::unexpected(resolver.error());
  runtime.resolver = std::move(*resolver);
  std::vector<apps::CoprocessorConfig> coprocessors;
  for (const auto& [name, remoteproc] : board.linux_devices().coprocessors) {
    coprocessors.push_back({.name = name, .remoteproc = remoteproc});
  }
  auto manager = apps::AppManager::Create(
      {.apps_dir = config.state_dir / "apps",
       .run_dir = config.state_dir / "run" / "apps",
       .cgroups = *cgroups,
       .limits = {.memory_bytes = config.app_memory_bytes,
                  .max_processes = config.app_max_processes},
       .first_uid = config.app_first_uid,
       .resolver = runtime.resolver.get(),
       .storage_dir = config.state_dir / "storage",
       .tenant = std::move(tenant),
       .app_certificate = config.state_dir / "app" / "certificate.pem",
       .app_key = config.state_dir / "app" / "key.pem",
       .events = runtime.events.get(),
       .board = &board,
       .peripherals = runtime.peripherals.get(),
       .actions = &actions,
       .wifi = runtime.wifi.get(),
       .cert_store = runtime.cert_store.get(),
       .network = runtime.network.get(),
       .time_sync = runtime.time_sync.get(),
       .coprocessors = coprocessors},
      [&errors](const apps::AppReport& report) {
        log::Warning("app {} ({}): {} {}", report.name, report.component_id, report.kind,
                     report.description);
        const std::string what = report.kind == "exit" ? "AppExit" : "AppDenial";
        // An app's exits are one entry, counted, that tells how often it was restarted.
        std::string event = what + " - component: " + report.component_id +
                            "; name: " + report.name + "; " + report.description;
        std::string restarts =
            report.restarts > 0 ? "; restarts: " + std::to_string(report.restarts) : "";
        errors.Add(wire::kUnplanned, wire::kClassApplication, event + restarts,
                   UnixSeconds(std::chrono::system_clock::now()), event);
      });
  if (!manager) return std::unexpected(manager.error());
  runtime.manager = std::move(*manager);
  return runtime;
}

}  // namespace

Expected<DaemonExit> RunDaemon(const DaemonConfig& config, const Env& env,
                               const std::stop_token& stop) {
  return RunDaemon(config, env, stop, nullptr);
}

Expected<DaemonExit> RunDaemon(const DaemonConfig& given, const Env& env,
                               const std::stop_token& stop, ServiceLink* service) {
  DaemonConfig config = given;
  // With a bootloader, the slot it booted is the OS measured, and the header it was written with
  // proves which OS that is.
  std::unique_ptr<update::Bootloader> bootloader;
  update::SimulatedBootloader* simulator = nullptr;  // owned by `bootloader`
  const bool partitions = config.bootloader == "u-boot" || config.bootloader == "grub";
  std::filesystem::path booted_header;
  std::string boot_id;
  if (!config.bootloader.empty()) {
    auto id = ReadBootId(config.boot_id_file);
    if (!id) return std::unexpected(id.error());
    boot_id = *id;
    auto opened = OpenBootloader(config, env.fs);
    if (!opened) return std::unexpected(std::move(opened.error()).WithContext("bootloader"));
    bootloader = std::move(*opened);
    // The simulator boots a slot itself; a real bootloader's script did before the kernel ran.
    if (!partitions) simulator = static_cast<update::SimulatedBootloader*>(bootloader.get());
    auto slot = partitions ? bootloader->Booted() : simulator->Boot(boot_id);
    if (!slot) return std::unexpected(std::move(slot.error()).WithContext("the booted slot"));
    if (partitions) {
      config.os_image = *slot == update::Slot::kA ? config.slot_a : config.slot_b;
      if (auto ok = RequireNotMountedReadWrite(config.os_image); !ok) {
        return std::unexpected(ok.error());
      }
      booted_header = update::PartitionHeader(config.state_dir / "slots", *slot);
    } else {
      config.os_image = simulator->SlotDir(*slot);
      config.trust_bundle = config.os_image / package::kTrustBundleInRootfs;
      booted_header = update::SlotHeader(config.os_image);
    }
    log::Info("booted slot {} ({})", update::SlotName(*slot), config.os_image.string());
  }
  auto bundle = file::Read(config.trust_bundle, file::kSmallFileLimit);
  if (!bundle) return std::unexpected(std::move(bundle.error()).WithContext("trust bundle"));
  auto roots = crypto::Certificate::ChainFromPem(AsString(*bundle));
  if (!roots) {
    return std::unexpected(
        std::move(roots.error()).WithContext("trust bundle " + config.trust_bundle.string()));
  }
  auto os_publishers = crypto::PublicKey::AllFromPem(AsString(*bundle));
  if (!os_publishers) {
    return std::unexpected(
        std::move(os_publishers.error()).WithContext("OS publisher keys in the trust bundle"));
  }
  crypto::dsse::TrustedKeys os_keys;
  for (const auto& key : *os_publishers) os_keys.Add(key);
  const crypto::dsse::TrustedKeys installer_keys = os_keys;
  auto board_definition = board::BoardDefinition::Load(config.board);
  if (!board_definition) return std::unexpected(board_definition.error());
  const std::string* const board = &board_definition->name();
  auto endpoint = wire::ParseHttpsUrl(config.service_url);
  if (!endpoint) return std::unexpected(endpoint.error());

  auto rot = rot::Initialize({.backend = config.rot,
                              .state_dir = config.state_dir,
                              .tcti = config.tcti,
                              .boot_id_file = config.boot_id_file});
  if (!rot) return std::unexpected(std::move(rot.error()).WithContext("root of trust"));
  auto identity = (*rot)->GetIdentity();
  if (!identity) return std::unexpected(identity.error());
  // A partition holds the image and whatever was there after it: only the image is measured.
  std::optional<std::uint64_t> os_length;
  if (partitions) {
    auto length = ImageLength(booted_header, installer_keys);
    if (!length) return std::unexpected(std::move(length.error()).WithContext("the booted slot"));
    os_length = *length;
  }
  auto events = measure::MeasureLaunch(
      **rot,
      measure::LaunchComponents(config.os_image, config.aspisd_binary, config.board,
                                config.trust_bundle, os_length),
      config.state_dir / "measurements.json", env.fs);
  if (!events) return std::unexpected(std::move(events.error()).WithContext("measured launch"));
  // A booted slot must hold the OS its signed header names, at or above the anti-rollback
  // counter: an owner who puts an old slot back does not get it run.
  std::optional<wire::InstalledImage> booted_os;
  std::uint64_t booted_security_version = 0;
  if (bootloader) {
    auto counter = (*rot)->ReadCounter(update::kOsSecurityVersionCounter);
    if (!counter) return std::unexpected(counter.error());
    const auto os =
        std::find_if(events->begin(), events->end(),
                     [](const wire::MeasurementEvent& e) { return e.component == "os"; });
    if (os == events->end()) return Fail(CoreErrc::kInvalidArgument, "no OS measurement");
    auto verified =
        update::CheckBootedOs(booted_header, {.os = &installer_keys}, os->digest, *counter);
    if (!verified) return std::unexpected(std::move(verified.error()).WithContext("booted OS"));
    booted_os = wire::InstalledImage{verified->image_id, "", verified->version};
    booted_security_version = verified->security_version;
  }
  std::optional<crypto::TpmKeyStore> tpm_keys;
  if (config.rot == "tpm2") {
    if (auto ok = RequireSharedTcti(config.tcti); !ok) return std::unexpected(ok.error());
    auto opened = crypto::TpmKeyStore::Open(config.tcti);
    if (!opened) return std::unexpected(std::move(opened.error()).WithContext("runtime key"));
    tpm_keys = std::move(*opened);
  }
  auto credentials = Credentials::Open(config.state_dir, tpm_keys ? &*tpm_keys : nullptr, env.fs);
  if (!credentials) return std::unexpected(credentials.error());
  auto sequence = (*rot)->ReadCounter(kManifestSequenceCounter);
  if (!sequence) {
    return std::unexpected(std::move(sequence.error()).WithContext("the manifest sequence"));
  }

  auto trust = update::PublisherTrust::Open(config.state_dir / "publisher-keys.json",
                                            std::move(os_keys), config.publisher_root, env.fs);
  if (!trust) return std::unexpected(trust.error());
  auto staging = update::Staging::Open(
      config.state_dir / "staging", {.board = *board, .capacity = config.staging_capacity}, env.fs);
  if (!staging) return std::unexpected(staging.error());

  // The OS update agent resumes what a restart interrupted before anything else runs.
  bool reboot_asked = false;
  std::string update_error;  // why an agent is off, for the admin socket
  if (auto ok = file::EnsureDirectory(config.state_dir / "update", 0700); !ok) {
    return std::unexpected(ok.error());
  }
  state::StateStore update_state(env.fs, config.state_dir / "update");
  std::unique_ptr<update::SlotWriter> slot_writer;
  std::optional<update::OsAgent> os_agent;
  if (bootloader) {
    if (partitions) {
      slot_writer = std::make_unique<update::ImageSlotWriter>(
          std::array{config.slot_a, config.slot_b}, config.state_dir / "slots",
          package::Publishers{.os = &installer_keys}, *board);
    } else {
      slot_writer = std::make_unique<update::DirectorySlotWriter>(
          [simulator](update::Slot slot) { return simulator->SlotDir(slot); },
          package::Publishers{.os = &installer_keys}, *board);
    }
    auto agent = update::OsAgent::Open({.env = env,
                                        .store = update_state,
                                        .boot = *bootloader,
                                        .writer = *slot_writer,
                                        .rot = **rot,
                                        .reboot = [&reboot_asked] { reboot_asked = true; },
                                        .trial_time = config.trial_time},
                                       boot_id);
    // A damaged record stops OS updates, not the device: it still attests and reports why.
    if (agent) {
      os_agent.emplace(std::move(*agent));
      if (auto ok = os_agent->Resume(); !ok) {
        return std::unexpected(std::move(ok.error()).WithContext("resuming the OS update"));
      }
      // A committed OS that started gets its boot tries back, so ordinary reboots never use
      // them up (a new OS on trial earns it by attesting).
      if (os_agent->record().step == update::Step::kIdle) {
        if (auto ok = os_agent->Healthy(); !ok) {
          return std::unexpected(std::move(ok.error()).WithContext("marking the OS good"));
        }
      }
    } else {
      update_error = "OS updates are off: " + agent.error().message();
      log::Error("{}", update_error);
    }
    if (reboot_asked) return DaemonExit::kReboot;
  }
  auto errors = reports::ErrorQueue::Open(state::StateStore(env.fs, config.state_dir / "update"));
  if (!errors) return std::unexpected(std::move(errors.error()).WithContext("error reports"));
  Device* running = nullptr;  // set once the Device exists; apps ask it for the tenant
  std::mutex running_mutex;
  // What apps granted PowerControls and SystemTime may ask of the device, once it runs.
  std::atomic<std::int64_t> power_down_seconds{0};
  const auto ask_reboot = [&running, &running_mutex] {
    const std::lock_guard lock(running_mutex);
    if (running != nullptr) running->RequestReboot();
  };
  const apps::DeviceActions actions{
      .reboot = ask_reboot,
      .power_down =
          [&power_down_seconds, ask_reboot](std::chrono::seconds seconds) {
            power_down_seconds = seconds.count();
            ask_reboot();
          },
      .save_time = [&board_definition]() -> Expected<void> {
        // The virtual board's clock is the host's.
        if (board_definition->backend() == "sim") return {};
        return board::SaveSystemTimeToRtc("/dev/rtc0");
      }};
  auto app_runtime = StartApps(
      config, env, *board_definition, **errors,
      [&running, &running_mutex] {
        const std::lock_guard lock(running_mutex);
        return running != nullptr ? running->Tenant() : std::string();
      },
      actions);
  if (!app_runtime) {
    return std::unexpected(std::move(app_runtime.error()).WithContext("running apps"));
  }
  apps::AppManager* const manager = app_runtime->manager.get();
  // Apps verify against the tenant's publishers, which the device holds once it runs.
  const update::PublisherTrust* publishers = nullptr;
  auto app_agent =
      update::AppAgent::Open({.store = update_state,
                              .rot = rot->get(),
                              .apps_dir = config.state_dir / "apps",
                              .publishers = [&publishers] { return publishers->Publishers(); },
                              .health =
                                  [&board_definition](const std::filesystem::path& version) {
                                    if (auto ok = update::CheckAppRunsHere(version); !ok) return ok;
                                    return update::CheckAppFitsBoard(*board_definition, version);
                                  },
                              .stop =
                                  [manager](const std::string& component) {
                                    if (manager != nullptr) manager->Stop(component, false);
                                  },
                              .settled =
                                  [manager](const std::string& component) {
                                    if (manager == nullptr) return;
                                    if (auto ok = manager->Start(component); !ok) {
                                      log::Warning("app {}: {}", component, ok.error().message());
                                    }
                                  },
                              .removed =
                                  [manager](const std::string& component) {
                                    if (manager != nullptr) manager->Remove(component);
                                  }});
  if (!app_agent) {
    update_error = "app updates are off: " + app_agent.error().message();
    log::Error("{}", update_error);
  }

  std::optional<HttpsServiceLink> https;
  if (service == nullptr) {
    auto made = HttpsServiceLink::Make(*endpoint, *roots);
    if (!made) return std::unexpected(made.error());
    https.emplace(std::move(*made));
    service = &*https;
  }
  Device device({.config = config,
                 .env = env,
                 .service = *service,
                 .rot = std::move(*rot),
                 .events = std::move(*events),
                 .credentials = std::move(*credentials),
                 .roots = std::move(*roots),
                 .device_id = identity->device_id,
                 .manifest_sequence = *sequence,
                 .trust = std::move(*trust),
                 .staging = std::move(*staging),
                 .os = os_agent ? &*os_agent : nullptr,
                 .apps = app_agent ? &*app_agent : nullptr,
                 .app_manager = manager,
                 .system_events = app_runtime->events.get(),
                 .errors = errors->get(),
                 .reboot_asked = &reboot_asked,
                 .update_error = update_error,
                 .booted_os = booted_os,
                 .booted_security_version = booted_security_version});
  publishers = &device.trust();
  // An app that allows the update it deferred has the device go on with it.
  struct WakeOnResume {
    apps::SystemEvents* events;
    ~WakeOnResume() {
      if (events != nullptr) events->OnResume({});
    }
  } wake{app_runtime->events.get()};
  if (wake.events != nullptr) wake.events->OnResume([&device] { device.ReconsiderHeldUpdate(); });
  {
    const std::lock_guard lock(running_mutex);
    running = &device;
  }
  if (app_agent) {
    if (auto ok = app_agent->Resume(); !ok) {
      log::Error("resuming app updates failed: {}", ok.error().message());
    }
  }
  if (manager != nullptr) manager->StartAll();
  board::SimBoard* const sim = app_runtime->sim;
  board::CertStore* const cert_store = app_runtime->cert_store.get();
  auto admin =
      AdminSocket::Start(config.admin_socket, [&device, sim, cert_store](const json::Json& r) {
        if (IsCertificateCommand(r)) return HandleCertificateCommand(cert_store, r);
        return IsBoardCommand(r) ? HandleBoardCommand(sim, r) : device.Handle(r);
      });
  if (!admin) return std::unexpected(std::move(admin.error()).WithContext("admin socket"));
  log::Info("aspisd running as device {}", identity->device_id);
  device.Run(stop);
  {
    const std::lock_guard lock(running_mutex);
    running = nullptr;
  }
  if (device.reboot_requested() && power_down_seconds.load() > 0) {
    // Powered down: the admin socket closes and the apps stop (in that order: its commands reach
    // the manager), and the board boots again once the time is up.
    admin->reset();
    app_runtime->manager.reset();
    log::Info("aspisd powered down for {} s, as an app asked", power_down_seconds.load());
    std::mutex mutex;
    std::unique_lock lock(mutex);
    std::condition_variable_any().wait_for(
        lock, stop, std::chrono::seconds(power_down_seconds.load()), [] { return false; });
    if (stop.stop_requested()) return DaemonExit::kStopped;
  }
  if (reboot_asked || device.reboot_requested()) {
    log::Info("aspisd stopping for a reboot");
    return DaemonExit::kReboot;
  }
  log::Info("aspisd stopping");
  return DaemonExit::kStopped;
}

}  // namespace aspis::device
