#include "cli/cli.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>

#include <fmt/format.h>

#include "core/fd.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "crypto/x509.hpp"
#include "wire/admin.hpp"
#include "wire/https_client.hpp"

namespace aspis::cli {

namespace {

namespace fs = std::filesystem;
using json::Json;

fs::path ConfigPath() {
  if (const char* path = std::getenv("ASPIS_CONFIG"); path && *path) return path;  // NOLINT
  const char* home = std::getenv("HOME");                                          // NOLINT
  return fs::path(home ? home : ".") / ".config/aspis/config.json";
}

struct Session {
  std::string url;
  std::string token;
  std::string root_ca_pem;
  std::string tenant;  // the default tenant, when the token belongs to one
};

Expected<Session> LoadSession() {
  auto text = file::Read(ConfigPath(), file::kSmallFileLimit);
  if (!text) {
    return Fail(CoreErrc::kNotFound,
                "not logged in: run `aspis login --url URL --token TOKEN "
                "--root-ca FILE` first");
  }
  auto doc = json::Parse(AsString(*text));
  if (!doc) return std::unexpected(std::move(doc.error()).WithContext(ConfigPath().string()));
  return Session{doc->value("url", ""), doc->value("token", ""), doc->value("root_ca", ""),
                 doc->value("tenant", "")};
}

// A request to the service; non-2xx answers become Errors carrying the problem's detail.
Expected<Json> Request(const Session& session, const std::string& method, const std::string& target,
                       const Json& body = nullptr) {
  auto endpoint = wire::ParseHttpsUrl(session.url);
  if (!endpoint) return std::unexpected(endpoint.error());
  auto roots = crypto::Certificate::ChainFromPem(session.root_ca_pem);
  if (!roots) return std::unexpected(std::move(roots.error()).WithContext("pinned root CA"));
  auto tls = crypto::tls::ClientContext(*roots);
  if (!tls) return std::unexpected(tls.error());
  wire::HttpsClient client(*endpoint, *tls);
  auto response = client.Send(
      method, target, body.is_null() ? "" : body.dump(),
      {{"Authorization", "Bearer " + session.token}, {"Content-Type", "application/json"}});
  if (!response) return std::unexpected(response.error());
  if (response->status < 200 || response->status > 299) {
    return Fail(CoreErrc::kInvalidArgument, wire::ProblemDetail(*response) + " (HTTP " +
                                                std::to_string(response->status) + ")");
  }
  if (response->content_type.starts_with("application/json")) {
    auto doc = json::Parse(response->body);
    if (!doc) return std::unexpected(doc.error());
    return doc;
  }
  return Json(response->body);
}

std::string Cell(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_null()) return "";
  return value.dump();
}

std::string Time(const Json& seconds) {
  const std::int64_t at = seconds.is_number() ? seconds.get<std::int64_t>() : 0;
  if (at == 0) return "-";
  const std::time_t t = at;
  std::tm tm{};
  char text[32];
  if (gmtime_r(&t, &tm) == nullptr ||
      std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
    return std::to_string(at);
  }
  return text;
}

// Prints a list of objects as an aligned table of `columns` (dotted paths reach nested fields).
void PrintTable(std::ostream& out, const Json& rows, const std::vector<std::string>& columns) {
  const Json list = rows.is_array() ? rows : Json::array({rows});
  std::vector<std::vector<std::string>> cells;
  std::vector<std::size_t> widths(columns.size());
  std::transform(columns.begin(), columns.end(), widths.begin(),
                 [](const std::string& c) { return c.size(); });
  for (const auto& row : list) {
    std::vector<std::string> line;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const Json* value = &row;
      std::string path = columns[i];
      for (std::size_t dot; (dot = path.find('.')) != std::string::npos;
           path = path.substr(dot + 1)) {
        value = value->contains(path.substr(0, dot)) ? &(*value)[path.substr(0, dot)] : nullptr;
        if (value == nullptr) break;
      }
      std::string text = value != nullptr && value->contains(path) ? Cell((*value)[path]) : "";
      // Times are Unix seconds in JSON; people read them as UTC.
      const bool is_time = path == "at" || path.ends_with("_at") || path.ends_with("expiry") ||
                           path == "not_after" || path == "not_before";
      if (is_time && value != nullptr && (*value)[path].is_number_integer()) {
        text = Time((*value)[path]);
      }
      widths[i] = std::max(widths[i], text.size());
      line.push_back(text);
    }
    cells.push_back(std::move(line));
  }
  auto print = [&](const std::vector<std::string>& line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
      out << line[i];
      if (i + 1 < line.size()) out << std::string(widths[i] - line[i].size() + 2, ' ');
    }
    out << "\n";
  };
  print(columns);
  for (const auto& line : cells) print(line);
}

struct Output {
  std::string format = "table";
  std::vector<std::string> columns;
  // A table layout of its own, for answers that are not lists of rows.
  std::function<void(std::ostream&, const Json&)> table;
  void Print(std::ostream& out, const Json& value) const {
    if (format != "json" && table) {
      table(out, value);
    } else if (format == "json" || columns.empty()) {
      out << (value.is_string() ? value.get<std::string>() : value.dump(2) + "\n");
    } else {
      PrintTable(out, value, columns);
    }
  }
};

// One request to aspisd's admin socket (wire/admin.hpp).
Expected<Json> AdminRequest(const std::string& path, std::string_view command) {
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
  const std::string request = Json{{"command", command}}.dump() + "\n";
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
      << "Last attestation:    " << Time(a.value("last_attempt", Json(0))) << "\n"
      << "Next attestation:    " << Time(a.value("next_attempt", Json(0))) << "\n"
      << "Certificate expiry:  " << Time(s.value("certificate_expiry", Json(0))) << "\n"
      << "Last check-in:       " << Time(s.value("last_check_in", Json(0))) << "\n"
      << "Measurements:\n";
  for (const auto& m : s.value("measurements", Json::array())) {
    out << fmt::format("  {:<14} {}\n", m.value("component", ""), m.value("digest", ""));
  }
}

void PrintAttestation(std::ostream& out, const Json& a) {
  const std::string reasons = a.value("reasons", "");
  out << "Device ID:       " << a.value("device_id", "") << "\n"
      << "Verdict:         " << a.value("verdict", "")
      << (reasons.empty() ? "" : " (" + reasons + ")") << "\n"
      << "Attested:        " << Time(a.value("at", Json(0))) << "\n"
      << "Root of trust:   " << a.value("root_of_trust", "") << "\n"
      << "OS release:      " << a.value("os_release", "") << "\n"
      << "Boot PCRs:";
  const Json boot_pcrs = a.value("boot_pcrs", Json::object());
  out << (boot_pcrs.empty() ? " none proven" : "") << "\n";
  for (const auto& [index, value] : boot_pcrs.items()) {
    out << fmt::format("  {:<3} {}\n", index, Cell(value));
  }
  out << "Attempts, newest first (unproven ones did not change the verdict):\n";
  const Json attempts = a.value("attempts", Json::array());
  for (const auto& attempt : attempts) {
    out << fmt::format("  {}  {:<9}  {:<8}  {}\n", Time(attempt.value("at", Json(0))),
                       attempt.value("verdict", ""),
                       attempt.value("proven", false) ? "proven" : "unproven",
                       attempt.value("reasons", ""));
  }
}

}  // namespace

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app("aspis: operate an Aspis security service", "aspis");
  app.require_subcommand(1);
  app.fallthrough();  // --output may come anywhere, after the verb too
  std::string output = "table";
  app.add_option("--output", output, "table or json")->check(CLI::IsMember({"table", "json"}));

  // Each command sets `run` to what it does once parsed.
  std::function<Expected<Json>(const Session&)> run;
  std::vector<std::string> columns;
  std::function<void(std::ostream&, const Json&)> table;
  std::string tenant;

  std::string url, token, root_ca_file;
  auto* login =
      app.add_subcommand("login", "Save the service URL, an API token and the pinned root CA");
  login->add_option("--url", url, "https://HOST:PORT")->required();
  login->add_option("--token", token, "API token")->required();
  login->add_option("--root-ca", root_ca_file, "The service's root-ca.pem, to pin")->required();
  login->add_option("--tenant", tenant, "Default tenant");

  auto tenant_option = [&](CLI::App* command) {
    command->add_option("--tenant", tenant, "Tenant ID (default: the login's)");
  };
  auto with_tenant = [&](const Session& s) { return tenant.empty() ? s.tenant : tenant; };

  auto* tenant_cmd = app.add_subcommand("tenant", "Tenants")->require_subcommand(1);
  std::string name;
  tenant_cmd->add_subcommand("create", "Create a tenant (platform administrator)")
      ->callback([&] {
        columns = {"id", "name"};
        run = [&](const Session& s) { return Request(s, "POST", "/v1/tenants", {{"name", name}}); };
      })
      ->add_option("--name", name)
      ->required();
  tenant_cmd->add_subcommand("list", "List tenants")->callback([&] {
    columns = {"id", "name"};
    run = [](const Session& s) { return Request(s, "GET", "/v1/tenants"); };
  });
  auto* tenant_show = tenant_cmd->add_subcommand("show", "Show a tenant");
  tenant_option(tenant_show);
  tenant_show->callback([&] {
    columns = {"id", "name", "created_at"};
    run = [&](const Session& s) { return Request(s, "GET", "/v1/tenants/" + with_tenant(s)); };
  });

  auto* role = app.add_subcommand("role", "API tokens and their roles")->require_subcommand(1);
  std::string role_name, description, token_id;
  auto* role_add = role->add_subcommand("add", "Issue a token with a role (shown once)");
  role_add->add_option("--role", role_name)
      ->required()
      ->check(CLI::IsMember({"Administrator", "Contributor", "Reader"}));
  role_add->add_option("--description", description);
  tenant_option(role_add);
  role_add->callback([&] {
    columns = {"id", "role", "token"};
    run = [&](const Session& s) {
      return Request(s, "POST", "/v1/tenants/" + with_tenant(s) + "/tokens",
                     {{"role", role_name}, {"description", description}});
    };
  });
  auto* role_list = role->add_subcommand("list", "List tokens");
  tenant_option(role_list);
  role_list->callback([&] {
    columns = {"id", "role", "description", "revoked"};
    run = [&](const Session& s) {
      return Request(s, "GET", "/v1/tenants/" + with_tenant(s) + "/tokens");
    };
  });
  auto* role_delete = role->add_subcommand("delete", "Revoke a token");
  role_delete->add_option("--id", token_id)->required();
  tenant_option(role_delete);
  role_delete->callback([&] {
    columns = {"id", "revoked"};
    run = [&](const Session& s) {
      return Request(s, "DELETE", "/v1/tenants/" + with_tenant(s) + "/tokens/" + token_id);
    };
  });

  auto* device = app.add_subcommand("device", "Devices")->require_subcommand(1);
  std::string device_id;
  const std::vector<std::string> device_columns = {"id", "revoked", "attestation.verdict",
                                                   "attestation.certificate_expiry",
                                                   "attestation.reasons"};
  for (const auto& [verb, help] : std::vector<std::pair<std::string, std::string>>{
           {"claim", "Claim a device for the tenant (once, irreversible)"},
           {"list", "List the tenant's devices"},
           {"show", "Show a device and its last attestation"},
           {"revoke", "Revoke a device: it gets no more certificates"},
           {"restore", "Undo a revocation"}}) {
    auto* command = device->add_subcommand(verb, help);
    tenant_option(command);
    if (verb != "list") command->add_option("--device", device_id, "Device ID")->required();
    command->callback([&, verb = verb] {
      columns = device_columns;
      run = [&, verb](const Session& s) -> Expected<Json> {
        const std::string base = fmt::format("/v1/tenants/{}/devices", with_tenant(s));
        if (verb == "claim") return Request(s, "POST", base, {{"device_id", device_id}});
        if (verb == "list") return Request(s, "GET", base);
        const std::string one = fmt::format("{}/{}", base, device_id);
        if (verb == "show") return Request(s, "GET", one);
        return Request(s, "POST", fmt::format("{}/{}", one, verb));
      };
    });
  }

  auto* show_attestation = device->add_subcommand(
      "show-attestation",
      "Show a device's attestation: verdict, root of trust, OS release, boot PCRs and attempts");
  tenant_option(show_attestation);
  show_attestation->add_option("--device", device_id, "Device ID")->required();
  show_attestation->callback([&] {
    table = PrintAttestation;
    run = [&](const Session& s) {
      return Request(
          s, "GET",
          fmt::format("/v1/tenants/{}/devices/{}/attestation", with_tenant(s), device_id));
    };
  });

  auto* policy = app.add_subcommand("attestation-policy",
                                    "What the verifier requires of the "
                                    "tenant's devices")
                     ->require_subcommand(1);
  const std::vector<std::string> policy_columns = {"allow_software_root_of_trust",
                                                   "golden_boot_pcrs"};
  tenant_option(
      policy->add_subcommand("show", "Show the tenant's attestation policy")->callback([&] {
        columns = policy_columns;
        run = [&](const Session& s) {
          return Request(s, "GET",
                         fmt::format("/v1/tenants/{}/attestation-policy", with_tenant(s)));
        };
      }));
  std::string pin_from;
  bool clear_pin = false;
  std::optional<bool> allow_software;
  auto* policy_update = policy->add_subcommand(
      "update",
      "Accept or refuse software roots of trust; pin the boot PCRs a trusted device proved as the "
      "tenant's golden set, or clear them");
  tenant_option(policy_update);
  policy_update->add_option("--allow-software-root-of-trust", allow_software,
                            "true or false (refused by default: no hardware protection)");
  auto* pin_option = policy_update->add_option("--pin-boot-pcrs-from-device", pin_from,
                                               "Device ID whose last proven boot PCRs to pin");
  policy_update->add_flag("--clear-boot-pcrs", clear_pin, "Remove the golden boot PCRs")
      ->excludes(pin_option);
  policy_update->callback([&] {
    columns = policy_columns;
    run = [&](const Session& s) -> Expected<Json> {
      Json body = Json::object();
      if (allow_software) body["allow_software_root_of_trust"] = *allow_software;
      if (!pin_from.empty()) body["pin_boot_pcrs_from_device"] = pin_from;
      if (clear_pin) body["clear_golden_boot_pcrs"] = true;
      if (body.empty()) {
        return Fail(CoreErrc::kInvalidArgument,
                    "give --allow-software-root-of-trust, --pin-boot-pcrs-from-device or "
                    "--clear-boot-pcrs");
      }
      return Request(s, "POST", fmt::format("/v1/tenants/{}/attestation-policy", with_tenant(s)),
                     body);
    };
  });

  auto* os_release =
      app.add_subcommand("os-release", "OS releases (reference values)")->require_subcommand(1);
  std::string version, feed = "retail";
  std::vector<std::string> components;
  auto* os_add =
      os_release->add_subcommand("add", "Register an OS release (platform administrator)");
  os_add->add_option("--version", version)->required();
  os_add->add_option("--feed", feed)->check(CLI::IsMember({"retail", "retail-eval"}));
  os_add->add_option("--component", components, "COMPONENT=SHA256HEX, repeated")->required();
  os_add->callback([&] {
    columns = {"version", "feed"};
    run = [&](const Session& s) -> Expected<Json> {
      Json map = Json::object();
      for (const auto& c : components) {
        const auto eq = c.find('=');
        if (eq == std::string::npos) {
          return Fail(CoreErrc::kInvalidArgument, "--component \"" + c + "\" is not NAME=DIGEST");
        }
        map[c.substr(0, eq)] = c.substr(eq + 1);
      }
      return Request(s, "POST", "/v1/os-releases",
                     {{"version", version}, {"feed", feed}, {"components", map}});
    };
  });
  os_release->add_subcommand("list", "List OS releases (platform administrator)")->callback([&] {
    columns = {"version", "feed", "created_at", "retired_reason"};
    run = [](const Session& s) { return Request(s, "GET", "/v1/os-releases"); };
  });
  std::string retire_reason;
  auto* os_retire = os_release->add_subcommand(
      "retire", "Retire an OS release: devices running it are untrusted (platform administrator)");
  os_retire->add_option("--version", version)->required();
  os_retire->add_option("--reason", retire_reason, "Why, shown to operators")->required();
  os_retire->callback([&] {
    columns = {"version", "retired_reason"};
    run = [&](const Session& s) {
      return Request(s, "POST", "/v1/os-releases/" + version + "/retire",
                     {{"reason", retire_reason}});
    };
  });

  auto* ca = app.add_subcommand("ca-certificate", "The tenant CA")->require_subcommand(1);
  auto* ca_list = ca->add_subcommand(
      "list", "Every generation of the tenant CA, with its state (Active, Inactive, Expired)");
  tenant_option(ca_list);
  ca_list->callback([&] {
    columns = {"index", "state", "not_after", "activates_at", "thumbprint"};
    run = [&](const Session& s) {
      return Request(s, "GET", "/v1/tenants/" + with_tenant(s) + "/ca-certificates");
    };
  });
  std::string destination;
  int ca_index = 0;
  auto* download =
      ca->add_subcommand("download", "Save the tenant CA chain (PEM) for brokers and clouds");
  download->add_option("--destination", destination, "File to write")->required();
  download->add_option("--index", ca_index,
                       "The CA generation (see ca-certificate list; default: the active one)");
  tenant_option(download);
  // Fetches a PEM document of the tenant's CA and writes it to --destination.
  auto save_pem = [&](const Session& s, const std::string& path) -> Expected<Json> {
    auto pem = Request(s, "GET", "/v1/tenants/" + with_tenant(s) + path);
    if (!pem) return pem;
    if (auto ok = file::WriteDurably(destination, AsBytes(pem->get<std::string>()), 0644); !ok) {
      return std::unexpected(ok.error());
    }
    return Json("wrote " + destination + "\n");
  };
  download->callback([&] {
    run = [&](const Session& s) {
      return save_pem(
          s, ca_index > 0 ? "/ca-certificates/" + std::to_string(ca_index) : "/ca-certificate");
    };
  });
  auto* download_crl = ca->add_subcommand(
      "download-crl",
      "Save the CRL of the tenant CA (PEM): the certificates of revoked devices, for brokers and "
      "clouds; fetch it at least daily");
  download_crl->add_option("--destination", destination, "File to write")->required();
  download_crl->add_option("--index", ca_index,
                           "The CA generation (see ca-certificate list; default: the active one)");
  tenant_option(download_crl);
  download_crl->callback([&] {
    run = [&](const Session& s) {
      return save_pem(
          s, ca_index > 0 ? "/ca-certificates/" + std::to_string(ca_index) + "/crl" : "/crl");
    };
  });

  auto* audit = app.add_subcommand("audit", "The audit log")->require_subcommand(1);
  auto* audit_list = audit->add_subcommand("list", "Recent changes, newest first");
  tenant_option(audit_list);
  audit_list->callback([&] {
    columns = {"sequence", "at", "actor", "action", "target"};
    run = [&](const Session& s) {
      return Request(s, "GET", "/v1/tenants/" + with_tenant(s) + "/audit");
    };
  });

  auto* dev = app.add_subcommand("dev", "The device this runs on (talks to the local aspisd)")
                  ->require_subcommand(1);
  std::string admin_socket(wire::admin::kDefaultSocket);
  auto* dev_status = dev->add_subcommand(
      "status", "Device ID, tenant, attestation, certificate expiry, check-in, measurements");
  dev_status->add_option("--socket", admin_socket, "aspisd's admin socket")->capture_default_str();
  auto* dev_attest = dev->add_subcommand(
      "attest", "Attest now rather than at the scheduled renewal, then show the status");
  dev_attest->add_option("--socket", admin_socket, "aspisd's admin socket")->capture_default_str();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }

  if (login->parsed()) {
    auto root = file::Read(root_ca_file, file::kSmallFileLimit);
    if (!root || !crypto::Certificate::ChainFromPem(AsString(*root))) {
      err << "aspis: " << root_ca_file << " is not a PEM certificate\n";
      return 1;
    }
    Session session{url, token, std::string(AsString(*root)), tenant};
    // Proves the URL, the pinned root and the token before saving them.
    if (auto check = Request(session, "GET", "/v1/tenants"); !check) {
      err << "aspis: login failed: " << check.error().message() << "\n";
      return 1;
    }
    const fs::path path = ConfigPath();
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    const Json config{
        {"url", url}, {"token", token}, {"root_ca", session.root_ca_pem}, {"tenant", tenant}};
    if (auto ok = file::WriteDurably(path, AsBytes(config.dump(2)), 0600); !ok) {
      err << "aspis: " << ok.error().message() << "\n";
      return 1;
    }
    out << "logged in to " << url << "\n";
    return 0;
  }
  if (dev_status->parsed() || dev_attest->parsed()) {
    auto status = AdminRequest(admin_socket,
                               dev_attest->parsed() ? wire::admin::kAttest : wire::admin::kStatus);
    if (!status) {
      err << "aspis: " << status.error().message() << "\n";
      return 1;
    }
    if (output == "json") {
      out << status->dump(2) << "\n";
    } else {
      PrintDeviceStatus(out, *status);
    }
    return 0;
  }
  auto session = LoadSession();
  if (!session) {
    err << "aspis: " << session.error().message() << "\n";
    return 1;
  }
  auto result = run(*session);
  if (!result) {
    err << "aspis: " << result.error().message() << "\n";
    return 1;
  }
  Output{output, columns, table}.Print(out, *result);
  return 0;
}

}  // namespace aspis::cli
