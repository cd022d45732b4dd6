#include "device/board/time_sync.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <thread>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/text.hpp"

namespace aspis::device::board {

namespace {

using json::Json;

constexpr std::string_view kChoiceFile = "choice.json";

bool ValidServer(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNtpServerName && name.front() != '-' &&
         name.front() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
         });
}

const char* SourceName(NtpSource source) {
  return source == NtpSource::kCustom      ? "custom"
         : source == NtpSource::kAutomatic ? "automatic"
                                           : "default";
}

Json ToJson(const TimeSyncChoice& choice) {
  return {{"enabled", choice.enabled},
          {"source", SourceName(choice.source)},
          {"custom", choice.custom},
          {"fallback", choice.fallback}};
}

// The choice kept in `text`; nullopt for anything TimeSync did not write.
std::optional<TimeSyncChoice> FromJson(std::string_view text) {
  const auto parsed = json::Parse(text, 4);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  const Json& doc = *parsed;
  const Json enabled = doc.value("enabled", Json());
  const Json source = doc.value("source", Json());
  const Json custom = doc.value("custom", Json());
  const Json fallback = doc.value("fallback", Json());
  if (!enabled.is_boolean() || !source.is_string() || !custom.is_array() || custom.size() > 2 ||
      !fallback.is_boolean()) {
    return std::nullopt;
  }
  TimeSyncChoice choice{.enabled = enabled.get<bool>(), .fallback = fallback.get<bool>()};
  const std::string name = source.get<std::string>();
  if (name == "custom") {
    choice.source = NtpSource::kCustom;
  } else if (name == "automatic") {
    choice.source = NtpSource::kAutomatic;
  } else if (name != "default") {
    return std::nullopt;
  }
  for (const Json& server : custom) {
    if (!server.is_string() || !ValidServer(server.get<std::string>())) return std::nullopt;
    choice.custom.push_back(server.get<std::string>());
  }
  if ((choice.source == NtpSource::kCustom) == choice.custom.empty()) return std::nullopt;
  return choice;
}

std::optional<double> Decimal(std::string_view text) {
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<NtpSync> ParseTracking(std::string_view csv) {
  // Reference ID, its address, stratum, reference time, system time offset, last offset, ...,
  // leap status.
  while (!csv.empty() && (csv.back() == '\n' || csv.back() == '\r')) csv.remove_suffix(1);
  const auto fields = text::Split(csv, ',');
  if (fields.size() < 14 || fields[0] == "00000000" || fields[13] == "Not synchronised") {
    return std::nullopt;
  }
  const auto reference_time = Decimal(fields[3]);
  const auto last_offset = Decimal(fields[5]);
  if (!reference_time || !last_offset || *reference_time <= 0 || *reference_time > 1e11 ||
      std::fabs(*last_offset) > 1e9 || fields[1].empty() || fields[1].size() > kMaxNtpServerName) {
    return std::nullopt;
  }
  // A positive offset: the clock was ahead of the server's time.
  const auto ntp = std::chrono::sys_seconds(std::chrono::seconds(std::llround(*reference_time)));
  const auto before = ntp + std::chrono::seconds(std::llround(*last_offset));
  return NtpSync{.server = std::string(fields[1]), .before = before, .ntp = ntp};
}

TimeSyncResult<std::unique_ptr<TimeSync>> TimeSync::Open(Config config) {
  std::error_code ec;
  std::filesystem::create_directories(config.dir, ec);
  if (!ec) std::filesystem::create_directories(config.socket_dir, ec);
  if (ec) return std::unexpected(EIO);
  ::chmod(config.dir.c_str(), 0700);
  // chronyd makes its command socket once it runs as its user, in a directory only it may write.
  ::chmod(config.socket_dir.c_str(), 0770);
  if (const auto account = Account(config.user)) {
    if (::chown(config.socket_dir.c_str(), account->first, account->second) != 0) {
      return std::unexpected(errno);
    }
  }
  std::unique_ptr<TimeSync> sync(new TimeSync(std::move(config)));
  sync->EndOrphan();
  const std::lock_guard lock(sync->mutex_);
  if (auto kept = file::Read(sync->config_.dir / kChoiceFile, 4096)) {
    if (auto choice = FromJson(AsString(*kept))) {
      sync->choice_ = std::move(*choice);
    } else {
      log::Warning("time sync: the kept choice is damaged; the board's servers apply");
    }
  }
  if (sync->choice_.source == NtpSource::kAutomatic) sync->network_ = sync->NetworkServers();
  if (auto applied = sync->Apply(); !applied) {
    log::Warning("time sync: chronyd does not run: {}",
                 std::generic_category().message(applied.error()));
  }
  if (sync->config_.network_servers) {
    sync->recheck_ =
        std::jthread([raw = sync.get()](const std::stop_token& stop) { raw->Recheck(stop); });
  }
  return sync;
}

TimeSyncChoice TimeSync::Choice() {
  const std::lock_guard lock(mutex_);
  return choice_;
}

TimeSyncResult<void> TimeSync::SetEnabled(bool enabled) {
  const std::lock_guard lock(mutex_);
  TimeSyncChoice choice = choice_;
  choice.enabled = enabled;
  return Keep(std::move(choice));
}

TimeSyncResult<void> TimeSync::UseDefault() {
  const std::lock_guard lock(mutex_);
  TimeSyncChoice choice = choice_;
  choice.source = NtpSource::kDefault;
  choice.custom.clear();
  return Keep(std::move(choice));
}

TimeSyncResult<void> TimeSync::UseCustom(std::vector<std::string> servers, bool fallback) {
  if (servers.empty() || servers.size() > 2 ||
      !std::all_of(servers.begin(), servers.end(), [](const auto& s) { return ValidServer(s); })) {
    return std::unexpected(EINVAL);
  }
  const std::lock_guard lock(mutex_);
  TimeSyncChoice choice = choice_;
  choice.source = NtpSource::kCustom;
  choice.custom = std::move(servers);
  choice.fallback = fallback;
  return Keep(std::move(choice));
}

TimeSyncResult<void> TimeSync::UseAutomatic(bool fallback) {
  const std::lock_guard lock(mutex_);
  TimeSyncChoice choice = choice_;
  choice.source = NtpSource::kAutomatic;
  choice.custom.clear();
  choice.fallback = fallback;
  return Keep(std::move(choice));
}

TimeSyncResult<void> TimeSync::Keep(TimeSyncChoice choice) {
  if (choice == choice_ && (chronyd_ != nullptr || !choice_.enabled)) return {};
  const std::string text = json::Dump(ToJson(choice));
  if (auto kept = file::WriteDurably(config_.dir / kChoiceFile, AsBytes(text), 0600); !kept) {
    log::Warning("time sync: {}", kept.error().message());
    return std::unexpected(file::ErrnoOf(kept.error()));
  }
  choice_ = std::move(choice);
  if (choice_.source == NtpSource::kAutomatic) network_ = NetworkServers();
  return Apply();
}

std::vector<std::string> TimeSync::NetworkServers() const {
  // Sorted: the network naming its servers in another order changes nothing.
  std::vector<std::string> servers =
      config_.network_servers ? config_.network_servers() : std::vector<std::string>{};
  std::sort(servers.begin(), servers.end());
  return servers;
}

void TimeSync::Recheck(const std::stop_token& stop) {
  std::mutex waiting;
  std::unique_lock lock(waiting);
  std::condition_variable_any wake;
  while (!wake.wait_for(lock, stop, config_.recheck, [&] { return stop.stop_requested(); })) {
    {
      const std::lock_guard held(mutex_);
      if (!choice_.enabled || choice_.source != NtpSource::kAutomatic) continue;
    }
    // Asked without the lock: the network reads its leases under its own.
    std::vector<std::string> servers = NetworkServers();
    const std::lock_guard held(mutex_);
    if (!choice_.enabled || choice_.source != NtpSource::kAutomatic || servers == network_) {
      continue;
    }
    log::Info("time sync: the network's NTP servers changed");
    network_ = std::move(servers);
    if (auto applied = Apply(); !applied) {
      log::Warning("time sync: chronyd does not run: {}",
                   std::generic_category().message(applied.error()));
    }
  }
}

TimeSyncResult<void> TimeSync::Apply() {
  chronyd_.reset();
  std::vector<std::string> servers;
  if (choice_.source == NtpSource::kCustom) servers = choice_.custom;
  if (choice_.source == NtpSource::kAutomatic) servers = network_;
  if (choice_.source == NtpSource::kDefault || choice_.fallback) {
    servers.insert(servers.end(), config_.default_servers.begin(), config_.default_servers.end());
  }
  if (!choice_.enabled || servers.empty()) return {};
  std::string text;
  for (const auto& server : servers) {
    text += "server " + server + " iburst port " + std::to_string(config_.port);
    if (config_.poll) {
      text +=
          " minpoll " + std::to_string(*config_.poll) + " maxpoll " + std::to_string(*config_.poll);
    }
    text += "\n";
  }
  // Steps the clock when it is more than a second off at the first updates, then slews it; serves
  // no one, and answers commands only on a socket in its own directory.
  const std::filesystem::path& run = config_.socket_dir;
  text += "makestep 1 3\nport 0\ncmdport 0\nbindcmdaddress " + (run / "chronyd.sock").string() +
          "\npidfile " + (run / "chronyd.pid").string() + "\nuser " + config_.user + "\n";
  const std::filesystem::path conf = config_.dir / "chrony.conf";
  if (auto written = file::WriteDurably(conf, AsBytes(text), 0644); !written) {
    return std::unexpected(file::ErrnoOf(written.error()));
  }
  auto started = NetworkDaemon::Start(Argv(), -1, config_.stop_grace);
  if (!started) return std::unexpected(started.error());
  chronyd_ = std::move(*started);
  asked_.reset();
  if (!chronyd_->Record(config_.dir / "chronyd.pid")) {
    log::Warning("time sync: chronyd's pid is not recorded");
  }
  return {};
}

std::vector<std::string> TimeSync::Argv() const {
  std::vector<std::string> argv = {config_.chronyd.string(), "-d"};
  if (!config_.set_clock) argv.emplace_back("-x");
  argv.insert(argv.end(), {"-f", (config_.dir / "chrony.conf").string()});
  return argv;
}

void TimeSync::EndOrphan() {
  NetworkDaemon::EndLeftBehind(config_.dir / "chronyd.pid", Argv(), config_.stop_grace);
}

TimeSyncResult<NtpSync> TimeSync::LastSync() {
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock(mutex_);
    if (chronyd_ == nullptr) return std::unexpected(ENOENT);
    if (asked_ && now - asked_->first < std::chrono::seconds(1)) return asked_->second;
  }
  // As chronyd's user: chronyc makes its own socket in chronyd's directory, which that user owns.
  // Asked without the lock: chronyc may wait for a chronyd that is starting.
  const auto tracking = OutputAs({config_.chronyc.string(), "-h",
                                  (config_.socket_dir / "chronyd.sock").string(), "-c", "tracking"},
                                 config_.user);
  auto sync = tracking ? ParseTracking(*tracking) : std::nullopt;
  TimeSyncResult<NtpSync> answer =
      sync ? TimeSyncResult<NtpSync>(std::move(*sync)) : std::unexpected(ENOENT);
  const std::lock_guard lock(mutex_);
  if (chronyd_ == nullptr) return std::unexpected(ENOENT);  // disabled meanwhile
  asked_.emplace(now, answer);
  return answer;
}

}  // namespace aspis::device::board
