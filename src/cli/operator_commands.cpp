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
    return Request(s, "POST", "/v1/tenants", {{"name", name_}});
  }

 private:
  std::string name_;
};

class TenantList final : public ServiceCommand {
 public:
  Output Format() const override { return {.columns = {"id", "name"}}; }

 protected:
  Expected<Json> Call(const Session& s) override { return Request(s, "GET", "/v1/tenants"); }
};

class TenantShow final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override { tenant_.AddTo(verb); }
  Output Format() const override { return {.columns = {"id", "name", "created_at"}}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    return Request(s, "GET", "/v1/tenants/" + tenant_.Of(s));
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
    return Request(s, "POST", "/v1/tenants/" + tenant_.Of(s) + "/tokens",
                   {{"role", role_}, {"description", description_}});
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
    return Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/tokens");
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
    return Request(s, "DELETE", "/v1/tenants/" + tenant_.Of(s) + "/tokens/" + token_id_);
  }

 private:
  std::string token_id_;
  TenantOption tenant_;
};

// --- device ---

// claim, list, show, revoke, restore: one shape, told apart by the verb.
void PrintDevice(std::ostream& out, const Json& d) {
  const Json attestation = d.value("attestation", Json::object());
  const Json root = d.value("publisher_root", Json::object());
  const std::string reasons = attestation.value("reasons", "");
  out << "Device ID:        " << d.value("id", "") << "\n"
      << "Revoked:          " << (d.value("revoked", false) ? "yes" : "no") << "\n"
      << "Device group:     " << d.value("device_group_id", "") << "\n"
      << "Verdict:          " << attestation.value("verdict", "")
      << (reasons.empty() ? "" : " (" + reasons + ")") << "\n"
      << "Certificates to:  " << UtcTime(attestation.value("certificate_expiry", Json(0))) << "\n"
      << "Last check-in:    " << UtcTime(d.value("last_check_in", Json(0))) << "\n"
      << "OS version:       " << d.value("os_version", "") << " (release "
      << d.value("os_release", "") << ")\n"
      << "Publisher root:   " << root.value("status", "") << "\n"
      << "  pinned:         " << root.value("pinned", "") << "\n"
      << "  tenant's:       " << root.value("tenant", "") << "\n"
      << "Targets, as the device last reported them:\n";
  for (const auto& image : d.value("images", Json::array())) {
    const std::string reason = image.value("reason", "");
    out << fmt::format("  {}  {}{}\n", image.value("image_id", ""), image.value("state", ""),
                       reason.empty() ? "" : ": " + reason);
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
    if (verb_ == "claim") return Request(s, "POST", base, {{"device_id", device_}});
    if (verb_ == "list") return Request(s, "GET", base);
    const std::string one = base + "/" + device_;
    if (verb_ == "show") return Request(s, "GET", one);
    return Request(s, "POST", one + "/" + verb_);
  }

 private:
  std::string verb_;
  std::string device_;
  TenantOption tenant_;
};

void PrintAttestation(std::ostream& out, const Json& a) {
  const std::string reasons = a.value("reasons", "");
  out << "Device ID:       " << a.value("device_id", "") << "\n"
      << "Verdict:         " << a.value("verdict", "")
      << (reasons.empty() ? "" : " (" + reasons + ")") << "\n"
      << "Attested:        " << UtcTime(a.value("at", Json(0))) << "\n"
      << "Root of trust:   " << a.value("root_of_trust", "") << "\n"
      << "OS release:      " << a.value("os_release", "") << "\n"
      << "Boot PCRs:";
  const Json boot_pcrs = a.value("boot_pcrs", Json::object());
  out << (boot_pcrs.empty() ? " none proven" : "") << "\n";
  for (const auto& [index, value] : boot_pcrs.items()) {
    out << fmt::format("  {:<3} {}\n", index,
                       value.is_string() ? value.get<std::string>() : value.dump());
  }
  out << "Attempts, newest first (unproven ones did not change the verdict):\n";
  for (const auto& attempt : a.value("attempts", Json::array())) {
    out << fmt::format("  {}  {:<9}  {:<8}  {}\n", UtcTime(attempt.value("at", Json(0))),
                       attempt.value("verdict", ""),
                       attempt.value("proven", false) ? "proven" : "unproven",
                       attempt.value("reasons", ""));
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
    return Request(s, "GET",
                   fmt::format("/v1/tenants/{}/devices/{}/attestation", tenant_.Of(s), device_));
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
    return Request(
        s, "GET", fmt::format("/v1/tenants/{}/devices/{}/targeted-images", tenant_.Of(s), device_));
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
    return Request(s, "GET", fmt::format("/v1/tenants/{}/attestation-policy", tenant_.Of(s)));
  }

 private:
  TenantOption tenant_;
};

class PolicyUpdate final : public ServiceCommand {
 public:
  void AddOptions(CLI::App* verb) override {
    tenant_.AddTo(verb);
    verb->add_option("--allow-software-root-of-trust", allow_software_,
                     "true or false (refused by default: no hardware protection)");
    auto* pin = verb->add_option("--pin-boot-pcrs-from-device", pin_from_,
                                 "Device ID whose last proven boot PCRs to pin");
    verb->add_flag("--clear-boot-pcrs", clear_pin_, "Remove the golden boot PCRs")->excludes(pin);
  }
  Output Format() const override { return {.columns = kPolicyColumns}; }

 protected:
  Expected<Json> Call(const Session& s) override {
    Json body = Json::object();
    if (allow_software_) body["allow_software_root_of_trust"] = *allow_software_;
    if (!pin_from_.empty()) body["pin_boot_pcrs_from_device"] = pin_from_;
    if (clear_pin_) body["clear_golden_boot_pcrs"] = true;
    if (body.empty()) {
      return Fail(CoreErrc::kInvalidArgument,
                  "give --allow-software-root-of-trust, --pin-boot-pcrs-from-device or "
                  "--clear-boot-pcrs");
    }
    return Request(s, "POST", fmt::format("/v1/tenants/{}/attestation-policy", tenant_.Of(s)),
                   body);
  }

 private:
  std::optional<bool> allow_software_;
  std::string pin_from_;
  bool clear_pin_ = false;
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
    Json map = Json::object();
    for (const auto& c : components_) {
      const auto eq = c.find('=');
      if (eq == std::string::npos) {
        return Fail(CoreErrc::kInvalidArgument, "--component \"" + c + "\" is not NAME=DIGEST");
      }
      map[c.substr(0, eq)] = c.substr(eq + 1);
    }
    return Request(s, "POST", "/v1/os-releases",
                   {{"version", version_}, {"feed", feed_}, {"components", map}});
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
  Expected<Json> Call(const Session& s) override { return Request(s, "GET", "/v1/os-releases"); }
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
    return Request(s, "POST", "/v1/os-releases/publish",
                   wire::api::OsReleasePublication{image_, board_image_, feed_});
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
    return Request(s, "POST", "/v1/os-releases/" + version_ + "/promote");
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
    return Request(s, "POST", "/v1/os-releases/" + version_ + "/retire", {{"reason", reason_}});
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
    return Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/ca-certificates");
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
    return Request(s, "GET", "/v1/tenants/" + tenant_.Of(s) + "/audit");
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
