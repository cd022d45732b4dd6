#include "device/board/wifi.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <wpa_ctrl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "core/text.hpp"
#include "crypto/x509.hpp"

namespace aspis::device::board {

namespace {

constexpr std::size_t kMaxReply = std::size_t{64} << 10;
constexpr std::size_t kMaxEvent = std::size_t{16} << 10;
constexpr std::size_t kMaxCertSubject = 300;  // CertStore_SubjectName's, without its NUL

// The settings Duplicate copies: every one aspisd sets but the name and whether it is enabled.
constexpr std::array<std::string_view, 10> kNetworkSettings = {
    "ssid",     "scan_ssid", "proto",   "key_mgmt",    "psk",
    "identity", "eap",       "ca_cert", "client_cert", "private_key"};

bool Printable(char c) { return c >= 0x20 && c <= 0x7e; }

// Whether `value`, which wpa_supplicant saves as "value" (it writes a printable value quoted),
// reads back whole: its file reader takes a '#' outside quotes, counting each '"', as a comment.
bool SurvivesConfigFile(std::string_view value) {
  if (!std::all_of(value.begin(), value.end(), Printable)) return true;  // saved in hex
  bool quoted = true;
  for (const char c : value) {
    if (c == '"') quoted = !quoted;
    if (c == '#' && !quoted) return false;
  }
  return true;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::optional<long long> Number(std::string_view text) {
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// STATUS's key=value lines.
std::map<std::string, std::string, std::less<>> Fields(std::string_view text) {
  std::map<std::string, std::string, std::less<>> fields;
  for (const std::string_view line : text::Split(text, '\n')) {
    const std::size_t equals = line.find('=');
    if (equals != std::string_view::npos) {
      fields.emplace(std::string(line.substr(0, equals)), std::string(line.substr(equals + 1)));
    }
  }
  return fields;
}

// An SSID as wpa_supplicant prints it in tables (printf_encode): \\ \" \e \n \r \t and \xNN.
Bytes Unescaped(std::string_view text) {
  Bytes out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out.push_back(static_cast<std::uint8_t>(text[i]));
      continue;
    }
    const char c = text[++i];
    if (c == 'x' && i + 2 < text.size()) {
      const auto byte = HexDecode(text.substr(i + 1, 2));
      if (byte && byte->size() == 1) {
        out.push_back((*byte)[0]);
        i += 2;
        continue;
      }
    }
    out.push_back(static_cast<std::uint8_t>(c == 'e'   ? 0x1b
                                            : c == 'n' ? '\n'
                                            : c == 'r' ? '\r'
                                            : c == 't' ? '\t'
                                                       : c));
  }
  return out;
}

std::optional<std::array<std::uint8_t, 6>> Bssid(std::string_view text) {
  const auto parts = text::Split(text, ':');
  if (parts.size() != 6) return std::nullopt;
  std::array<std::uint8_t, 6> bssid{};
  for (std::size_t i = 0; i < 6; ++i) {
    const auto byte = HexDecode(parts[i]);
    if (!byte || byte->size() != 1) return std::nullopt;
    bssid[i] = (*byte)[0];
  }
  return bssid;
}

// The value after `key` ("id=") in an event's text, up to the next space.
std::string_view Word(std::string_view text, std::string_view key) {
  const std::size_t at = text.find(key);
  if (at == std::string_view::npos) return {};
  const std::string_view rest = text.substr(at + key.size());
  return rest.substr(0, rest.find(' '));
}

bool ValidConfigName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(),
                                      [](char c) { return Printable(c) && c != '"' && c != '\\'; });
}

WifiSecurity SecurityOfKeyManagement(std::string_view key_mgmt) {
  if (key_mgmt == "NONE") return WifiSecurity::kOpen;
  if (key_mgmt == "WPA-PSK" || key_mgmt == "WPA2-PSK") return WifiSecurity::kWpa2Psk;
  if (key_mgmt == "WPA-EAP" || key_mgmt == "WPA2/IEEE 802.1X/EAP") return WifiSecurity::kWpa2EapTls;
  return WifiSecurity::kUnknown;
}

}  // namespace

std::optional<Bytes> ParseNetworkValue(std::string_view text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    const std::string_view inner = text.substr(1, text.size() - 2);
    return Bytes(inner.begin(), inner.end());
  }
  auto decoded = HexDecode(text);
  if (!decoded) return std::nullopt;
  return std::move(*decoded);
}

WifiSecurity SecurityOfFlags(std::string_view flags) {
  const bool rsn = flags.find("[WPA2-") != std::string_view::npos ||
                   flags.find("[RSN-") != std::string_view::npos;
  if (rsn && flags.find("-EAP") != std::string_view::npos) return WifiSecurity::kWpa2EapTls;
  if (rsn && flags.find("-PSK-") != std::string_view::npos) return WifiSecurity::kWpa2Psk;
  if (flags.find("WPA") != std::string_view::npos || flags.find("WEP") != std::string_view::npos ||
      flags.find("RSN") != std::string_view::npos) {
    return WifiSecurity::kUnknown;
  }
  return WifiSecurity::kOpen;
}

std::vector<SeenWifiNetwork> ParseScanResults(std::string_view text) {
  std::vector<SeenWifiNetwork> seen;
  const auto lines = text::Split(text, '\n');
  for (std::size_t i = 1; i < lines.size(); ++i) {  // after the header
    const auto columns = text::Split(lines[i], '\t');
    if (columns.size() != 5) continue;
    const auto bssid = Bssid(columns[0]);
    const auto frequency = Number(columns[1]);
    const auto rssi = Number(columns[2]);
    Bytes ssid = Unescaped(columns[4]);
    if (!bssid || !frequency || !rssi || ssid.size() > kMaxSsid) continue;
    seen.push_back(
        {.ssid = std::move(ssid),
         .bssid = *bssid,
         .security = SecurityOfFlags(columns[3]),
         .frequency_mhz = static_cast<std::uint32_t>(std::clamp(*frequency, 0LL, 100000LL)),
         .rssi = static_cast<int>(std::clamp(*rssi, -128LL, 127LL))});
  }
  return seen;
}

void WifiFailures::OnEvent(std::string_view event, std::chrono::sys_seconds now,
                           const std::function<std::optional<int>()>& current) {
  if (event.starts_with('<') && event.find('>') != std::string_view::npos) {
    event.remove_prefix(event.find('>') + 1);  // the message's level
  }
  if (event.starts_with("CTRL-EVENT-EAP-FAILURE ")) {
    // The network being authenticated is wpa_supplicant's current one (asked before the lock:
    // the answer can take a while).
    const std::optional<int> id = current();
    const std::lock_guard lock(mutex_);
    if (id) {
      Keep(*id, certificate_.value_or(WifiDiagnostics{.error = WifiFailure::kAuthenticationFailed}),
           now);
    }
    return;
  }
  const std::lock_guard lock(mutex_);
  // A new attempt (a server may skip the identity request that starts one), or one that worked.
  if (event.starts_with("CTRL-EVENT-EAP-STARTED ") ||
      event.starts_with("CTRL-EVENT-EAP-PROPOSED-METHOD ") ||
      event.starts_with("CTRL-EVENT-EAP-SUCCESS ")) {
    certificate_.reset();
  } else if (event.starts_with("CTRL-EVENT-EAP-TLS-CERT-ERROR ") && !certificate_) {
    // reason=N depth=N subject='...' err='...': the subject is the server's to choose, quotes
    // and all, so the error text (OpenSSL's) is found from the end.
    WifiDiagnostics failure{.error = WifiFailure::kAuthenticationFailed, .when = now};
    failure.cert_depth = static_cast<int>(std::clamp(
        Number(Word(event.substr(0, event.find(" subject=")), " depth=")).value_or(0), 0LL, 100LL));
    constexpr std::string_view kSubject = " subject='";
    constexpr std::string_view kError = "' err='";
    const std::size_t subject = event.find(kSubject);
    const std::size_t error = event.rfind(kError);
    if (subject != std::string_view::npos && error != std::string_view::npos &&
        error >= subject + kSubject.size()) {
      const std::size_t from = subject + kSubject.size();
      failure.cert_subject = event.substr(from, std::min(error - from, kMaxCertSubject));
    }
    if (error != std::string_view::npos && event.size() > error + kError.size() &&
        event.ends_with('\'')) {
      const std::size_t from = error + kError.size();
      failure.cert_error =
          crypto::VerifyErrorOfText(event.substr(from, event.size() - 1 - from)).value_or(0);
    }
    certificate_ = std::move(failure);
  } else if (event.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED ")) {
    // id=N ssid="..." auth_failures=N duration=N reason=...: the SSID is printed as set, so the
    // ID is the first id= and the reason the last reason=.
    const auto id = Number(Word(event, " id="));
    const std::size_t reason_at = event.rfind(" reason=");
    const std::string_view reason =
        reason_at == std::string_view::npos ? "" : Word(event.substr(reason_at), " reason=");
    if (!id) return;
    WifiDiagnostics failure{.error = reason == "WRONG_KEY" ? WifiFailure::kWrongKey
                                                           : WifiFailure::kConnectionFailed};
    // After an EAP failure: the attempt's certificate error, until the next attempt starts.
    if (reason == "AUTH_FAILED") {
      failure = certificate_.value_or(WifiDiagnostics{.error = WifiFailure::kAuthenticationFailed});
    }
    Keep(static_cast<int>(std::clamp(*id, -1LL, 1'000'001LL)), std::move(failure), now);
  } else if (event.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND")) {
    not_found_ = now;
  } else if (event.starts_with("CTRL-EVENT-CONNECTED ")) {
    not_found_.reset();
    certificate_.reset();
  } else if (constexpr std::string_view kRemoved = "CTRL-EVENT-NETWORK-REMOVED ";
             event.starts_with(kRemoved)) {
    if (const auto id = Number(event.substr(kRemoved.size()))) {
      failures_.erase(static_cast<int>(std::clamp(*id, -1LL, 1'000'001LL)));
    }
  }
}

void WifiFailures::Record(int id, WifiDiagnostics failure) {
  const std::lock_guard lock(mutex_);
  const std::chrono::sys_seconds when = failure.when;
  Keep(id, std::move(failure), when);
}

void WifiFailures::Keep(int id, WifiDiagnostics failure, std::chrono::sys_seconds when) {
  if (id < 0) return;
  if (failures_.size() >= 4 * kMaxWifiNetworks && !failures_.contains(id)) {
    failures_.erase(failures_.begin());
  }
  failure.when = when;
  failures_[id] = std::move(failure);
}

void WifiFailures::Forget(int id) {
  const std::lock_guard lock(mutex_);
  if (id != -1) {
    failures_.erase(id);
    return;
  }
  failures_.clear();
  certificate_.reset();
  not_found_.reset();
}

std::optional<WifiDiagnostics> WifiFailures::Of(int id, bool enabled, bool connected) const {
  const std::lock_guard lock(mutex_);
  std::optional<WifiDiagnostics> failure;
  if (const auto found = failures_.find(id); found != failures_.end()) failure = found->second;
  if (enabled && !connected && not_found_ && (!failure || failure->when < *not_found_)) {
    failure = WifiDiagnostics{.error = WifiFailure::kNetworkNotFound, .when = *not_found_};
  }
  return failure;
}

// libwpa_client names each connection's socket from a counter it does not lock: connections are
// opened and closed one at a time, and kept out of the programs aspisd runs.
std::mutex& ConnectionsMutex() {
  static std::mutex mutex;
  return mutex;
}

wpa_ctrl* OpenConnection(const std::filesystem::path& control) {
  const std::lock_guard lock(ConnectionsMutex());
  wpa_ctrl* ctrl = ::wpa_ctrl_open(control.c_str());
  if (ctrl != nullptr) ::fcntl(::wpa_ctrl_get_fd(ctrl), F_SETFD, FD_CLOEXEC);
  return ctrl;
}

void CloseConnection(wpa_ctrl* ctrl) {
  const std::lock_guard lock(ConnectionsMutex());
  ::wpa_ctrl_close(ctrl);
}

Wifi::Wifi(std::filesystem::path control)
    : control_(std::move(control)),
      wake_(::eventfd(0, EFD_CLOEXEC)),
      monitor_([this](const std::stop_token& stop) { Monitor(stop); }) {}

Wifi::~Wifi() {
  monitor_.request_stop();
  ::eventfd_write(wake_.get(), 1);
  monitor_.join();
  if (ctrl_ != nullptr) CloseConnection(ctrl_);
}

void Wifi::Monitor(const std::stop_token& stop) {
  bool attached_before = false;
  while (!stop.stop_requested()) {
    std::error_code absent;
    wpa_ctrl* monitor =
        std::filesystem::exists(control_, absent) ? OpenConnection(control_) : nullptr;
    if (monitor != nullptr) {
      if (::wpa_ctrl_attach(monitor) == 0) {
        // After a restart wpa_supplicant has read its networks again: what failed was another's.
        if (attached_before) failures_.Forget(-1);
        attached_before = true;
        Listen(*monitor, stop);
      }
      CloseConnection(monitor);
    }
    pollfd wake{.fd = wake_.get(), .events = POLLIN, .revents = 0};
    ::poll(&wake, 1, 500);
  }
}

void Wifi::Listen(wpa_ctrl& monitor, const std::stop_token& stop) {
  struct stat attached {};
  if (::stat(control_.c_str(), &attached) != 0) return;
  std::string event(kMaxEvent, '\0');
  std::array<pollfd, 2> fds{{{.fd = ::wpa_ctrl_get_fd(&monitor), .events = POLLIN, .revents = 0},
                             {.fd = wake_.get(), .events = POLLIN, .revents = 0}}};
  while (!stop.stop_requested()) {
    const int ready = ::poll(fds.data(), fds.size(), 1000);
    if (ready < 0 && errno != EINTR) return;
    if (ready <= 0) {
      // A stopped wpa_supplicant says nothing: a new socket in its place says it restarted.
      struct stat now {};
      if (::stat(control_.c_str(), &now) != 0 || now.st_ino != attached.st_ino) return;
      continue;
    }
    if (fds[1].revents != 0 || (fds[0].revents & (POLLERR | POLLHUP)) != 0) return;
    while (!stop.stop_requested() && ::wpa_ctrl_pending(&monitor) > 0) {
      std::size_t size = event.size();
      if (::wpa_ctrl_recv(&monitor, event.data(), &size) != 0) return;
      failures_.OnEvent(std::string_view(event.data(), size),
                        std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()),
                        [this] { return CurrentId(/*connected=*/false).value_or(std::nullopt); });
    }
  }
}

WifiResult<std::string> Wifi::Request(const std::string& command, int fail) {
  const std::lock_guard lock(mutex_);
  std::string reply(kMaxReply, '\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctrl_ == nullptr) ctrl_ = OpenConnection(control_);
    if (ctrl_ == nullptr) return std::unexpected(EAGAIN);
    std::size_t size = reply.size() - 1;
    const int rc =
        ::wpa_ctrl_request(ctrl_, command.data(), command.size(), reply.data(), &size, nullptr);
    if (rc == 0) {
      reply.resize(size);
      if (reply.starts_with("FAIL-BUSY")) return std::unexpected(EAGAIN);
      if (reply.starts_with("FAIL")) return std::unexpected(fail);
      return Trimmed(std::move(reply));
    }
    // wpa_supplicant restarted (or never answered): connect again, once.
    CloseConnection(ctrl_);
    ctrl_ = nullptr;
    if (rc == -2) break;
  }
  return std::unexpected(EAGAIN);
}

WifiResult<Bytes> Wifi::NetworkValue(int id, const std::string& field) {
  auto text = Request("GET_NETWORK " + std::to_string(id) + " " + field, ENOENT);
  if (!text) return std::unexpected(text.error());
  auto value = ParseNetworkValue(*text);
  if (!value) return std::unexpected(EIO);
  return std::move(*value);
}

WifiResult<std::vector<std::pair<int, std::string>>> Wifi::List() {
  std::vector<std::pair<int, std::string>> listed;
  // wpa_supplicant answers at most 4 KiB at a time: the rest comes after the last ID read.
  for (std::string command = "LIST_NETWORKS"; listed.size() <= 10 * kMaxWifiNetworks;) {
    auto page = Request(command);
    if (!page) return std::unexpected(page.error());
    const auto lines = text::Split(*page, '\n');
    std::size_t rows = 0;
    for (std::size_t i = 1; i < lines.size(); ++i) {
      const auto columns = text::Split(lines[i], '\t');
      const auto id = columns.size() == 4 ? Number(columns[0]) : std::nullopt;
      if (!id || *id < 0 || *id > 1'000'000) continue;
      listed.emplace_back(static_cast<int>(*id), std::string(columns[3]));
      ++rows;
    }
    if (rows == 0) break;
    command = "LIST_NETWORKS LAST_ID=" + std::to_string(listed.back().first);
  }
  return listed;
}

WifiResult<void> Wifi::Exists(int id) {
  if (id < 0) return std::unexpected(EINVAL);
  auto exists = Request("GET_NETWORK " + std::to_string(id) + " disabled", ENODEV);
  if (!exists) return std::unexpected(exists.error());
  return {};
}

WifiResult<void> Wifi::SetNetwork(int id, const std::string& field, const std::string& value) {
  // A network that does not exist is ENODEV; a value wpa_supplicant refuses, EINVAL.
  if (auto exists = Exists(id); !exists) return exists;
  auto set = Request("SET_NETWORK " + std::to_string(id) + " " + field + " " + value);
  if (!set) return std::unexpected(set.error());
  return {};
}

WifiResult<int> Wifi::Add() {
  auto stored = List();
  if (!stored) return std::unexpected(stored.error());
  if (stored->size() >= kMaxWifiNetworks) return std::unexpected(ENOMEM);
  auto added = Request("ADD_NETWORK");
  if (!added) return std::unexpected(added.error());
  const auto id = Number(*added);
  if (!id || *id < 0 || *id > 1'000'000) return std::unexpected(EIO);
  const int network = static_cast<int>(*id);
  failures_.Forget(network);  // an ID used before, whose removal went unheard
  if (auto open = SetNetwork(network, "key_mgmt", "NONE"); !open) {
    if (auto removed = Forget(network); !removed) {
      return std::unexpected(removed.error());  // wpa_supplicant is gone: so is the network
    }
    return std::unexpected(open.error());
  }
  return network;
}

WifiResult<WifiSecurity> Wifi::Security(int id) {
  if (auto exists = Exists(id); !exists) return std::unexpected(exists.error());
  auto key_mgmt = Request("GET_NETWORK " + std::to_string(id) + " key_mgmt", ENODEV);
  if (!key_mgmt) return std::unexpected(key_mgmt.error());
  return SecurityOfKeyManagement(*key_mgmt);
}

WifiResult<int> Wifi::Duplicate(int id, std::string_view config_name) {
  if (config_name.size() > kMaxConfigName) return std::unexpected(ERANGE);
  if (!ValidConfigName(config_name)) return std::unexpected(EINVAL);
  if (auto exists = Exists(id); !exists) return std::unexpected(exists.error());
  auto added = Add();
  if (!added) return added;
  const std::string from = std::to_string(id) + " ";
  const std::string to = std::to_string(*added) + " ";
  auto copied = [&]() -> WifiResult<void> {
    for (const std::string_view setting : kNetworkSettings) {
      // A setting the network does not have reads as FAIL (and a set key as "*").
      std::string get = "GET_NETWORK ";
      get.append(from).append(setting);
      auto value = Request(get, ENOENT);
      if (!value && value.error() == ENOENT) continue;
      if (!value) return std::unexpected(value.error());
      std::string dup = "DUP_NETWORK ";
      dup.append(from).append(to).append(setting);
      auto copy = Request(dup, EIO);
      if (!copy) return std::unexpected(copy.error());
    }
    return SetConfigName(*added, config_name);
  }();
  if (!copied) {
    if (auto removed = Forget(*added); !removed) return std::unexpected(removed.error());
    return std::unexpected(copied.error());
  }
  return added;
}

WifiResult<void> Wifi::SetSsid(int id, ByteView ssid) {
  if (ssid.empty() || ssid.size() > kMaxSsid) return std::unexpected(ERANGE);
  if (!SurvivesConfigFile(
          std::string_view(reinterpret_cast<const char*>(ssid.data()), ssid.size()))) {
    return std::unexpected(EINVAL);
  }
  return SetNetwork(id, "ssid", HexEncode(ssid));
}

WifiResult<void> Wifi::SetSecurity(int id, WifiSecurity security) {
  if (security == WifiSecurity::kOpen) return SetNetwork(id, "key_mgmt", "NONE");
  if (security != WifiSecurity::kWpa2Psk && security != WifiSecurity::kWpa2EapTls) {
    return std::unexpected(EINVAL);
  }
  if (auto rsn = SetNetwork(id, "proto", "RSN"); !rsn) return rsn;
  if (security == WifiSecurity::kWpa2Psk) return SetNetwork(id, "key_mgmt", "WPA-PSK");
  if (auto eap = SetNetwork(id, "eap", "TLS"); !eap) return eap;
  return SetNetwork(id, "key_mgmt", "WPA-EAP");
}

WifiResult<Bytes> Wifi::OptionalValue(int id, const std::string& field) {
  if (auto exists = Exists(id); !exists) return std::unexpected(exists.error());
  auto value = NetworkValue(id, field);
  if (!value && value.error() == ENOENT) return Bytes();
  return value;
}

WifiResult<void> Wifi::SetIdentity(int id, ByteView identity) {
  if (identity.empty() || identity.size() > kMaxEapIdentity) return std::unexpected(ERANGE);
  if (!SurvivesConfigFile(AsString(identity))) return std::unexpected(EINVAL);
  return SetNetwork(id, "identity", HexEncode(identity));
}

WifiResult<Bytes> Wifi::Identity(int id) { return OptionalValue(id, "identity"); }

WifiResult<void> Wifi::SetCertificateFile(int id, WifiCertificate which,
                                          const std::filesystem::path& file) {
  const std::string& path = file.native();
  if (path.empty() || !std::all_of(path.begin(), path.end(), Printable) ||
      !SurvivesConfigFile(path)) {
    return std::unexpected(EINVAL);
  }
  if (which == WifiCertificate::kRootCa) return SetNetwork(id, "ca_cert", HexEncode(AsBytes(path)));
  if (auto key = SetNetwork(id, "private_key", HexEncode(AsBytes(path))); !key) return key;
  return SetNetwork(id, "client_cert", HexEncode(AsBytes(path)));
}

WifiResult<std::filesystem::path> Wifi::CertificateFile(int id, WifiCertificate which) {
  auto value = OptionalValue(id, which == WifiCertificate::kRootCa ? "ca_cert" : "client_cert");
  if (!value) return std::unexpected(value.error());
  return std::filesystem::path(std::string(AsString(*value)));
}

WifiResult<void> Wifi::SetPsk(int id, std::string_view psk) {
  if (psk.size() < 8 || psk.size() > 64) return std::unexpected(ERANGE);
  if (psk.size() == 64) {
    if (!HexDecode(psk)) return std::unexpected(EINVAL);
    return SetNetwork(id, "psk", std::string(psk));
  }
  if (!std::all_of(psk.begin(), psk.end(), Printable) || !SurvivesConfigFile(psk)) {
    return std::unexpected(EINVAL);
  }
  // wpa_supplicant takes what lies between the first and the last quote: quotes inside are kept.
  return SetNetwork(id, "psk", "\"" + std::string(psk) + "\"");
}

WifiResult<void> Wifi::SetEnabled(int id, bool enabled) {
  if (auto exists = Exists(id); !exists) return exists;
  auto done =
      Request((enabled ? "ENABLE_NETWORK " : "DISABLE_NETWORK ") + std::to_string(id), ENODEV);
  if (!done) return std::unexpected(done.error());
  // wpa_supplicant passes over a WPA2-PSK network without a key, saying nothing.
  if (enabled && Security(id).value_or(WifiSecurity::kUnknown) == WifiSecurity::kWpa2Psk &&
      !Request("GET_NETWORK " + std::to_string(id) + " psk", ENOENT)) {
    failures_.Record(
        id, {.error = WifiFailure::kNoPskIncluded,
             .when = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())});
  }
  return {};
}

WifiResult<void> Wifi::SetTargetedScan(int id, bool enabled) {
  return SetNetwork(id, "scan_ssid", enabled ? "1" : "0");
}

WifiResult<void> Wifi::SetConfigName(int id, std::string_view name) {
  if (name.size() > kMaxConfigName) return std::unexpected(ERANGE);
  if (!ValidConfigName(name)) return std::unexpected(EINVAL);
  return SetNetwork(id, "id_str", "\"" + std::string(name) + "\"");
}

WifiResult<void> Wifi::Forget(int id) {
  if (id < -1) return std::unexpected(ENOENT);
  auto removed =
      Request("REMOVE_NETWORK " + (id == -1 ? std::string("all") : std::to_string(id)), ENOENT);
  if (!removed) return std::unexpected(removed.error());
  failures_.Forget(id);
  return {};
}

WifiResult<void> Wifi::Persist() {
  auto saved = Request("SAVE_CONFIG", EIO);
  if (!saved) return std::unexpected(saved.error());
  return {};
}

WifiResult<void> Wifi::Reload() {
  auto read = Request("RECONFIGURE", EIO);
  if (!read) return std::unexpected(read.error());
  failures_.Forget(-1);  // the IDs name the networks read now
  return {};
}

WifiResult<std::optional<int>> Wifi::CurrentId(bool connected) {
  auto status = Request("STATUS");
  if (!status) return std::unexpected(status.error());
  const auto state = Fields(*status);
  const auto completed = state.find("wpa_state");
  const auto id = state.find("id");
  if (id == state.end() ||
      (connected && (completed == state.end() || completed->second != "COMPLETED"))) {
    return std::nullopt;
  }
  const auto number = Number(id->second);
  if (!number || *number < 0 || *number > 1'000'000) return std::nullopt;
  return static_cast<int>(*number);
}

WifiResult<std::vector<StoredWifiNetwork>> Wifi::Stored() {
  auto listed = List();
  if (!listed) return std::unexpected(listed.error());
  const auto connected_id = CurrentId(/*connected=*/true);
  if (!connected_id) return std::unexpected(connected_id.error());
  std::vector<StoredWifiNetwork> stored;
  for (const auto& [id, flags] : *listed) {
    if (stored.size() == kMaxWifiNetworks) break;  // more were stored outside aspisd
    StoredWifiNetwork network;
    network.id = id;
    network.enabled = flags.find("[DISABLED]") == std::string::npos;
    network.connected = *connected_id == id;
    network.ssid = NetworkValue(id, "ssid").value_or(Bytes());
    network.security = SecurityOfKeyManagement(
        Request("GET_NETWORK " + std::to_string(id) + " key_mgmt", ENOENT).value_or(""));
    const Bytes name = NetworkValue(id, "id_str").value_or(Bytes());
    network.config_name.assign(name.begin(), name.end());
    stored.push_back(std::move(network));
  }
  return stored;
}

WifiResult<SeenWifiNetwork> Wifi::Current() {
  auto status = Request("STATUS");
  if (!status) return std::unexpected(status.error());
  const auto fields = Fields(*status);
  const auto state = fields.find("wpa_state");
  const auto id = fields.contains("id") ? Number(fields.at("id")) : std::nullopt;
  if (state == fields.end() || state->second != "COMPLETED" || !id) {
    return std::unexpected(ENOTCONN);
  }
  SeenWifiNetwork current;
  current.id = static_cast<int>(*id);
  current.ssid = NetworkValue(current.id, "ssid").value_or(Bytes());
  if (fields.contains("bssid")) current.bssid = Bssid(fields.at("bssid")).value_or(current.bssid);
  if (fields.contains("freq")) {
    current.frequency_mhz = static_cast<std::uint32_t>(
        std::clamp(Number(fields.at("freq")).value_or(0), 0LL, 100000LL));
  }
  if (fields.contains("key_mgmt"))
    current.security = SecurityOfKeyManagement(fields.at("key_mgmt"));
  if (auto signal = Request("SIGNAL_POLL")) {
    const auto polled = Fields(*signal);
    if (polled.contains("RSSI")) {
      current.rssi =
          static_cast<int>(std::clamp(Number(polled.at("RSSI")).value_or(0), -128LL, 127LL));
    }
  }
  return current;
}

WifiResult<WifiDiagnostics> Wifi::Diagnostics(int id) {
  if (id < 0) return std::unexpected(EINVAL);
  auto listed = List();
  if (!listed) return std::unexpected(listed.error());
  const auto network = std::find_if(listed->begin(), listed->end(), [id](const auto& listed_one) {
    return listed_one.first == id;
  });
  if (network == listed->end()) return std::unexpected(ENODEV);
  const auto connected_id = CurrentId(/*connected=*/true);
  if (!connected_id) return std::unexpected(connected_id.error());
  const std::string& flags = network->second;
  const bool configured = flags.find("[DISABLED]") == std::string::npos;
  const bool connected = *connected_id == id;
  auto failure = failures_.Of(id, configured, connected);
  if (!failure) return std::unexpected(ENODEV);
  failure->enabled = configured && flags.find("[TEMP-DISABLED]") == std::string::npos;
  failure->connected = connected;
  return std::move(*failure);
}

WifiResult<std::vector<SeenWifiNetwork>> Wifi::Scan() {
  // A scan already running, or a driver that cannot scan, answers FAIL-BUSY: the last results
  // stand.
  if (auto asked = Request("SCAN"); !asked && asked.error() != EAGAIN && asked.error() != EINVAL) {
    return std::unexpected(asked.error());
  }
  auto results = Request("SCAN_RESULTS");
  if (!results) return std::unexpected(results.error());
  return ParseScanResults(*results);
}

}  // namespace aspis::device::board
