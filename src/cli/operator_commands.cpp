// The verbs that call the security service's operator API with the saved login.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <optional>

#include "cli/command.hpp"
#include "cli/session.hpp"
#include "core/file.hpp"
#include "crypto/x509.hpp"

namespace aspis::cli {

namespace {

using json::Json;
namespace api = wire::api;

class Login final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--url", url_, "https://HOST:PORT")->required();
    verb->add_option("--token", token_, "API token")->required();
    verb->add_option("--root-ca", root_ca_file_, "The service's root-ca.pem, to pin")->required();
    verb->add_option("--tenant", tenant_, "Default tenant");
  }
  Expected<Json> Run() override {
    auto root = file::Read(root_ca_file_, file::kSmallFileLimit);
    if (!root || !crypto::Certificate::ChainFromPem(AsString(*root))) {
      return Fail(CoreErrc::kInvalidArgument, root_ca_file_ + " is not a PEM certificate");
    }
    const Session session{url_, token_, std::string(AsString(*root)), tenant_};
    // Proves the URL, the pinned root and the token before saving them.
    if (auto check = Request(session, "GET", "/v1/tenants"); !check) {
      return std::unexpected(std::move(check.error()).WithContext("login failed"));
    }
    const auto path = ConfigPath();
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    const Json config{
        {"url", url_}, {"token", token_}, {"root_ca", session.root_ca_pem}, {"tenant", tenant_}};
    if (auto ok = file::WriteDurably(path, AsBytes(config.dump(2)), 0600); !ok) {
      return std::unexpected(ok.error());
    }
    return Json("logged in to " + url_ + "\n");
  }

 private:
  std::string url_, token_, root_ca_file_, tenant_;
};

// --- tenant ---

class TenantCreate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { verb->add_option("--name", name_)->required(); }
  Output Format() const override { return {.columns = {"id", "name"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", "/v1/tenants", api::TenantRequest{name_}), api::TenantFrom);
  }

 private:
  std::string name_;
};

class TenantList final : public ServiceCommand {
 public:
  Output Format() const override { return {.columns = {"id", "name"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants"), api::TenantFrom);
  }
};

class TenantShow final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = {"id", "name", "created_at"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s)), api::TenantFrom);
  }

 private:
  TenantOption tenant_;
};

// --- role ---

class RoleAdd final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--role", role_)
        ->required()
        ->check(CLI::IsMember({"Administrator", "Contributor", "Reader"}));
    verb->add_option("--description", description_);
    tenant_.AddTo(verb);
  }
  Output Format() const override { return {.columns = {"id", "role", "token"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", "/v1/tenants/" + tenant_.Of(s) + "/tokens",
                         api::TokenRequest{role_, description_}),
                 api::TokenFrom);
  }

 private:
  std::string role_, description_;
  TenantOption tenant_;
};

class RoleList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = {"id", "role", "description", "revoked"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/tokens"), api::TokenFrom);
  }

 private:
  TenantOption tenant_;
};

class RoleDelete final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--id", token_id_)->required();
    tenant_.AddTo(verb);
  }
  Output Format() const override { return {.columns = {"id", "revoked"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "DELETE", "/v1/tenants/" + tenant_.Of(s) + "/tokens/" + token_id_),
                 api::TokenFrom);
  }

 private:
  std::string token_id_;
  TenantOption tenant_;
};

// --- device ---

// claim, list, show, revoke, restore: one shape, told apart by the verb.
void PrintDevice(std::ostream& out, const Json& doc) {
  auto d = api::DeviceFrom(doc);
  if (!d) {
    out << d.error().message() << "\n";
    return;
  }
  const auto root = d->publisher_root.value_or(api::PublisherPin{});
  out << "Device ID:        " << d->id << "\n"
      << "Revoked:          " << (d->revoked ? "yes" : "no") << "\n"
      << "Device group:     " << d->device_group_id << "\n"
      << "Board:            " << d->board << "\n"
      << "Verdict:          " << d->verdict << (d->reasons.empty() ? "" : " (" + d->reasons + ")")
      << "\n"
      << "Root of trust:    " << d->root_of_trust << "\n"
      << "Certificates to:  " << UtcTime(d->certificate_expiry) << "\n"
      << "Last check-in:    " << UtcTime(d->last_check_in) << "\n"
      << "OS version:       " << d->os_version << " (release " << d->os_release << ")\n"
      << "Publisher root:   " << root.status << "\n"
      << "  pinned:         " << root.pinned << "\n"
      << "  tenant's:       " << root.tenant << "\n"
      << "Targets, as the device last reported them:\n";
  for (const auto& image : d->images) {
    out << fmt::format("  {}  {}{}\n", image.image_id, image.state,
                       image.reason.empty() ? "" : ": " + image.reason);
  }
  if (const auto& e = d->latest_error_report) {
    out << "Latest error:     " << e->event_type << " " << e->event_class << " x" << e->event_count
        << ", " << UtcTime(e->start_time) << " to " << UtcTime(e->end_time) << "\n"
        << "  " << e->description << "\n";
  }
}

class DeviceVerb final : public ServiceCommand {
 public:
  explicit DeviceVerb(std::string verb) : verb_(std::move(verb)) {}
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    if (verb_ != "list") verb->add_option("--device", device_, "Device ID")->required();
  }
  Output Format() const override {
    if (verb_ == "show") return {.table = PrintDevice};
    return {.columns = {"id", "revoked", "attestation.verdict", "attestation.certificate_expiry",
                        "attestation.reasons"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    const std::string base = fmt::format("/v1/tenants/{}/devices", tenant_.Of(s));
    const std::string one = base + "/" + device_;
    if (verb_ == "claim") {
      return Typed(Request(s, "POST", base, api::DeviceClaim{device_}), api::DeviceFrom);
    }
    if (verb_ == "list") return Typed(Request(s, "GET", base), api::DeviceFrom);
    if (verb_ == "show") return Typed(Request(s, "GET", one), api::DeviceFrom);
    return Typed(Request(s, "POST", one + "/" + verb_), api::DeviceFrom);
  }

 private:
  std::string verb_;
  std::string device_;
  TenantOption tenant_;
};

void PrintAttestation(std::ostream& out, const Json& doc) {
  auto a = api::AttestationFrom(doc);
  if (!a) {
    out << a.error().message() << "\n";
    return;
  }
  out << "Device ID:       " << a->device_id << "\n"
      << "Verdict:         " << a->verdict << (a->reasons.empty() ? "" : " (" + a->reasons + ")")
      << "\n"
      << "Attested:        " << UtcTime(a->at) << "\n"
      << "Root of trust:   " << a->root_of_trust << "\n"
      << "OS release:      " << a->os_release << "\n"
      << "Boot PCRs:" << (a->boot_pcrs.empty() ? " none proven" : "") << "\n";
  for (const auto& [index, value] : a->boot_pcrs) out << fmt::format("  {:<3} {}\n", index, value);
  out << "Attempts, newest first (unproven ones did not change the verdict):\n";
  for (const auto& attempt : a->attempts) {
    out << fmt::format("  {}  {:<9}  {:<8}  {}\n", UtcTime(attempt.at), attempt.verdict,
                       attempt.proven ? "proven" : "unproven", attempt.reasons);
  }
}

class DeviceShowAttestation final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device", device_, "Device ID")->required();
  }
  Output Format() const override { return {.table = PrintAttestation}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(
        Request(s, "GET",
                fmt::format("/v1/tenants/{}/devices/{}/attestation", tenant_.Of(s), device_)),
        api::AttestationFrom);
  }

 private:
  std::string device_;
  TenantOption tenant_;
};

class DeviceImagesTargeted final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--device", device_, "Device ID")->required();
  }
  Output Format() const override {
    return {.columns = {"id", "kind", "name", "version", "security_version", "size"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(
        Request(s, "GET",
                fmt::format("/v1/tenants/{}/devices/{}/targeted-images", tenant_.Of(s), device_)),
        api::ImageFrom);
  }

 private:
  std::string device_;
  TenantOption tenant_;
};

// --- attestation-policy ---

const std::vector<std::string> kPolicyColumns = {"allow_software_root_of_trust",
                                                 "golden_boot_pcrs"};

class PolicyShow final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = kPolicyColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", fmt::format("/v1/tenants/{}/attestation-policy", tenant_.Of(s))),
                 api::AttestationPolicyFrom);
  }

 private:
  TenantOption tenant_;
};

class PolicyUpdate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--allow-software-root-of-trust", change_.allow_software_root_of_trust,
                     "true or false (refused by default: no hardware protection)");
    auto* pin = verb->add_option("--pin-boot-pcrs-from-device", change_.pin_boot_pcrs_from_device,
                                 "Device ID whose last proven boot PCRs to pin");
    verb->add_flag("--clear-boot-pcrs", change_.clear_golden_boot_pcrs,
                   "Remove the golden boot PCRs")
        ->excludes(pin);
  }
  Output Format() const override { return {.columns = kPolicyColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    if (!change_.allow_software_root_of_trust && !change_.pin_boot_pcrs_from_device &&
        !change_.clear_golden_boot_pcrs) {
      return Fail(CoreErrc::kInvalidArgument,
                  "give --allow-software-root-of-trust, --pin-boot-pcrs-from-device or "
                  "--clear-boot-pcrs");
    }
    return Typed(Request(s, "POST", fmt::format("/v1/tenants/{}/attestation-policy", tenant_.Of(s)),
                         change_),
                 api::AttestationPolicyFrom);
  }

 private:
  api::AttestationPolicyChange change_;
  TenantOption tenant_;
};

// --- os-release ---

class OsReleaseAdd final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--version", version_)->required();
    verb->add_option("--feed", feed_)->check(CLI::IsMember({"retail", "retail-eval"}));
    verb->add_option("--component", components_, "COMPONENT=SHA256HEX, repeated")->required();
  }
  Output Format() const override { return {.columns = {"version", "feed"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    api::OsReleaseRegistration registration{version_, feed_, {}};
    for (const auto& c : components_) {
      const auto eq = c.find('=');
      if (eq == std::string::npos) {
        return Fail(CoreErrc::kInvalidArgument, "--component \"" + c + "\" is not NAME=DIGEST");
      }
      registration.components.emplace_back(c.substr(0, eq), c.substr(eq + 1));
    }
    return Typed(Request(s, "POST", "/v1/os-releases", registration), api::OsReleaseFrom);
  }

 private:
  std::string version_, feed_ = "retail";
  std::vector<std::string> components_;
};

class OsReleaseList final : public ServiceCommand {
 public:
  Output Format() const override {
    return {.columns = {"version", "feed", "created_at", "retired_reason"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/os-releases"), api::OsReleaseFrom);
  }
};

class OsReleasePublish final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--image", image_, "The OS image (image add, by the platform)")->required();
    verb->add_option("--board-image", board_image_, "The board image it runs with")->required();
    verb->add_option("--feed", feed_, "Retail Evaluation first, then promote to Retail")
        ->check(CLI::IsMember({"retail", "retail-eval"}))
        ->capture_default_str();
  }
  Output Format() const override { return {.columns = {"version", "feed", "image_id"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", "/v1/os-releases/publish",
                         api::OsReleasePublication{image_, board_image_, feed_}),
                 api::OsReleaseFrom);
  }

 private:
  std::string image_, board_image_, feed_ = "retail-eval";
};

class OsReleasePromote final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { verb->add_option("--version", version_)->required(); }
  Output Format() const override { return {.columns = {"version", "feed"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", "/v1/os-releases/" + version_ + "/promote"),
                 api::OsReleaseFrom);
  }

 private:
  std::string version_;
};

class OsReleaseRetire final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--version", version_)->required();
    verb->add_option("--reason", reason_, "Why, shown to operators")->required();
  }
  Output Format() const override { return {.columns = {"version", "retired_reason"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "POST", "/v1/os-releases/" + version_ + "/retire",
                         api::OsReleaseRetirement{reason_}),
                 api::OsReleaseFrom);
  }

 private:
  std::string version_, reason_;
};

// --- ca-certificate ---

class CaList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override {
    return {.columns = {"index", "state", "not_after", "activates_at", "thumbprint"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/ca-certificates"),
                 api::CaCertificateFrom);
  }

 private:
  TenantOption tenant_;
};

// download and download-crl: a PEM document of a CA generation, written to --destination.
class CaDownload final : public ServiceCommand {
 public:
  explicit CaDownload(bool crl) : crl_(crl) {}
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--destination", destination_, "File to write")->required();
    verb->add_option("--index", index_,
                     "The CA generation (see ca-certificate list; default: the active one)");
    tenant_.AddTo(verb);
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    std::string path =
        index_ > 0 ? "/ca-certificates/" + std::to_string(index_) : (crl_ ? "" : "/ca-certificate");
    if (crl_) path += "/crl";
    auto pem = Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + path);
    if (!pem) return pem;
    if (auto ok = file::WriteDurably(destination_, AsBytes(pem->get<std::string>()), 0644); !ok) {
      return std::unexpected(ok.error());
    }
    return Json("wrote " + destination_ + "\n");
  }

 private:
  bool crl_;
  std::string destination_;
  int index_ = 0;
  TenantOption tenant_;
};

// --- audit ---

class AuditList final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override {
    return {.columns = {"sequence", "at", "actor", "action", "target"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/audit"), api::AuditEntryFrom);
  }

 private:
  TenantOption tenant_;
};

// Azure Sphere's `tenant download-error-report`: the last 14 days of the tenant's devices' error
// reports (crashes, denials, update and attestation failures); `--output csv` for a spreadsheet.
class TenantErrorReport final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override {
    return {.columns = {"device_id", "event_type", "event_class", "event_count", "description",
                        "start_time", "end_time"}};
  }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Typed(Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/error-reports"),
                 api::ErrorReportFrom);
  }

 private:
  TenantOption tenant_;
};

CLI::App* Noun(CLI::App& app, const char* name, const char* help) {
  return app.add_subcommand(name, help)->require_subcommand(1);
}

}  // namespace

void AddOperatorCommands(CLI::App& app, Registry& r) {
  r.Add<Login>(
      app.add_subcommand("login", "Save the service URL, an API token and the pinned root CA"));

  auto* tenant = Noun(app, "tenant", "Tenants");
  r.Add<TenantCreate>(tenant->add_subcommand("create", "Create a tenant (platform administrator)"));
  r.Add<TenantList>(tenant->add_subcommand("list", "List tenants"));
  r.Add<TenantShow>(tenant->add_subcommand("show", "Show a tenant"));
  r.Add<TenantErrorReport>(tenant->add_subcommand(
      "download-error-report", "Devices' error reports of the last 14 days (--output csv|json)"));

  auto* role = Noun(app, "role", "API tokens and their roles");
  r.Add<RoleAdd>(role->add_subcommand("add", "Issue a token with a role (shown once)"));
  r.Add<RoleList>(role->add_subcommand("list", "List tokens"));
  r.Add<RoleDelete>(role->add_subcommand("delete", "Revoke a token"));

  auto* device = Noun(app, "device", "Devices");
  for (const auto& [verb, help] : std::vector<std::pair<std::string, std::string>>{
           {"claim", "Claim a device for the tenant (once, irreversible)"},
           {"list", "List the tenant's devices"},
           {"show", "Show a device and its last attestation"},
           {"revoke", "Revoke a device: it gets no more certificates"},
           {"restore", "Undo a revocation"}}) {
    r.Add<DeviceVerb>(device->add_subcommand(verb, help), verb);
  }
  AddDeviceUpdateCommand(*device, r);
  auto* images = device->add_subcommand("image", "The device's images")->require_subcommand(1);
  r.Add<DeviceImagesTargeted>(images->add_subcommand(
      "list-targeted", "The images the device is told to fetch: its OS release, board and apps"));
  r.Add<DeviceShowAttestation>(device->add_subcommand(
      "show-attestation",
      "Show a device's attestation: verdict, root of trust, OS release, boot PCRs and attempts"));

  auto* policy =
      Noun(app, "attestation-policy", "What the verifier requires of the tenant's devices");
  r.Add<PolicyShow>(policy->add_subcommand("show", "Show the tenant's attestation policy"));
  r.Add<PolicyUpdate>(policy->add_subcommand(
      "update",
      "Accept or refuse software roots of trust; pin the boot PCRs a trusted device proved as the "
      "tenant's golden set, or clear them"));

  auto* os_release = Noun(app, "os-release", "OS releases (reference values)");
  r.Add<OsReleaseAdd>(
      os_release->add_subcommand("add", "Register an OS release (platform administrator)"));
  r.Add<OsReleasePublish>(os_release->add_subcommand(
      "publish",
      "Publish an OS release from an OS image and its board image: devices on the feed are "
      "offered it, and attest to the digests the packages recorded (platform administrator)"));
  r.Add<OsReleasePromote>(os_release->add_subcommand(
      "promote", "Move an OS release from Retail Evaluation to Retail (platform administrator)"));
  r.Add<OsReleaseList>(
      os_release->add_subcommand("list", "List OS releases (platform administrator)"));
  r.Add<OsReleaseRetire>(os_release->add_subcommand(
      "retire", "Retire an OS release: devices running it are untrusted (platform administrator)"));

  auto* ca = Noun(app, "ca-certificate", "The tenant CA");
  r.Add<CaList>(ca->add_subcommand(
      "list", "Every generation of the tenant CA, with its state (Active, Inactive, Expired)"));
  r.Add<CaDownload>(
      ca->add_subcommand("download", "Save the tenant CA chain (PEM) for brokers and clouds"),
      false);
  r.Add<CaDownload>(
      ca->add_subcommand("download-crl",
                         "Save the CRL of the tenant CA (PEM): the certificates of revoked "
                         "devices, for brokers and clouds; fetch it at least daily"),
      true);

  auto* audit = Noun(app, "audit", "The audit log");
  r.Add<AuditList>(audit->add_subcommand("list", "Recent changes, newest first"));
}

}  // namespace aspis::cli
