#include "service/api/api.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/verdict.hpp"
#include "crypto/dsse.hpp"
#include "crypto/encoding.hpp"
#include "crypto/sha256.hpp"
#include "package/manifest.hpp"
#include "rot/quote.hpp"
#include "service/api/catalog_routes.hpp"
#include "service/api/common.hpp"
#include "service/api/device_routes.hpp"
#include "service/api/product_routes.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/deploy/targets.hpp"
#include "wire/attestation.hpp"
#include "wire/operator_api.hpp"

namespace aspis::service::api {

namespace {

using namespace std::chrono_literals;
using http::Request;
using http::Response;
using json::Json;
using store::Role;

constexpr std::size_t kAuditPage = 100;
// Relying parties fetch a new CRL at least this often.
constexpr std::chrono::seconds kCrlLifetime = 24h;
// A CRL is served again while its list is current and it is younger than this.
constexpr std::chrono::seconds kCrlReuse = 1h;

Json PolicyJson(const store::AttestationPolicy& p) {
  return {{"allow_software_root_of_trust", p.allow_software_root_of_trust},
          {"golden_boot_pcrs", BootPcrsJson(p.golden_boot_pcrs)}};
}

Json TenantJson(const store::Tenant& t) {
  return {{"id", t.id}, {"name", t.name}, {"created_at", t.created_at}};
}

// The {index} of a CA generation route.
std::optional<std::int64_t> CaIndex(const Request& request) {
  std::int64_t index = 0;
  const std::string_view text = request.Param("index");
  if (std::from_chars(text.data(), text.data() + text.size(), index).ec != std::errc()) {
    return std::nullopt;
  }
  return index;
}

Json ReleaseJson(const store::OsRelease& r) {
  return wire::api::ToJson(wire::api::OsRelease{r.version, r.feed, r.created_at, r.retired_reason,
                                                r.image_id, r.board_image_id, r.components});
}

Json CaJson(const ca::Generation& g) {
  return {{"index", g.number},
          {"thumbprint", g.thumbprint},
          {"subject", g.certificate.SubjectCommonName()},
          {"not_before", UnixSeconds(g.certificate.NotBefore())},
          {"not_after", UnixSeconds(g.certificate.NotAfter())},
          {"activates_at", g.activates_at},
          {"state", ca::StateName(g.state)}};
}

bool IsDeviceId(std::string_view id) {
  return id.size() == 64 && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

class Api {
 public:
  explicit Api(const Context& c) : c_(c), cas_(c.cas) {}

  http::Handler Authed(PlainHandler handler) const {
    return api::Authed(c_.store, std::move(handler));
  }
  http::Handler ForTenant(Role needed, TenantHandler handler) const {
    return api::ForTenant(c_.store, needed, std::move(handler));
  }
  Expected<void> Audited(const Principal& who, std::string_view tenant, std::string_view action,
                         const std::string& target,
                         const std::function<Expected<void>()>& change) const {
    return api::Audited(c_.store, c_.clock, who, tenant, action, target, change);
  }

  Response CreateTenant(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden", "only a platform administrator creates tenants");
    }
    auto body = Body(request);
    if (!body) return Response::Problem(400, "Bad request", body.error().message());
    auto name = json::GetString(*body, "name");
    if (!name || name->empty() || name->size() > 100) {
      return Response::Problem(400, "Bad request", "\"name\" must be 1 to 100 characters");
    }
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    const store::Tenant tenant{*id, *name, UnixSeconds(c_.clock.Now())};
    auto keys = cas_.MakeFirst(tenant);
    if (!keys) return FromError(keys.error());
    auto created = Audited(who, tenant.id, "tenant.create", tenant.id, [&]() -> Expected<void> {
      if (auto ok = c_.store.CreateTenant(tenant); !ok) return ok;
      if (auto ok = c_.store.AddTenantCa(keys->ca); !ok) return ok;
      return c_.store.PutTenantKey(keys->deployment);
    });
    if (!created) return FromError(created.error());
    return Response::Json(201, TenantJson(tenant).dump());
  }

  Response CaChain(std::string_view tenant, std::optional<std::int64_t> index) const {
    auto generations = cas_.List(tenant);
    if (!generations) return FromError(generations.error());
    const auto chosen =
        std::find_if(generations->begin(), generations->end(), [&](const ca::Generation& g) {
          return index ? g.number == *index : g.state == ca::State::kActive;
        });
    if (chosen == generations->end()) {
      return Response::Problem(404, "Not found",
                               index ? "the tenant has no CA certificate with that index"
                                     : "the tenant has no active CA certificate");
    }
    auto pem = chosen->certificate.ToPem();
    auto root = c_.data.root_ca.ToPem();
    if (!pem || !root) return FromError(!pem ? pem.error() : root.error());
    return Response::Text(200, *pem + *root, "application/x-pem-file");
  }

  // The CRL of the active generation, or of generation {index}: every unexpired certificate it
  // issued to a device that was revoked since. The list is read on each request; a new CRL, with
  // the next CRL number, is issued when it changed or the last is an hour old, so it is current
  // the moment a device is revoked (by any instance) and always valid for 23 hours or more.
  Response Crl(std::string_view tenant, std::optional<std::int64_t> index) const {
    auto signer = index ? cas_.SignerOf(tenant, *index) : cas_.Active(tenant);
    if (!signer) return FromError(signer.error());
    const auto now = c_.clock.Now();
    const std::int64_t generation = signer->generation.number;
    auto revoked = c_.store.ListRevokedCertificates(tenant, generation, UnixSeconds(now));
    if (!revoked) return FromError(revoked.error());
    const auto id = std::pair{std::string(tenant), generation};
    {
      const std::lock_guard lock(crl_mutex_);
      const auto cached = crls_.find(id);
      if (cached != crls_.end() && cached->second.revoked == *revoked &&
          now >= cached->second.issued_at && now - cached->second.issued_at < kCrlReuse) {
        return Response::Text(200, cached->second.pem, "application/x-pem-file");
      }
    }
    auto number = c_.store.NextCrlNumber(tenant, generation);
    if (!number) return FromError(number.error());
    crypto::CrlProfile profile{.number = static_cast<std::uint64_t>(*number),
                               .this_update = now,
                               .next_update = now + kCrlLifetime,
                               .revoked = {}};
    for (const auto& r : *revoked) {
      profile.revoked.push_back({r.serial, Clock::TimePoint(std::chrono::seconds(r.revoked_at))});
    }
    auto crl = crypto::IssueCrl(signer->generation.certificate, signer->key, profile);
    if (!crl) return FromError(crl.error());
    {
      const std::lock_guard lock(crl_mutex_);
      crls_.insert_or_assign(id, CachedCrl{std::move(*revoked), now, *crl});
    }
    return Response::Text(200, *crl, "application/x-pem-file");
  }

  Response ListTenants(const Principal& who) const {
    Json list = Json::array();
    if (who.platform()) {
      auto tenants = c_.store.ListTenants();
      if (!tenants) return FromError(tenants.error());
      for (const auto& t : *tenants) list.push_back(TenantJson(t));
    } else {
      auto tenant = c_.store.GetTenant(who.tenant);
      if (!tenant) return FromError(tenant.error());
      list.push_back(TenantJson(*tenant));
    }
    return Response::Json(200, list.dump());
  }

  Response CreateToken(const Request& request, const Principal& who,
                       std::string_view tenant) const {
    auto body = Body(request);
    if (!body) return Response::Problem(400, "Bad request", body.error().message());
    auto role_name = json::GetString(*body, "role");
    auto role = role_name ? store::ParseRole(*role_name)
                          : Expected<Role>(std::unexpected(role_name.error()));
    if (!role) return Response::Problem(400, "Bad request", role.error().message());
    const auto description_field = body->find("description");
    if (description_field != body->end() && !description_field->is_string()) {
      return Response::Problem(400, "Bad request", "\"description\" must be a string");
    }
    const std::string description =
        description_field == body->end() ? "" : description_field->get<std::string>();
    if (auto missing = c_.store.GetTenant(tenant); !missing) return FromError(missing.error());
    std::string secret;
    std::string id;
    auto created = Audited(who, tenant, "token.create", id, [&]() -> Expected<void> {
      auto made = api::CreateToken(c_.store, c_.clock, tenant, *role, description, &id);
      if (!made) return std::unexpected(made.error());
      secret = *made;
      return {};
    });
    if (!created) return FromError(created.error());
    return Response::Json(201, Json{{"id", id},
                                    {"role", store::RoleName(*role)},
                                    {"description", description},
                                    {"token", secret}}
                                   .dump());
  }

  Response AddOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden", "only a platform administrator adds OS releases");
    }
    auto body = Body(request);
    if (!body) return Response::Problem(400, "Bad request", body.error().message());
    auto version = json::GetString(*body, "version");
    auto feed = json::GetString(*body, "feed");
    auto components = json::GetObject(*body, "components");
    if (!version || version->empty() || version->size() > 100 || !feed ||
        (*feed != "retail" && *feed != "retail-eval") || !components) {
      return Response::Problem(400, "Bad request",
                               "an OS release needs \"version\" (1 to 100 characters), \"feed\" "
                               "(retail or retail-eval) and \"components\" (component: hex "
                               "SHA-256)");
    }
    store::OsRelease release{*version, *feed, UnixSeconds(c_.clock.Now()), {}, {}, 0};
    // A release is a whole launch: a digest for each launch component and nothing else.
    for (const std::string_view component : wire::kLaunchComponents) {
      const auto digest = (*components)->find(std::string(component));
      if (digest == (*components)->end() || !digest->is_string() ||
          !IsDeviceId(digest->get<std::string>())) {
        return Response::Problem(
            400, "Bad request",
            "component \"" + std::string(component) + "\" needs a lowercase hex SHA-256 digest");
      }
      release.components.emplace_back(component, digest->get<std::string>());
    }
    if ((*components)->size() != wire::kLaunchComponents.size()) {
      return Response::Problem(400, "Bad request",
                               "an OS release lists exactly the launch components: os, aspisd, "
                               "board and trust-bundle");
    }
    if (auto ok = Audited(who, "", "os-release.add", release.version,
                          [&] { return c_.store.AddOsRelease(release); });
        !ok) {
      return FromError(ok.error());
    }
    return Response::Json(201, Json{{"version", release.version}, {"feed", release.feed}}.dump());
  }

  // An OS release from packages: the OS image's signed measurements and the board image's, so the
  // reference values are what the OS publisher signed, never typed by hand.
  Response PublishOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden",
                               "only a platform administrator publishes OS releases");
    }
    auto publication = wire::api::ParseOsReleasePublication(request.body);
    if (!publication) return Response::Problem(400, "Bad request", publication.error().message());
    const std::string& feed = publication->feed;
    auto os = PlatformPackage(publication->image_id, package::Kind::kOs);
    if (!os) return Response::Problem(400, "Bad request", os.error().message());
    auto board = PlatformPackage(publication->board_image_id, package::Kind::kBoard);
    if (!board) return Response::Problem(400, "Bad request", board.error().message());
    const auto& boards = os->second.target_boards;
    if (std::none_of(board->second.target_boards.begin(), board->second.target_boards.end(),
                     [&](const std::string& b) {
                       return std::find(boards.begin(), boards.end(), b) != boards.end();
                     })) {
      return Response::Problem(400, "Bad request",
                               "the board image is for none of the OS image's boards");
    }
    store::OsRelease release{
        os->second.version, feed,           UnixSeconds(c_.clock.Now()), {}, {}, 0,
        os->first.id,       board->first.id};
    for (const auto& manifest : {os->second, board->second}) {
      for (const auto& [component, digest] : manifest.measurements) {
        release.components.emplace_back(component, crypto::ToHex(digest));
      }
    }
    if (auto ok = Audited(who, "", "os-release.publish", release.version,
                          [&] { return c_.store.AddOsRelease(release); });
        !ok) {
      return FromError(ok.error());
    }
    return Response::Json(201, ReleaseJson(release).dump());
  }

  Response PromoteOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden",
                               "only a platform administrator promotes OS releases");
    }
    const std::string version(request.Param("version"));
    if (auto ok = Audited(who, "", "os-release.promote", version,
                          [&] { return c_.store.PromoteOsRelease(version); });
        !ok) {
      return FromError(ok.error());
    }
    return Response::Json(200, Json{{"version", version}, {"feed", "retail"}}.dump());
  }

  Response RetireOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden",
                               "only a platform administrator retires OS releases");
    }
    auto body = Body(request);
    auto reason = body ? json::GetString(*body, "reason")
                       : Expected<std::string>(std::unexpected(body.error()));
    if (!reason || reason->empty() || reason->size() > 500) {
      return Response::Problem(400, "Bad request", "\"reason\" must be 1 to 500 characters");
    }
    const std::string version(request.Param("version"));
    if (auto ok = Audited(who, "", "os-release.retire", version,
                          [&] {
                            return c_.store.RetireOsRelease(version, *reason,
                                                            UnixSeconds(c_.clock.Now()));
                          });
        !ok) {
      return FromError(ok.error());
    }
    return Response::Json(200, Json{{"version", version}, {"retired_reason", *reason}}.dump());
  }

  // A platform image of `kind` and its signed manifest. Errors: kNotFound, kInvalidArgument.
  Expected<std::pair<store::Image, package::Manifest>> PlatformPackage(const std::string& id,
                                                                       package::Kind kind) const {
    auto image = c_.store.GetImage("", id);
    if (!image) {
      return Fail(CoreErrc::kNotFound, "no platform image \"" + id.substr(0, 64) + "\"");
    }
    auto manifest = package::ParseManifest(image->manifest);
    if (!manifest) return std::unexpected(manifest.error());
    if (manifest->kind != kind) {
      return Fail(CoreErrc::kInvalidArgument, "image " + id + " is " +
                                                  std::string(package::KindName(manifest->kind)) +
                                                  ", not " + std::string(package::KindName(kind)));
    }
    return std::pair{std::move(*image), std::move(*manifest)};
  }

  // The device, the publisher root it pinned against the tenant's, and where each target it was
  // last told to fetch stands.
  Response ShowDevice(std::string_view tenant, std::string_view device_id) const {
    auto device = c_.store.GetDevice(tenant, device_id);
    if (!device) return FromError(device.error());
    auto images = c_.store.ListDeviceImages(tenant, device_id);
    if (!images) return FromError(images.error());
    auto keys = c_.store.GetPublisherKeySet(tenant);
    if (!keys) return FromError(keys.error());
    const std::string tenant_root = *keys ? (*keys)->root_fingerprint : "";
    std::string pin = "matches the tenant's";
    if (device->publisher_root.empty()) {
      pin = "none pinned yet";
    } else if (device->publisher_root != tenant_root) {
      pin = "DIFFERS from the tenant's: the device trusts another publisher root";
    }
    Json shown = DeviceJson(*device);
    shown["publisher_root"] = {
        {"pinned", device->publisher_root}, {"tenant", tenant_root}, {"status", pin}};
    Json list = Json::array();
    for (const auto& i : *images) {
      list.push_back({{"image_id", i.image_id},
                      {"state", i.state},
                      {"reason", i.reason},
                      {"updated_at", i.updated_at}});
    }
    shown["images"] = std::move(list);
    return Response::Json(200, shown.dump());
  }

  Response ShowAttestation(std::string_view tenant, std::string_view device_id) const {
    auto device = c_.store.GetDevice(tenant, device_id);
    if (!device) return FromError(device.error());
    auto attempts = c_.store.ListAttestationAttempts(tenant, device_id);
    if (!attempts) return FromError(attempts.error());
    Json list = Json::array();
    for (const auto& a : *attempts) {
      list.push_back(
          {{"at", a.at}, {"verdict", a.verdict}, {"reasons", a.reasons}, {"proven", a.proven}});
    }
    return Response::Json(200, Json{{"device_id", device->id},
                                    {"verdict", device->verdict},
                                    {"reasons", device->reasons},
                                    {"at", device->last_attested},
                                    {"root_of_trust", RootOfTrustName(*device)},
                                    {"os_release", device->os_release},
                                    {"boot_pcrs", BootPcrsJson(device->boot_pcrs)},
                                    {"attempts", std::move(list)}}
                                   .dump());
  }

  Response ShowAttestationPolicy(std::string_view tenant) const {
    auto policy = c_.store.GetAttestationPolicy(tenant);
    if (!policy) return FromError(policy.error());
    return Response::Json(200, PolicyJson(*policy).dump());
  }

  // Changes what the verifier requires of the tenant's devices: whether software roots of trust
  // are accepted, and the golden boot PCRs, pinned from what a device the operator trusts proved
  // at its last attestation, or cleared.
  Response UpdateAttestationPolicy(const Request& request, const Principal& who,
                                   std::string_view tenant) const {
    auto body = Body(request);
    if (!body) return Response::Problem(400, "Bad request", body.error().message());
    auto policy = c_.store.GetAttestationPolicy(tenant);
    if (!policy) return FromError(policy.error());
    std::string target = "policy";
    if (const auto allow = body->find("allow_software_root_of_trust"); allow != body->end()) {
      if (!allow->is_boolean()) {
        return Response::Problem(400, "Bad request",
                                 "\"allow_software_root_of_trust\" must be true or false");
      }
      policy->allow_software_root_of_trust = allow->get<bool>();
    }
    if (body->contains("pin_boot_pcrs_from_device")) {
      auto device_id = json::GetString(*body, "pin_boot_pcrs_from_device");
      if (!device_id) return Response::Problem(400, "Bad request", device_id.error().message());
      auto device = c_.store.GetDevice(tenant, *device_id);
      if (!device) return FromError(device.error());
      if (device->boot_pcrs.empty() || device->ek_fingerprint.empty() ||
          device->verdict != "trusted" || device->revoked) {
        return Response::Problem(409, "Conflict",
                                 "the device has proven no boot PCRs: pin from a trusted, "
                                 "unrevoked device whose TPM is bound to its EK");
      }
      policy->golden_boot_pcrs = device->boot_pcrs;
      target = device->id;
    } else if (const auto clear = body->find("clear_golden_boot_pcrs");
               clear != body->end() && clear->is_boolean() && clear->get<bool>()) {
      policy->golden_boot_pcrs.clear();
    }
    auto updated = Audited(who, tenant, "attestation-policy.update", target,
                           [&] { return c_.store.SetAttestationPolicy(tenant, *policy); });
    if (!updated) return FromError(updated.error());
    return Response::Json(200, PolicyJson(*policy).dump());
  }

  struct CachedCrl {
    std::vector<store::RevokedCertificate> revoked;
    Clock::TimePoint issued_at;
    std::string pem;
  };

  Context c_;
  const ca::TenantCas& cas_;
  mutable std::mutex crl_mutex_;
  mutable std::map<std::pair<std::string, std::int64_t>, CachedCrl> crls_;  // by tenant, generation
};

}  // namespace

std::string HashSecret(std::string_view secret) {
  auto digest = crypto::Sha256Of(AsBytes(secret));
  return digest ? crypto::ToHex(*digest) : std::string();
}

Expected<std::string> CreateToken(store::Store& store, const Clock& clock, std::string_view tenant,
                                  store::Role role, std::string_view description,
                                  std::string* token_id) {
  auto secret_bytes = crypto::RandomBytes(32);
  auto id_bytes = crypto::RandomBytes(8);
  if (!secret_bytes || !id_bytes) {
    return std::unexpected(!secret_bytes ? secret_bytes.error() : id_bytes.error());
  }
  const std::string id = HexEncode(*id_bytes);
  std::string secret = "aspis_" + HexEncode(*secret_bytes);
  if (auto ok = store.AddToken({id, std::string(tenant), role, std::string(description),
                                HashSecret(secret), UnixSeconds(clock.Now()), false});
      !ok) {
    return std::unexpected(ok.error());
  }
  if (token_id != nullptr) *token_id = id;
  return secret;
}

void AddRoutes(http::Router& router, const Context& context) {
  AddDeviceRoutes(router, context);
  AddCatalogRoutes(router, context);
  AddProductRoutes(router, context);
  auto api = std::make_shared<Api>(context);
  auto& c = api->c_;
  router.Add("GET", "/healthz", [&c](const Request&) {
    if (auto version = c.store.SchemaVersion(); !version) {
      return Response::Problem(503, "Unavailable", "the database is not reachable");
    }
    return Response::Json(200, R"({"status":"ok"})");
  });
  router.Add("GET", "/metrics", [&c](const Request&) {
    return Response::Text(200, c.metrics.Render(), "text/plain; version=0.0.4");
  });
  router.Add("POST", "/v1/os-releases", api->Authed([api](const Request& r, const Principal& who) {
    return api->AddOsRelease(r, who);
  }));
  router.Add("GET", "/v1/os-releases", api->Authed([&c](const Request&, const Principal& who) {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden", "only a platform administrator lists OS releases");
    }
    auto releases = c.store.ListOsReleases();
    if (!releases) return FromError(releases.error());
    Json list = Json::array();
    for (const auto& r : *releases) list.push_back(ReleaseJson(r));
    return Response::Json(200, list.dump());
  }));
  router.Add("POST", "/v1/os-releases/publish",
             api->Authed([api](const Request& r, const Principal& who) {
               return api->PublishOsRelease(r, who);
             }));
  router.Add("POST", "/v1/os-releases/{version}/promote",
             api->Authed([api](const Request& r, const Principal& who) {
               return api->PromoteOsRelease(r, who);
             }));
  router.Add("POST", "/v1/os-releases/{version}/retire",
             api->Authed([api](const Request& r, const Principal& who) {
               return api->RetireOsRelease(r, who);
             }));
  router.Add("POST", "/v1/tenants", api->Authed([api](const Request& r, const Principal& who) {
    return api->CreateTenant(r, who);
  }));
  router.Add("GET", "/v1/tenants", api->Authed([api](const Request&, const Principal& who) {
    return api->ListTenants(who);
  }));
  router.Add("GET", "/v1/tenants/{tenant}",
             api->ForTenant(
                 Role::kReader, [&c](const Request&, const Principal&, std::string_view tenant) {
                   auto t = c.store.GetTenant(tenant);
                   return t ? Response::Json(200, TenantJson(*t).dump()) : FromError(t.error());
                 }));
  router.Add("POST", "/v1/tenants/{tenant}/tokens",
             api->ForTenant(Role::kAdministrator,
                            [api](const Request& r, const Principal& who, std::string_view t) {
                              return api->CreateToken(r, who, t);
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/tokens",
             api->ForTenant(Role::kAdministrator,
                            [&c](const Request&, const Principal&, std::string_view tenant) {
                              auto tokens = c.store.ListTokens(tenant);
                              if (!tokens) return FromError(tokens.error());
                              Json list = Json::array();
                              for (const auto& t : *tokens) {
                                list.push_back({{"id", t.id},
                                                {"role", store::RoleName(t.role)},
                                                {"description", t.description},
                                                {"created_at", t.created_at},
                                                {"revoked", t.revoked}});
                              }
                              return Response::Json(200, list.dump());
                            }));
  router.Add("DELETE", "/v1/tenants/{tenant}/tokens/{token}",
             api->ForTenant(Role::kAdministrator, [api](const Request& r, const Principal& who,
                                                        std::string_view tenant) {
               const std::string token(r.Param("token"));
               auto revoked = api->Audited(who, tenant, "token.revoke", token, [&] {
                 return api->c_.store.RevokeToken(tenant, token);
               });
               return revoked ? Response::Json(200, Json{{"id", token}, {"revoked", true}}.dump())
                              : FromError(revoked.error());
             }));
  router.Add("POST", "/v1/tenants/{tenant}/devices",
             api->ForTenant(Role::kContributor, [api](const Request& r, const Principal& who,
                                                      std::string_view tenant) {
               auto body = Body(r);
               auto id = body ? json::GetString(*body, "device_id")
                              : Expected<std::string>(std::unexpected(body.error()));
               if (!id || !IsDeviceId(*id)) {
                 return Response::Problem(400, "Bad request",
                                          "\"device_id\" must be 64 lowercase hex characters");
               }
               const auto at = UnixSeconds(api->c_.clock.Now());
               auto claimed = api->Audited(who, tenant, "device.claim", *id, [&] {
                 return api->c_.store.ClaimDevice(tenant, *id, at);
               });
               if (!claimed) return FromError(claimed.error());
               return Response::Json(201, DeviceJson({*id, std::string(tenant), at, false}).dump());
             }));
  router.Add("GET", "/v1/tenants/{tenant}/devices",
             api->ForTenant(Role::kReader,
                            [&c](const Request&, const Principal&, std::string_view tenant) {
                              auto devices = c.store.ListDevices(tenant);
                              if (!devices) return FromError(devices.error());
                              Json list = Json::array();
                              for (const auto& d : *devices) list.push_back(DeviceJson(d));
                              return Response::Json(200, list.dump());
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/devices/{device}",
             api->ForTenant(Role::kReader,
                            [api](const Request& r, const Principal&, std::string_view tenant) {
                              return api->ShowDevice(tenant, r.Param("device"));
                            }));
  // Azure Sphere's `device image list-targeted`: what the device is told to fetch now.
  router.Add("GET", "/v1/tenants/{tenant}/devices/{device}/targeted-images",
             api->ForTenant(Role::kReader,
                            [&c](const Request& r, const Principal&, std::string_view tenant) {
                              auto device = c.store.GetDevice(tenant, r.Param("device"));
                              if (!device) return FromError(device.error());
                              auto targets = deploy::TargetsFor(c.store, *device);
                              if (!targets) return FromError(targets.error());
                              Json list = Json::array();
                              for (const auto& i : targets->images) list.push_back(ImageJson(i));
                              return Response::Json(200, list.dump());
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/devices/{device}/attestation",
             api->ForTenant(Role::kReader,
                            [api](const Request& r, const Principal&, std::string_view tenant) {
                              return api->ShowAttestation(tenant, r.Param("device"));
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/attestation-policy",
             api->ForTenant(Role::kReader,
                            [api](const Request&, const Principal&, std::string_view tenant) {
                              return api->ShowAttestationPolicy(tenant);
                            }));
  router.Add("POST", "/v1/tenants/{tenant}/attestation-policy",
             api->ForTenant(Role::kAdministrator,
                            [api](const Request& r, const Principal& who, std::string_view t) {
                              return api->UpdateAttestationPolicy(r, who, t);
                            }));
  for (const bool revoke : {true, false}) {
    router.Add(
        "POST",
        std::string("/v1/tenants/{tenant}/devices/{device}/") + (revoke ? "revoke" : "restore"),
        api->ForTenant(Role::kAdministrator, [api, revoke](const Request& r, const Principal& who,
                                                           std::string_view tenant) {
          const std::string device(r.Param("device"));
          auto changed =
              api->Audited(who, tenant, revoke ? "device.revoke" : "device.restore", device, [&] {
                return api->c_.store.SetDeviceRevoked(tenant, device, revoke,
                                                      UnixSeconds(api->c_.clock.Now()));
              });
          if (!changed) return FromError(changed.error());
          auto d = api->c_.store.GetDevice(tenant, device);
          return d ? Response::Json(200, DeviceJson(*d).dump()) : FromError(d.error());
        }));
  }
  router.Add("GET", "/v1/tenants/{tenant}/ca-certificates",
             api->ForTenant(Role::kReader,
                            [api](const Request&, const Principal&, std::string_view tenant) {
                              auto generations = api->cas_.List(tenant);
                              if (!generations) return FromError(generations.error());
                              Json list = Json::array();
                              for (const auto& g : *generations) list.push_back(CaJson(g));
                              return Response::Json(200, list.dump());
                            }));
  // The chain (tenant CA, then the platform root) of the active CA, or of generation {index}.
  router.Add("GET", "/v1/tenants/{tenant}/ca-certificate",
             api->ForTenant(Role::kReader,
                            [api](const Request&, const Principal&, std::string_view tenant) {
                              return api->CaChain(tenant, std::nullopt);
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/ca-certificates/{index}",
             api->ForTenant(
                 Role::kReader, [api](const Request& r, const Principal&, std::string_view tenant) {
                   const auto index = CaIndex(r);
                   if (!index)
                     return Response::Problem(400, "Bad request", "the CA index must be a number");
                   return api->CaChain(tenant, index);
                 }));
  router.Add("GET", "/v1/tenants/{tenant}/crl",
             api->ForTenant(Role::kReader,
                            [api](const Request&, const Principal&, std::string_view tenant) {
                              return api->Crl(tenant, std::nullopt);
                            }));
  router.Add("GET", "/v1/tenants/{tenant}/ca-certificates/{index}/crl",
             api->ForTenant(
                 Role::kReader, [api](const Request& r, const Principal&, std::string_view tenant) {
                   const auto index = CaIndex(r);
                   if (!index)
                     return Response::Problem(400, "Bad request", "the CA index must be a number");
                   return api->Crl(tenant, index);
                 }));
  router.Add("GET", "/v1/tenants/{tenant}/audit",
             api->ForTenant(Role::kAdministrator,
                            [&c](const Request&, const Principal&, std::string_view tenant) {
                              auto entries = c.store.ListAudit(tenant, kAuditPage);
                              if (!entries) return FromError(entries.error());
                              Json list = Json::array();
                              for (const auto& e : *entries) {
                                list.push_back({{"sequence", e.sequence},
                                                {"actor", e.actor},
                                                {"action", e.action},
                                                {"target", e.target},
                                                {"at", e.at}});
                              }
                              return Response::Json(200, list.dump());
                            }));
}

}  // namespace aspis::service::api
