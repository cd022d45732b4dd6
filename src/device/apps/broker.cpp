#include "device/apps/broker.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "core/bytes.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "device/apps/errors.hpp"
#include "device/apps/network_status.hpp"

namespace aspis::device::apps {

namespace {

using json::Json;

// The largest request: a client certificate and its key, each up to 8 KiB in hex, and a password.
constexpr std::size_t kMaxRequest = std::size_t{40} << 10;
constexpr std::size_t kMaxScanned = 48;    // Wi-Fi networks a scan answers
constexpr std::size_t kMaxCertName = 300;  // CERTSTORE_SUBJECTNAME_MAX_LENGTH

// Every call aspisd knows, by name (a refusal of any other is reported without its name).
constexpr auto kCalls = std::to_array<std::string_view>({
    "networking.interfaces",
    "networking.timesync",
    "storage.open",
    "storage.delete",
    "deviceauth.open",
    "sysevent.register",
    "sysevent.unregister",
    "sysevent.defer",
    "sysevent.resume",
    "power.reboot",
    "power.down",
    "power.profile",
    "rtc.save",
    "gpio.open",
    "adc.open",
    "pwm.open",
    "i2c.open",
    "spi.open",
    "uart.open",
    "application.connect",
    "intercore.open",
    "certstore.install",
    "certstore.delete",
    "certstore.move",
    "certstore.list",
    "certstore.space",
    "certstore.show",
    "networking.config.state",
    "networking.config.ip",
    "networking.config.release",
    "networking.config.renew",
    "networking.config.mac",
    "networking.config.mac.set",
    "networking.config.dhcpserver",
    "networking.config.sntpserver",
    "networking.timesync.set",
    "networking.timesync.last",
    "wifi.add",
    "wifi.duplicate",
    "wifi.set",
    "wifi.get",
    "wifi.forget",
    "wifi.persist",
    "wifi.reload",
    "wifi.networks",
    "wifi.current",
    "wifi.scan",
    "wifi.diagnostics",
});

struct Answer {
  int error = 0;  // errno; 0: ok
  std::string message;
  std::vector<Fd> descriptors;
  Json fields = Json::object();  // what an answer that is ok says besides "ok"
};

Answer Refuse(int error, std::string message) { return {error, std::move(message), {}}; }

void Send(int socket, const Answer& answer) {
  const Json reply =
      answer.error == 0
          ? [&] {
              Json ok = answer.fields;
              ok["ok"] = true;
              return ok;
            }()
          : Json{{"error",
                  strerrorname_np(answer.error) != nullptr ? strerrorname_np(answer.error) : "EIO"},
                 {"errno", answer.error},
                 {"message", answer.message}};
  const std::string text = reply.dump();
  iovec data{const_cast<char*>(text.data()), text.size()};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  std::vector<char> control;
  if (!answer.descriptors.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * answer.descriptors.size()));
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * answer.descriptors.size());
    for (std::size_t i = 0; i < answer.descriptors.size(); ++i) {
      const int fd = answer.descriptors[i].get();
      std::memcpy(CMSG_DATA(header) + i * sizeof(int), &fd, sizeof(int));
    }
  }
  (void)::sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
}

Answer OpenStorage(const BrokerGrants& g, bool empty) {
  if (!g.capabilities.mutable_storage_kb)
    return Refuse(EACCES, "the app manifest grants no MutableStorage");
  std::error_code ec;
  std::filesystem::create_directories(g.storage_file.parent_path(), ec);
  Fd file(::open(g.storage_file.c_str(),
                 O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (empty ? O_TRUNC : 0), 0600));
  if (file.get() < 0) return Refuse(EIO, "cannot open the mutable storage");
  // A storage that an update made smaller is cut to its new size.
  struct stat st {};
  const auto limit = static_cast<off_t>(*g.capabilities.mutable_storage_kb) * 1024;
  if (::fstat(file.get(), &st) == 0 && st.st_size > limit) {
    if (::ftruncate(file.get(), limit) != 0) return Refuse(EIO, "cannot cut the storage");
  }
  Answer answer;
  if (!empty) answer.descriptors.push_back(std::move(file));
  return answer;
}

Answer OpenDeviceAuth(const BrokerGrants& g) {
  if (g.capabilities.device_authentication.empty()) {
    return Refuse(EACCES, "the app manifest grants no DeviceAuthentication");
  }
  const std::string tenant = g.tenant ? g.tenant() : "";
  if (tenant.empty()) return Refuse(EAGAIN, "the device has not attested yet");
  if (tenant != g.capabilities.device_authentication) {
    return Refuse(EACCES, "DeviceAuthentication names another tenant than the device's");
  }
  Fd certificate(::open(g.app_certificate.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  Fd key(::open(g.app_key.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (certificate.get() < 0 || key.get() < 0) {
    return Refuse(EAGAIN, "the device holds no app certificate yet");
  }
  Answer answer;
  answer.descriptors.push_back(std::move(certificate));
  answer.descriptors.push_back(std::move(key));
  return answer;
}

constexpr auto kDeferrable = SysEvent::kUpdateReadyForInstall;

Answer RegisterEvents(const BrokerGrants& g, const Json& request) {
  if (!g.capabilities.system_event_notifications || g.events == nullptr) {
    return Refuse(EACCES, "the app manifest grants no SystemEventNotifications");
  }
  const Json& names = request.at("events");
  if (!names.is_array() || names.empty()) return Refuse(EINVAL, "no events named");
  std::uint32_t mask = 0;
  for (const auto& name : names) {
    const auto event = name.is_string() ? SysEventFromName(name.get<std::string>()) : std::nullopt;
    if (!event) return Refuse(EINVAL, "not a system event");
    mask |= static_cast<std::uint32_t>(*event);
  }
  auto socket = g.events->Register(g.component_id, mask, g.capabilities.software_update_deferral);
  if (!socket) return Refuse(EIO, socket.error().message());
  Answer answer;
  answer.descriptors.push_back(std::move(*socket));
  return answer;
}

// sysevent.defer (with `minutes`) or sysevent.resume.
Answer DeferEvent(const BrokerGrants& g, const Json& request,
                  std::optional<std::uint32_t> minutes) {
  if (!g.capabilities.software_update_deferral || g.events == nullptr) {
    return Refuse(EACCES, "the app manifest grants no SoftwareUpdateDeferral");
  }
  const Json& event = request.at("event");
  if (!event.is_string() || SysEventFromName(event.get<std::string>()) != kDeferrable) {
    return Refuse(EINVAL, "only UpdateReadyForInstall can be deferred");
  }
  if (minutes) {
    if (auto granted = g.events->Defer(g.component_id, std::chrono::minutes(*minutes)); !granted) {
      return Refuse(EINVAL, granted.error().message());
    }
  } else if (auto resumed = g.events->Resume(g.component_id); !resumed) {
    return Refuse(EINVAL, resumed.error().message());
  }
  return {};
}

Answer Opened(Expected<Fd> fd) {
  if (!fd) {
    const auto& code = fd.error().code();
    return Refuse(code.category() == std::generic_category() ? code.value() : EIO,
                  fd.error().message());
  }
  Answer answer;
  answer.descriptors.push_back(std::move(*fd));
  return answer;
}

std::optional<int> IntField(const Json& request, std::string_view field, int low, int high) {
  const Json& value = request.at(field);
  if (!value.is_number_integer()) return std::nullopt;
  const auto number = value.get<std::int64_t>();
  if (number < low || number > high) return std::nullopt;
  return static_cast<int>(number);
}

bool Lists(const BrokerGrants& g, std::string_view capability, const std::string& value) {
  const auto listed = g.capabilities.peripherals.find(capability);
  return listed != g.capabilities.peripherals.end() &&
         std::find(listed->second.begin(), listed->second.end(), value) != listed->second.end();
}

Answer OpenGpio(const BrokerGrants& g, const Json& request) {
  static constexpr std::array<std::pair<std::string_view, board::GpioMode>, 4> kModes = {{
      {"input", board::GpioMode::kInput},
      {"push-pull", board::GpioMode::kPushPull},
      {"open-drain", board::GpioMode::kOpenDrain},
      {"open-source", board::GpioMode::kOpenSource},
  }};
  const auto gpio = IntField(request, "gpio", 0, 0xffff);
  const auto value = IntField(request, "value", 0, 1);
  const Json& mode_name = request.at("mode");
  const auto mode = std::find_if(kModes.begin(), kModes.end(), [&](const auto& m) {
    return mode_name.is_string() && mode_name.get<std::string>() == m.first;
  });
  if (!gpio || !value || mode == kModes.end()) return Refuse(EINVAL, "not a GPIO, mode and value");
  if (g.board == nullptr || g.peripheral_server == nullptr || !g.board->gpios().contains(*gpio)) {
    return Refuse(ENODEV, "the board has no GPIO " + std::to_string(*gpio));
  }
  if (!Lists(g, "Gpio", std::to_string(*gpio))) {
    return Refuse(EACCES, "the app manifest does not list Gpio " + std::to_string(*gpio));
  }
  return Opened(g.peripheral_server->OpenGpio(g.component_id, *gpio, mode->second, *value == 1));
}

// "adc.open", "pwm.open", "i2c.open", "spi.open", "uart.open": the block the app names by its
// number under `capability`.
Answer OpenBlock(const BrokerGrants& g, std::string_view capability, const Json& request) {
  const auto id = IntField(request, "id", 0, 0xffff);
  if (!id) return Refuse(EINVAL, "not a peripheral ID");
  const auto block = g.board != nullptr && g.peripheral_server != nullptr
                         ? g.board->BlockFor(capability, *id)
                         : std::nullopt;
  if (!block) {
    return Refuse(ENODEV, fmt::format("the board has no {} {}", capability, *id));
  }
  if (!Lists(g, capability, *block)) {
    return Refuse(EACCES, fmt::format("the app manifest does not list {} {}", capability, *block));
  }
  board::PeripheralServer& server = *g.peripheral_server;
  if (capability == "Adc") return Opened(server.OpenAdc(g.component_id, *block));
  if (capability == "Pwm") return Opened(server.OpenPwm(g.component_id, *block));
  if (capability == "I2cMaster") return Opened(server.OpenI2c(g.component_id, *block));
  if (capability == "SpiMaster") {
    const auto chip_select = IntField(request, "chip_select", -2, -1);
    if (!chip_select) return Refuse(EINVAL, "the chip select is A (-1) or B (-2)");
    return Opened(server.OpenSpi(g.component_id, *block, *chip_select));
  }
  board::UartSettings settings;
  const auto baud = IntField(request, "baud", 1, 20'000'000);
  const auto data_bits = IntField(request, "data_bits", 5, 8);
  const auto stop_bits = IntField(request, "stop_bits", 1, 2);
  const Json& parity = request.at("parity");
  const auto flow = IntField(request, "flow_control", 0, 2);
  if (!baud || !data_bits || !stop_bits || !flow || !parity.is_string() ||
      (parity != "N" && parity != "E" && parity != "O")) {
    return Refuse(EINVAL, "not a UART configuration");
  }
  settings.baud_rate = static_cast<std::uint32_t>(*baud);
  settings.data_bits = *data_bits;
  settings.stop_bits = *stop_bits;
  settings.parity = parity.get<std::string>()[0];
  settings.flow_control = *flow;
  return Opened(server.OpenUart(g.component_id, *block, settings));
}

// The device's interfaces as networking.h shows them; no capability needed, as on Azure Sphere.
Answer Interfaces() {
  const auto interfaces = ReadInterfaces();
  Answer answer;
  answer.fields["ready"] = NetworkingReady(interfaces);
  Json list = Json::array();
  for (const auto& i : interfaces) {
    list.push_back({{"name", i.name},
                    {"medium", i.medium},
                    {"up", i.up},
                    {"connected", i.connected},
                    {"ip", i.ip_available},
                    {"internet", i.internet}});
  }
  answer.fields["interfaces"] = std::move(list);
  return answer;
}

bool Controls(const BrokerGrants& g, std::string_view control) {
  return std::find(g.capabilities.power_controls.begin(), g.capabilities.power_controls.end(),
                   control) != g.capabilities.power_controls.end();
}

Answer Power(const BrokerGrants& g, const std::string& call, const Json& request) {
  if (call == "power.reboot") {
    if (!Controls(g, "ForceReboot")) return Refuse(EACCES, "PowerControls lacks ForceReboot");
    if (g.actions == nullptr || !g.actions->reboot) return Refuse(ENOTSUP, "cannot reboot");
    g.actions->reboot();
    return {};
  }
  if (call == "power.down") {
    if (!Controls(g, "ForcePowerDown")) return Refuse(EACCES, "PowerControls lacks ForcePowerDown");
    const Json& seconds = request.at("seconds");
    if (!seconds.is_number_unsigned() || seconds.get<std::uint64_t>() > INT32_MAX) {
      return Refuse(EINVAL, "seconds must be a whole number");
    }
    if (g.actions == nullptr || !g.actions->power_down) return Refuse(ENOTSUP, "cannot power down");
    // At most a day: the device wakes to attest (its certificates last 24 hours) and check in.
    g.actions->power_down(
        std::min(std::chrono::seconds(seconds.get<std::int64_t>()), kMaxPowerDown));
    return {};
  }
  // power.profile: accepted; no board aspisd runs on changes its power profile yet.
  if (!Controls(g, "SetPowerProfile")) return Refuse(EACCES, "PowerControls lacks SetPowerProfile");
  const Json& profile = request.at("profile");
  if (profile != "HighPerformance" && profile != "Balanced" && profile != "PowerSaver") {
    return Refuse(EINVAL, "not a power profile");
  }
  return {};
}

Answer SaveTime(const BrokerGrants& g) {
  if (!g.capabilities.system_time) return Refuse(EACCES, "the app manifest grants no SystemTime");
  if (g.actions == nullptr || !g.actions->save_time) return Refuse(ENOTSUP, "no real-time clock");
  if (auto saved = g.actions->save_time(); !saved) return Refuse(EIO, saved.error().message());
  return {};
}

// Whether the device's time sync is enabled: aspisd's setting where it keeps the time, else
// whether the kernel's clock is kept in sync (by whatever the system runs).
Answer TimeSync(const BrokerGrants& g) {
  Answer answer;
  if (g.time_sync != nullptr) {
    answer.fields["enabled"] = g.time_sync->Choice().enabled;
    return answer;
  }
  timex clock{};
  const int state = ::adjtimex(&clock);
  answer.fields["enabled"] = state != -1 && state != TIME_ERROR && (clock.status & STA_UNSYNC) == 0;
  return answer;
}

Answer Connect(const BrokerGrants& g, const Json& request) {
  const Json& target = request.at("component_id");
  if (!target.is_string()) return Refuse(EINVAL, "component_id must be a string");
  if (g.connections == nullptr) return Refuse(ENOTSUP, "the device relays no app connections");
  auto connection = g.connections->Connect(
      g.component_id, g.capabilities.allowed_application_connections, target.get<std::string>());
  if (!connection) {
    switch (connection.error()) {
      case EACCES:
        return Refuse(EACCES, "AllowedApplicationConnections does not list the component");
      case ECONNREFUSED:
        return Refuse(ECONNREFUSED, "no real-time app of that component lists this app");
      case EINVAL:
        return Refuse(EINVAL, "not a component ID");
      default:
        return Refuse(connection.error(), "cannot make the connection");
    }
  }
  Answer answer;
  answer.descriptors.push_back(std::move(*connection));
  return answer;
}

Answer OpenIntercore(const BrokerGrants& g) {
  if (!g.intercore) return Refuse(EACCES, "only a real-time capable app has a channel");
  Fd channel(::fcntl(g.intercore->get(), F_DUPFD_CLOEXEC, 0));
  if (channel.get() < 0) return Refuse(EMFILE, "cannot pass the channel");
  Answer answer;
  answer.descriptors.push_back(std::move(channel));
  return answer;
}

// Whether `request` is {"call": ..., ...} with exactly `fields` besides its call.
bool Shaped(const Json& request, std::initializer_list<std::string_view> fields);

Answer FromWifi(const board::WifiResult<void>& done) {
  if (done) return {};
  return Refuse(done.error(), "wpa_supplicant: " + std::generic_category().message(done.error()));
}

Json Seen(const board::SeenWifiNetwork& n) {
  return {{"ssid", HexEncode(n.ssid)},
          {"bssid", HexEncode(n.bssid)},
          {"security", static_cast<int>(n.security)},
          {"frequency", n.frequency_mhz},
          {"rssi", n.rssi},
          {"id", n.id}};
}

// The networking.config.* calls (board/network.hpp): the app's NetworkConfig (or
// HardwareAddressConfig) first, then an interface aspisd manages.
Answer NetworkConfigCall(const BrokerGrants& g, const std::string& call, const Json& request) {
  // A hardware address is HardwareAddressConfig's to set, and either capability's to read; the
  // DHCP and SNTP servers are DhcpService's and SntpService's.
  const bool set_mac = call == "networking.config.mac.set";
  const bool dhcp_server = call == "networking.config.dhcpserver";
  const bool sntp_server = call == "networking.config.sntpserver";
  const auto [granted, capability] =
      set_mac       ? std::pair(g.capabilities.hardware_address_config, "HardwareAddressConfig")
      : dhcp_server ? std::pair(g.capabilities.dhcp_service, "DhcpService")
      : sntp_server
          ? std::pair(g.capabilities.sntp_service, "SntpService")
          : std::pair(g.capabilities.network_config || (call == "networking.config.mac" &&
                                                        g.capabilities.hardware_address_config),
                      "NetworkConfig");
  if (!granted) return Refuse(EACCES, std::string("the app manifest grants no ") + capability);
  const Json name = request.value("interface", Json());
  if (!name.is_string() || name.get<std::string>().size() >= IF_NAMESIZE) {
    return Refuse(ENOENT, "no such interface");
  }
  if (g.network == nullptr) {
    return Refuse(ENOTSUP, "aspisd does not manage this board's network");
  }
  const std::string interface = name.get<std::string>();
  const auto done = [](const board::NetworkResult<void>& result) {
    return result ? Answer{}
                  : Refuse(result.error(), std::generic_category().message(result.error()));
  };
  const auto address = [&](const char* key) {
    const Json& value = request[key];
    return in_addr{value.is_number_unsigned() && value.get<std::uint64_t>() <= 0xffffffffU
                       ? value.get<std::uint32_t>()
                       : 0U};
  };
  if (call == "networking.config.state" && Shaped(request, {"interface", "up"}) &&
      request["up"].is_boolean()) {
    return done(g.network->SetUp(interface, request["up"].get<bool>()));
  }
  if (call == "networking.config.ip" &&
      Shaped(request, {"interface", "static", "address", "mask", "gateway", "dns"})) {
    std::vector<in_addr> dns;
    for (const Json& server : request["dns"].is_array() ? request["dns"] : Json::array({-1})) {
      if (!server.is_number_unsigned() || server.get<std::uint64_t>() > 0xffffffffU) {
        return Refuse(EINVAL, "not a DNS server address");
      }
      dns.push_back(in_addr{server.get<std::uint32_t>()});
    }
    if (request["static"] != true) return done(g.network->SetDynamicIp(interface, dns));
    return done(g.network->SetStaticIp(interface, address("address"), address("mask"),
                                       address("gateway"), dns));
  }
  if (dhcp_server &&
      Shaped(request, {"interface", "start", "count", "mask", "gateway", "lease_hours", "ntp"}) &&
      request["ntp"].is_array() && request["ntp"].size() <= 3 &&
      request["count"].is_number_unsigned() && request["lease_hours"].is_number_unsigned()) {
    board::DhcpServerSettings settings{
        .start = address("start"),
        .count = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(request["count"].get<std::uint64_t>(), 256)),
        .mask = address("mask"),
        .gateway = address("gateway"),
        .lease_hours = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(request["lease_hours"].get<std::uint64_t>(), UINT32_MAX)),
        .ntp = {}};
    for (const Json& server : request["ntp"]) {
      if (!server.is_number_unsigned() || server.get<std::uint64_t>() > 0xffffffffU) {
        return Refuse(EINVAL, "not an NTP server address");
      }
      settings.ntp.push_back(in_addr{server.get<std::uint32_t>()});
    }
    return done(g.network->StartDhcpServer(interface, settings));
  }
  if (sntp_server && Shaped(request, {"interface"})) {
    return done(g.network->StartSntpServer(interface));
  }
  if (call == "networking.config.release" && Shaped(request, {"interface"})) {
    return done(g.network->ReleaseIp(interface));
  }
  if (call == "networking.config.renew" && Shaped(request, {"interface"})) {
    return done(g.network->RenewIp(interface));
  }
  if (call == "networking.config.mac" && Shaped(request, {"interface"})) {
    const auto mac = g.network->GetHardwareAddress(interface);
    if (!mac) return done(std::unexpected(mac.error()));
    Answer answer;
    answer.fields["mac"] = HexEncode(*mac);
    return answer;
  }
  if (call == "networking.config.mac.set" && Shaped(request, {"interface", "mac"}) &&
      request["mac"].is_string()) {
    const auto bytes = HexDecode(request["mac"].get<std::string>());
    if (!bytes || bytes->size() != 6) return Refuse(EINVAL, "not a hardware address");
    board::HardwareAddress mac{};
    std::copy(bytes->begin(), bytes->end(), mac.begin());
    return done(g.network->SetHardwareAddress(interface, mac));
  }
  return Refuse(EPERM, "not a broker call");
}

// The bytes of the hex string `request` holds at `key`; nullopt when it holds anything else.
std::optional<Bytes> HexField(const Json& request, const char* key) {
  const Json value = request.value(key, Json());
  if (!value.is_string()) return std::nullopt;
  auto bytes = HexDecode(value.get<std::string>());
  if (!bytes) return std::nullopt;
  return std::move(*bytes);
}

// The networking.timesync.* calls (board/time_sync.hpp): the app's TimeSyncConfig first, then
// the time sync aspisd keeps.
Answer TimeSyncCall(const BrokerGrants& g, const std::string& call, const Json& request) {
  if (!g.capabilities.time_sync_config) {
    return Refuse(EACCES, "the app manifest grants no TimeSyncConfig");
  }
  if (g.time_sync == nullptr) return Refuse(ENOTSUP, "aspisd does not keep this device's time");
  board::TimeSync& sync = *g.time_sync;
  const auto done = [](const board::TimeSyncResult<void>& result) {
    return result ? Answer{}
                  : Refuse(result.error(), std::generic_category().message(result.error()));
  };
  const Json fallback = request.value("fallback", Json());
  if (call == "networking.timesync.set" && Shaped(request, {"enabled"}) &&
      request["enabled"].is_boolean()) {
    return done(sync.SetEnabled(request["enabled"].get<bool>()));
  }
  if (call == "networking.timesync.set" && Shaped(request, {"ntp"}) &&
      request["ntp"] == "default") {
    return done(sync.UseDefault());
  }
  if (call == "networking.timesync.set" && Shaped(request, {"ntp", "fallback"}) &&
      request["ntp"] == "automatic" && fallback.is_boolean()) {
    return done(sync.UseAutomatic(fallback.get<bool>()));
  }
  if (call == "networking.timesync.set" && Shaped(request, {"ntp", "servers", "fallback"}) &&
      request["ntp"] == "custom" && fallback.is_boolean() && request["servers"].is_array() &&
      request["servers"].size() <= 2) {
    std::vector<std::string> servers;
    for (const Json& server : request["servers"]) {
      const std::optional<Bytes> name = HexField({{"name", server}}, "name");
      if (!name) return Refuse(EINVAL, "not an NTP server name");
      servers.emplace_back(AsString(*name));
    }
    return done(sync.UseCustom(std::move(servers), fallback.get<bool>()));
  }
  if (call == "networking.timesync.last" && Shaped(request, {})) {
    const auto last = sync.LastSync();
    if (!last) return done(std::unexpected(last.error()));
    Answer answer;
    answer.fields["server"] = HexEncode(AsBytes(last->server));
    answer.fields["before"] = last->before.time_since_epoch().count();
    answer.fields["ntp"] = last->ntp.time_since_epoch().count();
    return answer;
  }
  return Refuse(EPERM, "not a broker call");
}

Answer FromStore(const board::CertStoreResult<void>& done) {
  if (done) return {};
  return Refuse(done.error(),
                "the certificate store: " + std::generic_category().message(done.error()));
}

// The certstore.* calls (board/cert_store.hpp): the app's CertStore first, then the store, which
// a board with Wi-Fi has. Identifiers and certificates come in hex.
Answer CertStoreCall(const BrokerGrants& g, const std::string& call, const Json& request) {
  if (!g.capabilities.cert_store) return Refuse(EACCES, "the app manifest grants no CertStore");
  if (g.cert_store == nullptr) return Refuse(ENOTSUP, "the board has no Wi-Fi");
  board::CertStore& store = *g.cert_store;
  const auto text = [&](const char* key) -> std::optional<std::string> {
    auto bytes = HexField(request, key);
    if (!bytes) return std::nullopt;
    return std::string(bytes->begin(), bytes->end());
  };
  const auto id = text("id");
  Answer answer;
  if (call == "certstore.install" && Shaped(request, {"id", "certificate", "key", "password"})) {
    const auto certificate = text("certificate");
    if (!id || !certificate) return Refuse(EINVAL, "not a certificate");
    if (request["key"].is_null()) return FromStore(store.InstallRootCa(*id, *certificate));
    const auto key = text("key");
    const auto password = text("password");
    if (!key || (!password && !request["password"].is_null())) {
      return Refuse(EINVAL, "not a private key");
    }
    return FromStore(
        store.InstallClient(*id, *certificate, *key,
                            password ? std::optional<std::string_view>(*password) : std::nullopt));
  }
  if (call == "certstore.delete" && Shaped(request, {"id"}) && id) {
    return FromStore(store.Delete(*id));
  }
  if (call == "certstore.move" && Shaped(request, {"from", "to"})) {
    const auto from = text("from");
    const auto to = text("to");
    if (!from || !to) return Refuse(EINVAL, "not a certificate identifier");
    return FromStore(store.Move(*from, *to));
  }
  if (call == "certstore.list" && Shaped(request, {})) {
    const auto identifiers = store.Identifiers();
    if (!identifiers) return FromStore(std::unexpected(identifiers.error()));
    answer.fields["identifiers"] = *identifiers;
    return answer;
  }
  if (call == "certstore.space" && Shaped(request, {})) {
    const auto available = store.AvailableSpace();
    if (!available) return FromStore(std::unexpected(available.error()));
    answer.fields["available"] = *available;
    return answer;
  }
  if (call == "certstore.show" && Shaped(request, {"id"}) && id) {
    const auto shown = store.Show(*id);
    if (!shown) return FromStore(std::unexpected(shown.error()));
    // As much of each name as applibs' structures hold.
    answer.fields["subject"] = HexEncode(AsBytes(shown->subject.substr(0, kMaxCertName)));
    answer.fields["issuer"] = HexEncode(AsBytes(shown->issuer.substr(0, kMaxCertName)));
    answer.fields["not_before"] = shown->not_before.time_since_epoch().count();
    answer.fields["not_after"] = shown->not_after.time_since_epoch().count();
    return answer;
  }
  return Refuse(EPERM, "not a broker call");
}

// The EAP-TLS settings wifi.set and wifi.get take (EnterpriseWifiConfig's).
bool EnterpriseField(const std::string& field) {
  return field == "identity" || field == "client_cert" || field == "root_ca";
}

// wifi.set of an EAP-TLS setting: certificates by their identifier in the store.
Answer SetEnterprise(const BrokerGrants& g, int id, const std::string& field,
                     const std::optional<Bytes>& value) {
  if (!value) return Refuse(EINVAL, "not a Wi-Fi setting");
  if (field == "identity") return FromWifi(g.wifi->SetIdentity(id, *value));
  if (g.cert_store == nullptr) return Refuse(EAGAIN, "the certificate store is not open");
  const auto file = g.cert_store->PathOf(AsString(*value));
  if (!file) return FromStore(std::unexpected(file.error()));
  return FromWifi(g.wifi->SetCertificateFile(
      id, field == "root_ca" ? board::WifiCertificate::kRootCa : board::WifiCertificate::kClient,
      *file));
}

// wifi.get of an EAP-TLS setting; a certificate file outside the store reads as no certificate.
Answer GetEnterprise(const BrokerGrants& g, int id, const std::string& field) {
  Answer answer;
  if (field == "identity") {
    const auto identity = g.wifi->Identity(id);
    if (!identity) return FromWifi(std::unexpected(identity.error()));
    answer.fields["value"] = HexEncode(*identity);
    return answer;
  }
  const auto file = g.wifi->CertificateFile(
      id, field == "root_ca" ? board::WifiCertificate::kRootCa : board::WifiCertificate::kClient);
  if (!file) return FromWifi(std::unexpected(file.error()));
  std::optional<std::string> identifier;
  if (g.cert_store != nullptr) identifier = g.cert_store->IdentifierOf(*file);
  answer.fields["value"] = HexEncode(AsBytes(identifier.value_or("")));
  return answer;
}

// The wifi.* calls (board/wifi.hpp): the app's WifiConfig first (and EnterpriseWifiConfig for
// EAP-TLS), then the board's Wi-Fi. What the app sends as bytes (an SSID, a key, a name) comes in
// hex.
Answer WifiCall(const BrokerGrants& g, const std::string& call, const Json& request) {
  if (!g.capabilities.wifi_config) return Refuse(EACCES, "the app manifest grants no WifiConfig");
  const Json field_value = request.value("field", Json());
  const std::string field = field_value.is_string() ? field_value.get<std::string>() : "";
  const bool eap_tls =
      (call == "wifi.set" && field == "security" &&
       request.value("value", Json()) == static_cast<int>(board::WifiSecurity::kWpa2EapTls)) ||
      ((call == "wifi.set" || call == "wifi.get") && EnterpriseField(field));
  if (eap_tls && !g.capabilities.enterprise_wifi_config) {
    return Refuse(EACCES, "the app manifest grants no EnterpriseWifiConfig");
  }
  if (g.wifi == nullptr) return Refuse(ENOTSUP, "the board has no Wi-Fi");
  board::Wifi& wifi = *g.wifi;
  // A network ID (-1: every network, for wifi.forget), or -2 for anything else.
  const auto id = [&]() -> int {
    const Json value = request.value("id", Json());
    if (value.is_number_unsigned()) {
      return value.get<std::uint64_t>() <= 1'000'000 ? static_cast<int>(value.get<std::uint64_t>())
                                                     : -2;
    }
    return value.is_number_integer() && value.get<std::int64_t>() == -1 ? -1 : -2;
  };
  Answer answer;
  if (call == "wifi.add" && Shaped(request, {})) {
    const auto added = wifi.Add();
    if (!added) return FromWifi(std::unexpected(added.error()));
    answer.fields["id"] = *added;
    return answer;
  }
  if (call == "wifi.duplicate" && Shaped(request, {"id", "name"})) {
    const std::optional<Bytes> name = HexField(request, "name");
    if (!name) return Refuse(EINVAL, "not a configuration name");
    // A copy of an EAP-TLS network is one, with the device's identity and certificate.
    if (!g.capabilities.enterprise_wifi_config) {
      const auto security = wifi.Security(id());
      if (!security) return FromWifi(std::unexpected(security.error()));
      if (*security == board::WifiSecurity::kWpa2EapTls) {
        return Refuse(EACCES, "the app manifest grants no EnterpriseWifiConfig");
      }
    }
    const auto added = wifi.Duplicate(id(), AsString(*name));
    if (!added) return FromWifi(std::unexpected(added.error()));
    answer.fields["id"] = *added;
    return answer;
  }
  if (call == "wifi.diagnostics" && Shaped(request, {"id"})) {
    const auto failure = wifi.Diagnostics(id());
    if (!failure) return FromWifi(std::unexpected(failure.error()));
    answer.fields["enabled"] = failure->enabled;
    answer.fields["connected"] = failure->connected;
    answer.fields["error"] = static_cast<int>(failure->error);
    answer.fields["time"] = failure->when.time_since_epoch().count();
    answer.fields["cert_error"] = failure->cert_error;
    answer.fields["cert_depth"] = failure->cert_depth;
    answer.fields["cert_subject"] = HexEncode(AsBytes(failure->cert_subject));
    return answer;
  }
  if (call == "wifi.set" && Shaped(request, {"id", "field", "value"}) && field_value.is_string()) {
    const Json& value = request["value"];
    const std::optional<Bytes> bytes = HexField(request, "value");
    const std::string text = bytes ? std::string(bytes->begin(), bytes->end()) : std::string();
    if (EnterpriseField(field)) return SetEnterprise(g, id(), field, bytes);
    if (field == "ssid" && bytes) return FromWifi(wifi.SetSsid(id(), *bytes));
    if (field == "psk" && bytes) return FromWifi(wifi.SetPsk(id(), text));
    if (field == "config_name" && bytes) return FromWifi(wifi.SetConfigName(id(), text));
    if (field == "enabled" && value.is_boolean()) {
      return FromWifi(wifi.SetEnabled(id(), value.get<bool>()));
    }
    if (field == "targeted_scan" && value.is_boolean()) {
      return FromWifi(wifi.SetTargetedScan(id(), value.get<bool>()));
    }
    if (field == "security" && value.is_number_unsigned() && value.get<std::uint64_t>() <= 3) {
      return FromWifi(wifi.SetSecurity(id(), static_cast<board::WifiSecurity>(value.get<int>())));
    }
    return Refuse(EINVAL, "not a Wi-Fi setting");
  }
  if (call == "wifi.get" && Shaped(request, {"id", "field"}) && EnterpriseField(field)) {
    return GetEnterprise(g, id(), field);
  }
  if (call == "wifi.forget" && Shaped(request, {"id"})) return FromWifi(wifi.Forget(id()));
  if (call == "wifi.persist" && Shaped(request, {})) return FromWifi(wifi.Persist());
  if (call == "wifi.reload" && Shaped(request, {})) return FromWifi(wifi.Reload());
  if (call == "wifi.networks" && Shaped(request, {})) {
    const auto stored = wifi.Stored();
    if (!stored) return FromWifi(std::unexpected(stored.error()));
    Json list = Json::array();
    for (const auto& n : *stored) {
      list.push_back({{"id", n.id},
                      {"ssid", HexEncode(n.ssid)},
                      {"security", static_cast<int>(n.security)},
                      {"enabled", n.enabled},
                      {"connected", n.connected},
                      {"name", HexEncode(AsBytes(n.config_name))}});
    }
    answer.fields["networks"] = std::move(list);
    return answer;
  }
  if (call == "wifi.current" && Shaped(request, {})) {
    const auto current = wifi.Current();
    if (!current) return FromWifi(std::unexpected(current.error()));
    answer.fields["network"] = Seen(*current);
    return answer;
  }
  if (call == "wifi.scan" && Shaped(request, {})) {
    const auto seen = wifi.Scan();
    if (!seen) return FromWifi(std::unexpected(seen.error()));
    // The strongest kMaxScanned: an answer must fit the app's 8 KiB reply buffer.
    auto strongest = *seen;
    std::sort(strongest.begin(), strongest.end(),
              [](const auto& a, const auto& b) { return a.rssi > b.rssi; });
    if (strongest.size() > kMaxScanned) strongest.resize(kMaxScanned);
    Json list = Json::array();
    for (const auto& n : strongest) list.push_back(Seen(n));
    answer.fields["networks"] = std::move(list);
    return answer;
  }
  return Refuse(EPERM, "not a broker call");
}

bool Shaped(const Json& request, std::initializer_list<std::string_view> fields) {
  if (request.size() != fields.size() + 1) return false;
  return std::all_of(fields.begin(), fields.end(),
                     [&](std::string_view f) { return request.contains(f); });
}

Answer Dispatch(const BrokerGrants& g, const std::string& call, const Json& request) {
  if ((call == "storage.open" || call == "storage.delete") && Shaped(request, {})) {
    return OpenStorage(g, call == "storage.delete");
  }
  if (call == "deviceauth.open" && Shaped(request, {})) return OpenDeviceAuth(g);
  if (call == "sysevent.register" && Shaped(request, {"events"})) return RegisterEvents(g, request);
  if (call == "sysevent.unregister" && Shaped(request, {})) {
    if (g.events != nullptr) g.events->Unregister(g.component_id);
    return {};
  }
  if (call == "sysevent.defer" && Shaped(request, {"event", "minutes"})) {
    const Json& minutes = request.at("minutes");
    if (!minutes.is_number_unsigned() || minutes.get<std::uint64_t>() > UINT32_MAX) {
      return Refuse(EINVAL, "minutes must be a whole number");
    }
    return DeferEvent(g, request, minutes.get<std::uint32_t>());
  }
  if (call == "sysevent.resume" && Shaped(request, {"event"})) {
    return DeferEvent(g, request, std::nullopt);
  }
  if (call == "networking.interfaces" && Shaped(request, {})) return Interfaces();
  if (call == "networking.timesync" && Shaped(request, {})) return TimeSync(g);
  if (call == "rtc.save" && Shaped(request, {})) return SaveTime(g);
  if ((call == "power.reboot" && Shaped(request, {})) ||
      (call == "power.down" && Shaped(request, {"seconds"})) ||
      (call == "power.profile" && Shaped(request, {"profile"}))) {
    return Power(g, call, request);
  }
  if (call == "gpio.open" && Shaped(request, {"gpio", "mode", "value"})) {
    return OpenGpio(g, request);
  }
  if (call == "adc.open" && Shaped(request, {"id"})) return OpenBlock(g, "Adc", request);
  if (call == "pwm.open" && Shaped(request, {"id"})) return OpenBlock(g, "Pwm", request);
  if (call == "i2c.open" && Shaped(request, {"id"})) return OpenBlock(g, "I2cMaster", request);
  if (call == "spi.open" && Shaped(request, {"id", "chip_select"})) {
    return OpenBlock(g, "SpiMaster", request);
  }
  if (call == "uart.open" &&
      Shaped(request, {"id", "baud", "data_bits", "parity", "stop_bits", "flow_control"})) {
    return OpenBlock(g, "Uart", request);
  }
  if (call == "application.connect" && Shaped(request, {"component_id"})) {
    return Connect(g, request);
  }
  if (call == "intercore.open" && Shaped(request, {})) return OpenIntercore(g);
  if (call.starts_with("wifi.")) return WifiCall(g, call, request);
  if (call.starts_with("certstore.")) return CertStoreCall(g, call, request);
  if (call.starts_with("networking.config.")) return NetworkConfigCall(g, call, request);
  if (call.starts_with("networking.timesync.")) return TimeSyncCall(g, call, request);
  return Refuse(EPERM, "not a broker call");
}

}  // namespace

Expected<Broker> Broker::Create(BrokerGrants grants, sandbox::DenialSink denials) {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot make the broker socket: " + std::generic_category().message(errno));
  }
  // Refusals are reported at most kReportsPerSecond a second, then counted.
  auto limited =
      denials ? sandbox::RateLimited(std::move(denials), kReportsPerSecond) : sandbox::DenialSink{};
  return Broker(std::move(grants), std::move(limited), Fd(pair[0]), Fd(pair[1]));
}

bool Broker::Serve() {
  std::vector<char> buffer(kMaxRequest);
  const ssize_t got = ::recv(own_end_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
  if (got == 0) return false;
  if (got < 0) return errno == EAGAIN || errno == EINTR;
  const auto request =
      json::Parse(std::string_view(buffer.data(), static_cast<std::size_t>(got)), 4);
  std::string call;
  if (request && request->is_object() && request->contains("call") &&
      (*request)["call"].is_string()) {
    call = (*request)["call"].get<std::string>();
  }
  const Answer answer =
      call.empty() ? Refuse(EPERM, "not a broker call") : Dispatch(grants_, call, *request);
  if ((answer.error == EACCES || answer.error == EPERM) && denials_) Report(call, answer.message);
  Send(own_end_.get(), answer);
  return true;
}

void Broker::Report(const std::string& call, const std::string& why) const {
  // Named only when it is a call aspisd knows: what the app wrote is not reported.
  const bool known = std::find(kCalls.begin(), kCalls.end(), call) != kCalls.end();
  denials_({"broker", (known ? call : std::string("unknown call")) + " (" + why + ")"});
}

StorageQuota QuotaOf(const BrokerGrants& grants) {
  StorageQuota quota;
  if (!grants.capabilities.mutable_storage_kb) return quota;
  quota.limit = std::uint64_t{*grants.capabilities.mutable_storage_kb} * 1024;
  struct stat st {};
  if (::stat(grants.storage_file.c_str(), &st) == 0)
    quota.used = static_cast<std::uint64_t>(st.st_size);
  return quota;
}

}  // namespace aspis::device::apps
