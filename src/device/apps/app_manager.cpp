#include "device/apps/app_manager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <optional>
#include <system_error>
#include <utility>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "device/apps/errors.hpp"

namespace aspis::device::apps {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// Serves one running app's broker on a thread of its own: a call that waits (on wpa_supplicant, a
// DHCP client starting, chronyd stopping) holds up neither the other apps nor the manager.
class BrokerThread {
 public:
  // Throws std::system_error when no thread can be started.
  explicit BrokerThread(Broker broker)
      : broker_(std::move(broker)),
        stop_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        done_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        thread_([this] { Serve(); }) {}
  ~BrokerThread() {
    Stop();
    thread_.join();
  }
  BrokerThread(const BrokerThread&) = delete;
  BrokerThread& operator=(const BrokerThread&) = delete;

  // Asks the thread to end once the call in flight, if any, is answered; returns at once.
  void Stop() {
    const std::uint64_t one = 1;
    (void)::write(stop_.get(), &one, sizeof one);
  }
  // Readable once the thread ended.
  int done_descriptor() const { return done_.get(); }

 private:
  void Serve() {
    for (;;) {
      std::array<pollfd, 2> fds{{{broker_.descriptor(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
      // The app gone, what it left queued goes unanswered.
      if (fds[1].revents != 0 || (fds[0].revents & (POLLHUP | POLLERR)) != 0) break;
      if (fds[0].revents != 0 && !broker_.Serve()) break;
    }
    const std::uint64_t one = 1;
    (void)::write(done_.get(), &one, sizeof one);
  }

  Broker broker_;
  Fd stop_;
  Fd done_;
  std::thread thread_;  // last: it uses the members above
};

}  // namespace

struct AppManager::App {
  std::string component_id;
  std::string name;
  uid_t uid = 0;
  bool wanted = true;        // false once stopped, until started again
  bool by_operator = false;  // the stop was an operator's
  bool terminating = false;  // SIGTERM sent, SIGKILL at `kill_at`
  Clock::time_point kill_at;
  Clock::time_point started;
  std::optional<Clock::time_point> restart_at;
  int failures_in_row = 0;
  int restarts = 0;
  std::string state = "stopped";
  std::string last_exit;
  std::optional<sandbox::AppCgroup> cgroup;
  std::unique_ptr<sandbox::AppRun> run;  // its sandbox, or the coprocessor it runs on
  BrokerGrants grants;
  std::unique_ptr<BrokerThread> broker;  // serving the running app
  // How the app ended, while its broker's call in flight is answered: then it is Ended.
  std::optional<sandbox::AppExit> ending;
  std::shared_ptr<const Fd> intercore;  // a running real-time app's end of its channel
  int cpu = -1;                         // the real-time CPU it holds
  int coprocessor = -1;                 // the coprocessor it holds (its index in the parts)
  Fd output{-1};                        // the read end of the app's output pipe
  std::string partial;                  // output after the last newline
  Clock::time_point log_window;
  int logged = 0;
  int unlogged = 0;
};

namespace {

// The installed app's manifest and the version directory `current` names now.
struct Installed {
  fs::path version;
  package::AppManifest manifest;
};

Expected<Installed> ReadInstalled(const fs::path& apps_dir, const std::string& component) {
  std::error_code ec;
  const fs::path version = fs::canonical(apps_dir / component / "current", ec);
  if (ec) return Fail(AppsErrc::kUnknownApp, "app " + component + " has no installed version");
  auto manifest = package::ReadAppManifest(version);
  if (!manifest) return std::unexpected(manifest.error());
  return Installed{version, std::move(*manifest)};
}

// The CPUs this process may run on, in order.
std::vector<int> OwnCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace

Expected<std::unique_ptr<AppManager>> AppManager::Create(AppManagerParts parts, Reporter report) {
  auto filter = sandbox::BuildAppFilter();
  if (!filter) return std::unexpected(filter.error());
  auto real_time_filter = sandbox::BuildAppFilter(true);
  if (!real_time_filter) return std::unexpected(real_time_filter.error());
  const std::vector<int> own = OwnCpus();
  if (!parts.real_time_cpus) {
    parts.real_time_cpus = own.size() >= 2 ? std::vector<int>{own.back()} : std::vector<int>{};
  }
  std::vector<int> other_cpus;
  for (const int cpu : own) {
    if (std::find(parts.real_time_cpus->begin(), parts.real_time_cpus->end(), cpu) ==
        parts.real_time_cpus->end()) {
      other_cpus.push_back(cpu);
    }
  }
  auto connections = AppConnections::Start([apps_dir = parts.apps_dir](const std::string& component)
                                               -> std::optional<std::vector<std::string>> {
    auto installed = ReadInstalled(apps_dir, component);
    if (!installed || !installed->manifest.real_time_capable) return std::nullopt;
    return installed->manifest.capabilities.allowed_application_connections;
  });
  if (!connections) return std::unexpected(connections.error());
  // A core may still run what an earlier aspisd started there.
  for (const auto& core : parts.coprocessors) ResetCoprocessor(core);
  std::error_code ec;
  fs::remove_all(parts.run_dir, ec);
  fs::create_directories(parts.run_dir, ec);
  if (ec) return Fail(AppsErrc::kSandbox, "cannot make " + parts.run_dir.string());
  return std::unique_ptr<AppManager>(
      new AppManager(std::move(parts), std::move(report), std::move(*filter),
                     std::move(*real_time_filter), std::move(*connections), std::move(other_cpus)));
}

AppManager::AppManager(AppManagerParts parts, Reporter report, sandbox::SeccompProgram filter,
                       sandbox::SeccompProgram real_time_filter,
                       std::unique_ptr<AppConnections> connections, std::vector<int> other_cpus)
    : parts_(std::move(parts)),
      report_(std::move(report)),
      filter_(std::move(filter)),
      real_time_filter_(std::move(real_time_filter)),
      connections_(std::move(connections)),
      other_cpus_(std::move(other_cpus)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      next_uid_(parts_.first_uid) {
  supervisor_ = std::thread([this] { Supervise(); });
}

AppManager::~AppManager() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, app] : apps_) {
      app->wanted = false;
      app->restart_at.reset();
      if (app->run && !app->terminating) {
        app->run->Signal(SIGTERM);
        app->terminating = true;
        app->kill_at = Clock::now() + parts_.stop_grace;
      }
    }
  }
  Wake();
  supervisor_.join();
}

void AppManager::Wake() {
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
}

void AppManager::StartAll() {
  std::vector<std::pair<std::string, std::string>> order;  // name, component
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parts_.apps_dir, ec)) {
    const std::string component = entry.path().filename().string();
    if (component.starts_with('.')) continue;
    auto installed = ReadInstalled(parts_.apps_dir, component);
    order.emplace_back(installed ? installed->manifest.name : "", component);
  }
  std::sort(order.begin(), order.end());
  for (const auto& [name, component] : order) {
    if (auto ok = Start(component); !ok)
      log::Warning("app {}: {}", component, ok.error().message());
  }
}

Expected<void> AppManager::Start(const std::string& component) {
  std::error_code ec;
  if (!fs::exists(parts_.apps_dir / component / "current", ec)) {
    return Fail(AppsErrc::kUnknownApp, "app " + component + " has no installed version");
  }
  std::lock_guard lock(mutex_);
  auto& app = apps_[component];
  if (!app) {
    app = std::make_unique<App>();
    app->component_id = component;
    app->uid = next_uid_++;
  }
  app->wanted = true;
  app->by_operator = false;
  app->failures_in_row = 0;
  app->restart_at.reset();
  if (!app->run) Launch(*app);
  Wake();
  return {};
}

void AppManager::Stop(const std::string& component, bool by_operator) {
  std::unique_lock lock(mutex_);
  const auto found = apps_.find(component);
  if (found == apps_.end()) return;
  App& app = *found->second;
  app.wanted = false;
  app.by_operator = by_operator;
  app.restart_at.reset();
  if (!app.run) {
    app.state = "stopped";
    return;
  }
  if (!app.terminating) {
    app.run->Signal(SIGTERM);
    app.terminating = true;
    app.kill_at = Clock::now() + parts_.stop_grace;
  }
  Wake();
  changed_.wait(lock, [&] { return !app.run; });
}

void AppManager::Launch(App& app) {
  auto installed = ReadInstalled(parts_.apps_dir, app.component_id);
  const auto failed = [&](const std::string& why) {
    connections_->Forget(app.component_id);
    app.intercore.reset();
    app.cpu = -1;
    app.coprocessor = -1;
    app.state = "failed";
    app.last_exit = "could not start: " + why;
    if (report_) report_({app.component_id, app.name, "exit", app.last_exit});
    ScheduleRestart(app, Clock::now());
  };
  if (!installed) return failed(installed.error().message());
  const package::AppManifest& m = installed->manifest;
  app.name = m.name;
  if (m.real_time_capable && !parts_.coprocessors.empty()) {
    if (auto why = LaunchOnCoprocessor(app, installed->version, m)) return failed(*why);
    return;
  }
  if (m.real_time_capable) {
    for (const int cpu : *parts_.real_time_cpus) {
      if (std::none_of(apps_.begin(), apps_.end(),
                       [&](const auto& other) { return other.second->cpu == cpu; })) {
        app.cpu = cpu;
        break;
      }
    }
    if (app.cpu < 0) return failed("no CPU kept for real-time apps is free");
    auto channel =
        connections_->Attach(app.component_id, m.capabilities.allowed_application_connections);
    if (!channel) return failed(channel.error().message());
    app.intercore = std::make_shared<const Fd>(std::move(*channel));
  }
  auto cgroup = sandbox::AppCgroup::Create(parts_.cgroups, app.component_id, parts_.limits);
  if (!cgroup) return failed(cgroup.error().message());
  // Every kind of denial an app causes (calls, connections, lookups, broker calls) reaches the
  // log and the error report at most 100 times a second.
  const auto deny = sandbox::RateLimited(
      [report = report_, id = app.component_id, name = app.name](const sandbox::Denial& d) {
        if (report) report({id, name, "denial", d.what + ": " + d.detail});
      },
      kReportsPerSecond);
  app.grants = {.component_id = app.component_id,
                .capabilities = m.capabilities,
                .storage_file = parts_.storage_dir / app.component_id / "mutable-storage",
                .tenant = parts_.tenant,
                .app_certificate = parts_.app_certificate,
                .app_key = parts_.app_key,
                .events = parts_.events,
                .board = parts_.board,
                .peripheral_server = parts_.peripherals,
                .actions = parts_.actions,
                .connections = connections_.get(),
                .intercore = app.intercore,
                .wifi = parts_.wifi,
                .cert_store = parts_.cert_store,
                .network = parts_.network,
                .time_sync = parts_.time_sync};
  auto broker = Broker::Create(app.grants, deny);
  if (!broker) return failed(broker.error().message());
  sandbox::SandboxSpec spec;
  spec.broker = broker->app_end();
  if (m.capabilities.mutable_storage_kb) {
    spec.max_file_bytes = std::uint64_t{*m.capabilities.mutable_storage_kb} * 1024;
  }
  spec.name = m.name;
  spec.component_id = m.component_id;
  spec.image = installed->version;
  spec.entry_point = m.entry_point;
  spec.args = m.cmd_args;
  spec.env = {"ASPIS_COMPONENT_ID=" + m.component_id};
  spec.run_dir = parts_.run_dir / app.component_id;
  spec.uid = app.uid;
  spec.gid = app.uid;
  spec.tmp_bytes = parts_.tmp_bytes;
  Fd write_end(-1);
  if (parts_.output >= 0) {
    spec.output = parts_.output;
  } else {
    std::array<int, 2> pipe{};
    if (::pipe2(pipe.data(), O_CLOEXEC | O_NONBLOCK) != 0) return failed("cannot make a pipe");
    app.output = Fd(pipe[0]);
    write_end = Fd(pipe[1]);
    spec.output = write_end.get();
  }
  spec.network = std::make_shared<sandbox::AppNetwork>(m.capabilities, deny);
  spec.resolver = parts_.resolver;
  if (m.real_time_capable) {
    spec.cpus = {app.cpu};
    spec.fifo_priority = parts_.real_time_priority;
  } else {
    spec.cpus = other_cpus_;
  }
  auto started = sandbox::Sandbox::Start(spec, m.real_time_capable ? real_time_filter_ : filter_,
                                         *cgroup, deny);
  if (!started) return failed(started.error().message());
  broker->CloseAppEnd();
  try {
    app.broker = std::make_unique<BrokerThread>(std::move(*broker));
  } catch (const std::system_error& e) {
    (*started)->Signal(SIGKILL);
    (void)(*started)->Wait(parts_.stop_grace);
    return failed(std::string("cannot serve its broker: ") + e.what());
  }
  app.cgroup = std::move(*cgroup);
  app.run = std::move(*started);
  app.started = Clock::now();
  app.terminating = false;
  app.state = "running";
  log::Info("app {} ({}) started, pid {}", app.name, app.component_id, app.run->pid());
}

std::optional<std::string> AppManager::LaunchOnCoprocessor(App& app, const fs::path& version,
                                                           const package::AppManifest& m) {
  for (int core = 0; core < static_cast<int>(parts_.coprocessors.size()); ++core) {
    if (std::none_of(apps_.begin(), apps_.end(),
                     [&](const auto& other) { return other.second->coprocessor == core; })) {
      app.coprocessor = core;
      break;
    }
  }
  if (app.coprocessor < 0) return "no coprocessor is free";
  // The entry point is a path inside the verified image; it may not lead out of it.
  std::error_code ec;
  const fs::path image = fs::canonical(version / fs::path(m.entry_point).relative_path(), ec);
  if (ec || std::mismatch(version.begin(), version.end(), image.begin(), image.end()).first !=
                version.end()) {
    return "its entry point is not a file in its image";
  }
  // Its endpoint is relayed when its firmware announces one (drained when it lists no app).
  const auto& allowed = m.capabilities.allowed_application_connections;
  auto started = StartOnCoprocessor(
      parts_.coprocessors[static_cast<std::size_t>(app.coprocessor)], image, app.component_id,
      !allowed.empty(),
      [connections = connections_.get(), component = app.component_id, allowed](Fd endpoint) {
        if (auto ok = connections->AttachDevice(component, allowed, std::move(endpoint)); !ok) {
          log::Warning("app {}: {}", component, ok.error().message());
        }
      });
  if (!started) return started.error().message();
  app.run = std::move(*started);
  app.started = Clock::now();
  app.terminating = false;
  app.state = "running";
  log::Info("app {} ({}) started on coprocessor {}", app.name, app.component_id,
            parts_.coprocessors[static_cast<std::size_t>(app.coprocessor)].name);
  return std::nullopt;
}

void AppManager::Drain(App& app) {
  std::array<char, 4096> buffer{};
  // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): the pipe is non-blocking
  const ssize_t got = ::read(app.output.get(), buffer.data(), buffer.size());
  if (got <= 0) {
    if (got == 0 || (errno != EAGAIN && errno != EINTR)) app.output = Fd(-1);
    return;
  }
  app.partial.append(buffer.data(), static_cast<std::size_t>(got));
  const auto now = Clock::now();
  if (now - app.log_window >= std::chrono::minutes(1)) {
    if (app.unlogged > 0) {
      log::Warning("app {}: {} lines of output not logged (over {} a minute)", app.name,
                   app.unlogged, kLogLinesPerMinute);
    }
    app.log_window = now;
    app.logged = 0;
    app.unlogged = 0;
  }
  for (std::size_t end; (end = app.partial.find('\n')) != std::string::npos ||
                        app.partial.size() >= buffer.size();) {
    const std::size_t cut = end == std::string::npos ? app.partial.size() : end;
    if (app.logged++ < kLogLinesPerMinute) {
      // The app wrote it: escaped, so it cannot forge log lines or drive a terminal.
      log::Info("app {}: {}", app.name, text::Printable(app.partial.substr(0, cut)));
    } else {
      ++app.unlogged;
    }
    app.partial.erase(0, end == std::string::npos ? cut : cut + 1);
  }
}

void AppManager::Ended(App& app, const sandbox::AppExit& exit) {
  app.broker.reset();
  if (app.output.get() >= 0) Drain(app);
  app.output = Fd(-1);
  app.partial.clear();
  app.last_exit = exit.Describe();
  if (app.cgroup) {
    const auto usage = app.cgroup->Usage();
    if (usage && usage->oom_kills > 0) app.last_exit += " (at its memory limit)";
    if (usage && usage->process_limit_hits > 0 && report_) {
      report_({app.component_id, app.name, "denial",
               "process limit: " + std::to_string(usage->process_limit_hits) +
                   " forks refused at " + std::to_string(parts_.limits.max_processes)});
    }
  }
  app.run.reset();
  app.cgroup.reset();
  connections_->Forget(app.component_id);
  app.intercore.reset();
  app.cpu = -1;
  app.coprocessor = -1;
  if (parts_.events != nullptr) parts_.events->Unregister(app.component_id);
  if (parts_.peripherals != nullptr) parts_.peripherals->Release(app.component_id);
  const bool planned = app.terminating;
  app.terminating = false;
  changed_.notify_all();
  if (planned || !app.wanted) {
    app.state = "stopped";
    return;
  }
  log::Warning("app {} ({}) {}", app.name, app.component_id, app.last_exit);
  ++app.restarts;
  if (report_) report_({app.component_id, app.name, "exit", app.last_exit, app.restarts});
  const auto now = Clock::now();
  if (now - app.started >= parts_.stable_after) app.failures_in_row = 0;
  ScheduleRestart(app, now);
  app.state = "waiting";
}

void AppManager::ScheduleRestart(App& app, Clock::time_point now) const {
  const int doublings = std::min(app.failures_in_row, 20);
  app.restart_at =
      now + std::min(parts_.restart_delay * (1 << doublings), parts_.max_restart_delay);
  ++app.failures_in_row;
}

void AppManager::Supervise() {
  std::unique_lock lock(mutex_);
  for (;;) {
    const auto now = Clock::now();
    auto next = Clock::time_point::max();
    std::vector<pollfd> fds{{wake_.get(), POLLIN, 0}};
    enum class Polled { kOutput, kExit, kBrokerDone };
    std::vector<std::pair<App*, Polled>> polled;  // what each descriptor after the first is
    bool any_running = false;
    for (auto& [id, app] : apps_) {
      if (app->run && app->terminating && now >= app->kill_at) {
        app->run->Signal(SIGKILL);
        app->kill_at = Clock::time_point::max();
      }
      if (!app->run && app->wanted && !stopping_ && app->restart_at && now >= *app->restart_at) {
        app->restart_at.reset();
        Launch(*app);
      }
      if (app->output.get() >= 0) {
        fds.push_back({app->output.get(), POLLIN, 0});
        polled.emplace_back(app.get(), Polled::kOutput);
      }
      if (app->run && app->ending) {
        any_running = true;
        fds.push_back({app->broker->done_descriptor(), POLLIN, 0});
        polled.emplace_back(app.get(), Polled::kBrokerDone);
      } else if (app->run) {
        any_running = true;
        fds.push_back({app->run->exit_descriptor(), POLLIN, 0});
        polled.emplace_back(app.get(), Polled::kExit);
        if (app->terminating) next = std::min(next, app->kill_at);
      } else if (app->restart_at && app->wanted) {
        next = std::min(next, *app->restart_at);
      }
    }
    if (stopping_ && !any_running) return;
    const int timeout =
        next == Clock::time_point::max()
            ? -1
            : static_cast<int>(std::max<std::int64_t>(
                  0, std::chrono::ceil<std::chrono::milliseconds>(next - now).count()));
    lock.unlock();
    ::poll(fds.data(), fds.size(), timeout);
    std::uint64_t drained = 0;
    // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): unlocked, and non-blocking
    (void)::read(wake_.get(), &drained, sizeof(drained));
    lock.lock();
    // Only this thread ends sandboxes and closes outputs, so those polled are still there.
    for (std::size_t i = 0; i < polled.size(); ++i) {
      const auto [app, what] = polled[i];
      if (fds[i + 1].revents == 0) continue;
      if (what == Polled::kOutput) {
        if (app->output.get() == fds[i + 1].fd) Drain(*app);
      } else if (what == Polled::kBrokerDone) {
        if (app->ending) {
          app->broker.reset();
          const sandbox::AppExit exit = *std::exchange(app->ending, std::nullopt);
          Ended(*app, exit);
        }
      } else if (app->run && !app->ending) {
        if (auto exit = app->run->Wait(std::chrono::milliseconds(0))) {
          // A call in flight is answered before what the app held (a peripheral it opened, its
          // event registration) is let go; the app stays running to the rest meanwhile.
          if (app->broker) {
            app->broker->Stop();
            app->ending = std::move(*exit);
          } else {
            Ended(*app, *exit);
          }
        }
      }
    }
  }
}

void AppManager::Remove(const std::string& component) {
  Stop(component, false);
  std::error_code ec;
  fs::remove_all(parts_.storage_dir / component, ec);
  if (ec) log::Warning("app {}: cannot delete its storage: {}", component, ec.message());
  std::lock_guard lock(mutex_);
  apps_.erase(component);
}

std::vector<AppStatus> AppManager::Status() const {
  std::vector<AppStatus> out;
  std::lock_guard lock(mutex_);
  for (const auto& [id, app] : apps_) {
    const StorageQuota quota = QuotaOf(app->grants);
    AppStatus status{app->component_id, app->name,      app->state, 0,          0, 0,
                     app->restarts,     app->last_exit, quota.used, quota.limit};
    if (app->run) status.pid = app->run->pid();
    if (app->run && app->cgroup) {
      if (const auto usage = app->cgroup->Usage()) {
        status.memory_bytes = usage->memory_bytes;
        status.memory_peak = usage->memory_peak;
      }
    }
    out.push_back(std::move(status));
  }
  return out;
}

std::optional<AppStatus> AppManager::Status(const std::string& component) const {
  for (auto& status : Status()) {
    if (status.component_id == component) return status;
  }
  return std::nullopt;
}

}  // namespace aspis::device::apps
