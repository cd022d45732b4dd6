// `aspis dev`: the device this runs on, through aspisd's admin socket (wire/admin.hpp).
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "cli/command.hpp"
#include "core/bytes.hpp"
#include "core/fd.hpp"
#include "core/file.hpp"
#include "wire/admin.hpp"

namespace aspis::cli {

namespace {

using json::Json;

// One request to aspisd's admin socket.
Expected<Json> AdminRequest(const std::string& path, const Json& request_json) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return Fail(CoreErrc::kInvalidArgument, "socket path " + path + " is too long");
  }
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const Fd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int fd = socket.get();
  if (fd < 0) return Fail(CoreErrc::kIo, "cannot create a socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return Fail(CoreErrc::kIo, "cannot reach aspisd at " + path + ": " +
                                   std::generic_category().message(errno) +
                                   " (is aspisd running, and are you root?)");
  }
  const std::string request = request_json.dump() + "\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return Fail(CoreErrc::kIo, "cannot send to aspisd at " + path);
  }
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  auto doc = json::Parse(reply);
  if (!doc || !doc->is_object()) {
    return Fail(CoreErrc::kParse,
                "aspisd closed the connection without an answer (only root "
                "may use its admin socket)");
  }
  if (doc->contains("error")) return Fail(CoreErrc::kInvalidArgument, doc->value("error", ""));
  return doc;
}

void PrintDeviceStatus(std::ostream& out, const Json& s) {
  const Json& a = s.value("attestation", Json::object());
  out << "Device ID:           " << s.value("device_id", "") << "\n"
      << "Tenant:              " << s.value("tenant", "") << "\n"
      << "Root of trust:       " << s.value("rot", "") << "\n"
      << "Runtime key:         " << s.value("runtime_key", "") << "\n"
      << "Attestation:         " << a.value("verdict", "")
      << (a.value("reason", "").empty() ? "" : " (" + a.value("reason", "") + ")") << "\n"
      << "Last attestation:    " << UtcTime(a.value("last_attempt", Json(0))) << "\n"
      << "Next attestation:    " << UtcTime(a.value("next_attempt", Json(0))) << "\n"
      << "Certificate expiry:  " << UtcTime(s.value("certificate_expiry", Json(0))) << "\n"
      << "Last check-in:       " << UtcTime(s.value("last_check_in", Json(0))) << "\n"
      << "Measurements:\n";
  for (const auto& m : s.value("measurements", Json::array())) {
    out << fmt::format("  {:<14} {}\n", m.value("component", ""), m.value("digest", ""));
  }
}

// status and attest: one admin command, then the status it answers with.
class DevCommand final : public Command {
 public:
  explicit DevCommand(std::string_view command) : command_(command) {}
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--socket", socket_, "aspisd's admin socket")->capture_default_str();
  }
  Expected<Json> Run() override { return AdminRequest(socket_, Json{{"command", command_}}); }
  Output Format() const override { return {.table = PrintDeviceStatus}; }

 private:
  std::string_view command_;
  std::string socket_{wire::admin::kDefaultSocket};
};

void PrintApp(std::ostream& out, const Json& app) {
  out << fmt::format(
      "{:<36}  {:<20} {:<8} pid {:<7} memory {} KiB (peak {} KiB)  restarts {}{}\n",
      app.value("component_id", ""), app.value("name", ""), app.value("state", ""),
      app.value("pid", 0), app.value("memory_bytes", 0) / 1024,
      app.value("memory_peak_bytes", 0) / 1024, app.value("restarts", 0),
      app.value("last_exit", "").empty() ? "" : "  last: " + app.value("last_exit", ""));
}

// `aspis dev app list|show-status|start|stop`: the apps aspisd runs, as Azure Sphere's
// `azsphere device app` shows and controls them.
class DevAppCommand final : public Command {
 public:
  explicit DevAppCommand(std::string_view command) : command_(command) {}
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--socket", socket_, "aspisd's admin socket")->capture_default_str();
    if (command_ != wire::admin::kAppList) {
      verb->add_option("--component-id,-i", component_, "The app's component ID")->required();
    }
  }
  Expected<Json> Run() override {
    Json request{{"command", command_}};
    if (!component_.empty()) request["component_id"] = component_;
    return AdminRequest(socket_, request);
  }
  Output Format() const override {
    if (command_ == wire::admin::kAppQuota) {
      return {.table = [](std::ostream& out, const Json& reply) {
        out << fmt::format("{}  mutable storage: {} KiB used of {} KiB\n",
                           reply.value("component_id", ""),
                           reply.value("storage_bytes", std::uint64_t{0}) / 1024,
                           reply.value("storage_limit", std::uint64_t{0}) / 1024);
      }};
    }
    return {.table = [](std::ostream& out, const Json& reply) {
      if (!reply.contains("apps")) return PrintApp(out, reply);
      for (const auto& app : reply["apps"]) PrintApp(out, app);
    }};
  }

 private:
  std::string_view command_;
  std::string component_;
  std::string socket_{wire::admin::kDefaultSocket};
};

// `aspis dev board press|release|leds|set-adc|pwm|uart-path`: the virtual board's buttons, LEDs,
// ADC, PWM and UARTs.
class DevBoardCommand final : public Command {
 public:
  explicit DevBoardCommand(std::string_view command) : command_(command) {}
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--socket", socket_, "aspisd's admin socket")->capture_default_str();
    if (command_ == wire::admin::kBoardPress || command_ == wire::admin::kBoardRelease) {
      verb->add_option("button", argument_, "The button: its name (A, B) or GPIO number")
          ->required();
    } else if (command_ == wire::admin::kBoardUartPath) {
      verb->add_option("uart", argument_, "The UART: its ISU (ISU0) or its UART ID (4)")
          ->required();
    } else if (command_ == wire::admin::kBoardSetAdc) {
      verb->add_option("--controller", argument_, "The ADC controller (default: the first)");
      verb->add_option("--channel", channel_, "The channel")->required();
      verb->add_option("--value", value_, "What it reads: 0 to 4095")->required();
    }
  }
  Expected<Json> Run() override {
    Json request{{"command", command_}};
    if (command_ == wire::admin::kBoardPress || command_ == wire::admin::kBoardRelease) {
      request["button"] = argument_;
    } else if (command_ == wire::admin::kBoardUartPath) {
      request["uart"] = argument_;
    } else if (command_ == wire::admin::kBoardSetAdc) {
      if (!argument_.empty()) request["controller"] = argument_;
      request["channel"] = channel_;
      request["value"] = value_;
    }
    return AdminRequest(socket_, request);
  }
  Output Format() const override {
    if (command_ == wire::admin::kBoardLeds) {
      return {.table = [](std::ostream& out, const Json& reply) {
        for (const auto& led : reply.value("leds", Json::array())) {
          out << fmt::format("{:<20} GPIO{:<3} {}\n", led.value("name", ""), led.value("gpio", 0),
                             led.value("lit", false) ? "on" : "off");
        }
      }};
    }
    if (command_ == wire::admin::kBoardPwm) {
      return {.table = [](std::ostream& out, const Json& reply) {
        for (const auto& c : reply.value("channels", Json::array())) {
          out << fmt::format("{} channel {}: period {} ns, duty {} ns, {}{}\n",
                             c.value("controller", ""), c.value("channel", 0),
                             c.value("period_ns", 0U), c.value("duty_ns", 0U),
                             c.value("enabled", false) ? "enabled" : "disabled",
                             c.value("inverted", false) ? ", inverted" : "");
        }
      }};
    }
    if (command_ == wire::admin::kBoardUartPath) {
      return {.table = [](std::ostream& out, const Json& reply) {
        out << reply.value("path", "") << "\n";
      }};
    }
    return {.table = [](std::ostream& out, const Json& reply) { out << reply.dump() << "\n"; }};
  }

 private:
  std::string_view command_;
  std::string argument_;
  unsigned channel_ = 0;
  unsigned value_ = 0;
  std::string socket_{wire::admin::kDefaultSocket};
};

// `aspis dev certificate add|delete|list|show|show-quota`: the device's certificate store, as
// Azure Sphere's `azsphere device certificate` manages it.
class DevCertificateCommand final : public Command {
 public:
  explicit DevCertificateCommand(std::string_view command) : command_(command) {}
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--socket", socket_, "aspisd's admin socket")->capture_default_str();
    if (command_ == wire::admin::kCertificateList || command_ == wire::admin::kCertificateQuota) {
      return;
    }
    verb->add_option("--certificate,-c", id_, "The certificate's identifier")->required();
    if (command_ != wire::admin::kCertificateAdd) return;
    verb->add_option("--cert-type,-t", type_, "rootca or client")
        ->required()
        ->check(CLI::IsMember({"rootca", "client"}));
    verb->add_option("--public-key-file", public_key_, "The certificate (PEM)")
        ->required()
        ->check(CLI::ExistingFile);
    verb->add_option("--private-key-file", private_key_, "A client certificate's key (PEM)")
        ->check(CLI::ExistingFile);
    verb->add_option("--private-key-password", password_, "What opens an encrypted key");
  }
  Expected<Json> Run() override {
    Json request{{"command", command_}};
    if (!id_.empty()) request["certificate"] = id_;
    if (command_ == wire::admin::kCertificateAdd) {
      if ((type_ == "client") != !private_key_.empty()) {
        return Fail(CoreErrc::kInvalidArgument,
                    "a client certificate takes --private-key-file, a root CA none");
      }
      request["type"] = type_;
      auto certificate = file::Read(public_key_, file::kSmallFileLimit);
      if (!certificate) return std::unexpected(certificate.error());
      request["public_key"] = std::string(AsString(*certificate));
      if (!private_key_.empty()) {
        auto key = file::Read(private_key_, file::kSmallFileLimit);
        if (!key) return std::unexpected(key.error());
        request["private_key"] = std::string(AsString(*key));
        if (!password_.empty()) request["password"] = password_;
      }
    }
    return AdminRequest(socket_, request);
  }
  Output Format() const override {
    return {.table = [command = command_](std::ostream& out, const Json& reply) {
      if (command == wire::admin::kCertificateList) {
        for (const auto& id : reply.value("certificates", Json::array())) {
          out << id.get<std::string>() << "\n";
        }
      } else if (command == wire::admin::kCertificateQuota) {
        out << fmt::format("{} bytes available of {}\n",
                           reply.value("available_bytes", std::uint64_t{0}),
                           reply.value("capacity_bytes", std::uint64_t{0}));
      } else if (command == wire::admin::kCertificateShow) {
        out << "Identifier:  " << reply.value("certificate", "") << "\n"
            << "Type:        " << reply.value("type", "") << "\n"
            << "Subject:     " << reply.value("subject", "") << "\n"
            << "Issuer:      " << reply.value("issuer", "") << "\n"
            << "Not before:  " << UtcTime(reply.value("not_before", Json(0))) << "\n"
            << "Not after:   " << UtcTime(reply.value("not_after", Json(0))) << "\n";
      } else {
        out << (command == wire::admin::kCertificateDelete ? "deleted " : "added ")
            << reply.value("certificate", "") << "\n";
      }
    }};
  }

 private:
  std::string_view command_;
  std::string id_;
  std::string type_;
  std::string public_key_;
  std::string private_key_;
  std::string password_;
  std::string socket_{wire::admin::kDefaultSocket};
};

}  // namespace

void AddDeviceCommands(CLI::App& app, Registry& r) {
  auto* dev = app.add_subcommand("dev", "The device this runs on (talks to the local aspisd)")
                  ->require_subcommand(1);
  r.Add<DevCommand>(
      dev->add_subcommand(
          "status", "Device ID, tenant, attestation, certificate expiry, check-in, measurements"),
      wire::admin::kStatus);
  r.Add<DevCommand>(
      dev->add_subcommand("attest",
                          "Attest now rather than at the scheduled renewal, then show the status"),
      wire::admin::kAttest);
  auto* app_noun = dev->add_subcommand("app", "The apps aspisd runs")->require_subcommand(1);
  r.Add<DevAppCommand>(app_noun->add_subcommand("list", "Every app: state, memory, restarts"),
                       wire::admin::kAppList);
  r.Add<DevAppCommand>(app_noun->add_subcommand("show-status", "One app's state and last exit"),
                       wire::admin::kAppStatus);
  r.Add<DevAppCommand>(app_noun->add_subcommand("start", "Start an app (again)"),
                       wire::admin::kAppStart);
  r.Add<DevAppCommand>(app_noun->add_subcommand("stop", "Stop an app until it is started"),
                       wire::admin::kAppStop);
  r.Add<DevAppCommand>(
      app_noun->add_subcommand("show-quota", "An app's mutable storage: used, and its SizeKB"),
      wire::admin::kAppQuota);
  auto* certificate =
      dev->add_subcommand("certificate", "The device's certificate store (EAP-TLS Wi-Fi)")
          ->require_subcommand(1);
  r.Add<DevCertificateCommand>(
      certificate->add_subcommand("add", "Install a root CA or client certificate"),
      wire::admin::kCertificateAdd);
  r.Add<DevCertificateCommand>(certificate->add_subcommand("delete", "Delete a certificate"),
                               wire::admin::kCertificateDelete);
  r.Add<DevCertificateCommand>(
      certificate->add_subcommand("list", "Every certificate's identifier"),
      wire::admin::kCertificateList);
  r.Add<DevCertificateCommand>(
      certificate->add_subcommand("show", "A certificate's type, names and validity"),
      wire::admin::kCertificateShow);
  r.Add<DevCertificateCommand>(
      certificate->add_subcommand("show-quota", "The store's free space, in bytes"),
      wire::admin::kCertificateQuota);
  auto* board = dev->add_subcommand("board", "The virtual board's buttons, LEDs, ADC, PWM, UARTs")
                    ->require_subcommand(1);
  r.Add<DevBoardCommand>(board->add_subcommand("press", "Hold a button down"),
                         wire::admin::kBoardPress);
  r.Add<DevBoardCommand>(board->add_subcommand("release", "Let a button go"),
                         wire::admin::kBoardRelease);
  r.Add<DevBoardCommand>(board->add_subcommand("leds", "Which LEDs are lit"),
                         wire::admin::kBoardLeds);
  r.Add<DevBoardCommand>(board->add_subcommand("set-adc", "Set what an ADC channel reads"),
                         wire::admin::kBoardSetAdc);
  r.Add<DevBoardCommand>(board->add_subcommand("pwm", "The PWM channels apps drive"),
                         wire::admin::kBoardPwm);
  r.Add<DevBoardCommand>(
      board->add_subcommand("uart-path", "The pseudo-terminal at the far end of an app's UART"),
      wire::admin::kBoardUartPath);
}

}  // namespace aspis::cli
