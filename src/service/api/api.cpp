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

wire::api::ErrorReport ErrorReportAnswer(const store::ErrorReport& e) {
  return {e.device_id, e.type, e.event_class, e.count, e.description, e.start, e.end};
}

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
  return wire::api::ToJson(
      wire::api::AttestationPolicy{p.allow_software_root_of_trust, BootPcrsOf(p.golden_boot_pcrs)});
}

Json TenantJson(const store::Tenant& t) {
  return wire::api::ToJson(wire::api::Tenant{t.id, t.name, t.created_at});
}

wire::api::Token TokenAnswer(const store::ApiToken& t) {
  return {t.id, std::string(store::RoleName(t.role)), t.description, t.created_at, t.revoked, {}};
}

// The {index} of a CA generation route.
std::optional<std::int64_t> CaIndex(const Request& request) {
  std::int64_t index = 0;
  const std::string_view text = request.Param("index");
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), index);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return index;
}

Json ReleaseJson(const store::OsRelease& r) {
  return wire::api::ToJson(wire::api::OsRelease{r.version, r.feed, r.created_at, r.retired_reason,
                                                r.image_id, r.board_image_id, r.components});
}

Json CaJson(const ca::Generation& g) {
  return wire::api::ToJson(wire::api::CaCertificate{
      g.number, g.thumbprint, g.certificate.SubjectCommonName(),
      UnixSeconds(g.certificate.NotBefore()), UnixSeconds(g.certificate.NotAfter()), g.activates_at,
      std::string(ca::StateName(g.state))});
}

// Each item of `items` as `to_json` gives it, in a JSON array.
template <class T, class ToJson>
std::string ListJson(const std::vector<T>& items, ToJson to_json) {
  Json list = Json::array();
  for (const auto& item : items) list.push_back(to_json(item));
  return list.dump();
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
    auto asked = wire::api::ParseTenantRequest(request.body);
    if (!asked) return Response::Problem(400, "Bad request", asked.error().message());
    auto id = crypto::RandomUuid();
    if (!id) return FromError(id.error());
    const store::Tenant tenant{*id, asked->name, UnixSeconds(c_.clock.Now())};
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
    if (who.platform()) {
      auto tenants = c_.store.ListTenants();
      if (!tenants) return FromError(tenants.error());
      return Response::Json(200, ListJson(*tenants, TenantJson));
    }
    auto tenant = c_.store.GetTenant(who.tenant);
    if (!tenant) return FromError(tenant.error());
    return Response::Json(200, Json::array({TenantJson(*tenant)}).dump());
  }

  Response CreateToken(const Request& request, const Principal& who,
                       std::string_view tenant) const {
    auto asked = wire::api::ParseTokenRequest(request.body);
    auto role =
        asked ? store::ParseRole(asked->role) : Expected<Role>(std::unexpected(asked.error()));
    if (!role) return Response::Problem(400, "Bad request", role.error().message());
    const std::string& description = asked->description;
    if (auto missing = c_.store.GetTenant(tenant); !missing) return FromError(missing.error());
    wire::api::Token made{{}, asked->role, description, UnixSeconds(c_.clock.Now()), false, {}};
    auto created = Audited(who, tenant, "token.create", made.id, [&]() -> Expected<void> {
      auto secret = api::CreateToken(c_.store, c_.clock, tenant, *role, description, &made.id);
      if (!secret) return std::unexpected(secret.error());
      made.secret = *secret;
      return {};
    });
    if (!created) return FromError(created.error());
    return Response::Json(201, wire::api::ToJson(made).dump());
  }

  Response AddOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden", "only a platform administrator adds OS releases");
    }
    // A release is a whole launch: a digest for each launch component and nothing else.
    auto registration = wire::api::ParseOsReleaseRegistration(request.body);
    if (!registration) {
      return Response::Problem(400, "Bad request", registration.error().message());
    }
    store::OsRelease release{registration->version, registration->feed, UnixSeconds(c_.clock.Now()),
                             std::move(registration->components)};
    if (auto ok = Audited(who, "", "os-release.add", release.version,
                          [&] { return c_.store.AddOsRelease(release); });
        !ok) {
      return FromError(ok.error());
    }
    return Response::Json(201, ReleaseJson(release).dump());
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
    auto offered = c_.store.ListOfferedOsReleases();
    if (!offered) return FromError(offered.error());
    if (auto ok = Audited(who, "", "os-release.publish", release.version,
                          [&] { return c_.store.AddOsRelease(release); });
        !ok) {
      return FromError(ok.error());
    }
    // Devices on the releases offered until now will want a delta from them.
    if (c_.deltas != nullptr) {
      for (const auto& before : *offered) {
        if (before.image_id.empty()) continue;
        if (auto image = c_.store.GetImage("", before.image_id)) c_.deltas->Find(*image, os->first);
      }
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
    return ShowOsRelease(version);
  }

  Response RetireOsRelease(const Request& request, const Principal& who) const {
    if (!who.platform()) {
      return Response::Problem(403, "Forbidden",
                               "only a platform administrator retires OS releases");
    }
    auto retirement = wire::api::ParseOsReleaseRetirement(request.body);
    if (!retirement) return Response::Problem(400, "Bad request", retirement.error().message());
    const std::string version(request.Param("version"));
    if (auto ok = Audited(who, "", "os-release.retire", version,
                          [&] {
                            return c_.store.RetireOsRelease(version, retirement->reason,
                                                            UnixSeconds(c_.clock.Now()));
                          });
        !ok) {
      return FromError(ok.error());
    }
    return ShowOsRelease(version);
  }

  Response ShowOsRelease(std::string_view version) const {
    auto releases = c_.store.ListOsReleases();
    if (!releases) return FromError(releases.error());
    const auto it = std::find_if(releases->begin(), releases->end(),
                                 [&](const store::OsRelease& r) { return r.version == version; });
    if (it == releases->end()) return Response::Problem(404, "Not found", "no such OS release");
    return Response::Json(200, ReleaseJson(*it).dump());
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
    auto shown = DeviceAnswer(*device);
    shown.publisher_root = wire::api::PublisherPin{device->publisher_root, tenant_root, pin};
    for (const auto& i : *images) {
      shown.images.push_back({i.image_id, i.state, i.reason, i.updated_at});
    }
    auto latest = c_.store.ListErrorReports(tenant, 0, device_id, 1);
    if (!latest) return FromError(latest.error());
    if (!latest->empty()) shown.latest_error_report = ErrorReportAnswer(latest->front());
    return Response::Json(200, wire::api::ToJson(shown).dump());
  }

  Response ShowAttestation(std::string_view tenant, std::string_view device_id) const {
    auto device = c_.store.GetDevice(tenant, device_id);
    if (!device) return FromError(device.error());
    auto attempts = c_.store.ListAttestationAttempts(tenant, device_id);
    if (!attempts) return FromError(attempts.error());
    wire::api::Attestation shown{device->id,
                                 device->verdict,
                                 device->reasons,
                                 device->last_attested,
                                 RootOfTrustName(*device),
                                 device->os_release,
                                 BootPcrsOf(device->boot_pcrs),
                                 {}};
    for (const auto& a : *attempts)
      shown.attempts.push_back({a.at, a.verdict, a.reasons, a.proven});
    return Response::Json(200, wire::api::ToJson(shown).dump());
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
    auto change = wire::api::ParseAttestationPolicyChange(request.body);
    if (!change) return Response::Problem(400, "Bad request", change.error().message());
    auto policy = c_.store.GetAttestationPolicy(tenant);
    if (!policy) return FromError(policy.error());
    std::string target = "policy";
    if (change->allow_software_root_of_trust) {
      policy->allow_software_root_of_trust = *change->allow_software_root_of_trust;
    }
    if (change->pin_boot_pcrs_from_device) {
      auto device = c_.store.GetDevice(tenant, *change->pin_boot_pcrs_from_device);
      if (!device) return FromError(device.error());
      if (device->boot_pcrs.empty() || device->ek_fingerprint.empty() ||
          device->verdict != "trusted" || device->revoked) {
        return Response::Problem(409, "Conflict",
                                 "the device has proven no boot PCRs: pin from a trusted, "
                                 "unrevoked device whose TPM is bound to its EK");
      }
      policy->golden_boot_pcrs = device->boot_pcrs;
      target = device->id;
    } else if (change->clear_golden_boot_pcrs) {
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
    return Response::Json(200, ListJson(*releases, ReleaseJson));
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
             api->ForTenant(Role::kAdministrator, [&c](const Request&, const Principal&,
                                                       std::string_view tenant) {
               auto tokens = c.store.ListTokens(tenant);
               if (!tokens) return FromError(tokens.error());
               return Response::Json(200, ListJson(*tokens, [](const store::ApiToken& t) {
                                       return wire::api::ToJson(TokenAnswer(t));
                                     }));
             }));
  router.Add(
      "DELETE", "/v1/tenants/{tenant}/tokens/{token}",
      api->ForTenant(Role::kAdministrator, [api](const Request& r, const Principal& who,
                                                 std::string_view tenant) {
        const std::string token(r.Param("token"));
        auto revoked = api->Audited(who, tenant, "token.revoke", token,
                                    [&] { return api->c_.store.RevokeToken(tenant, token); });
        if (!revoked) return FromError(revoked.error());
        auto tokens = api->c_.store.ListTokens(tenant);
        if (!tokens) return FromError(tokens.error());
        const auto it = std::find_if(tokens->begin(), tokens->end(),
                                     [&](const store::ApiToken& t) { return t.id == token; });
        if (it == tokens->end()) return Response::Problem(404, "Not found", "no such token");
        return Response::Json(200, wire::api::ToJson(TokenAnswer(*it)).dump());
      }));
  router.Add(
      "POST", "/v1/tenants/{tenant}/devices",
      api->ForTenant(Role::kContributor, [api](const Request& r, const Principal& who,
                                               std::string_view tenant) {
        auto claim = wire::api::ParseDeviceClaim(r.body);
        if (!claim) return Response::Problem(400, "Bad request", claim.error().message());
        const std::string& id = claim->device_id;
        const auto at = UnixSeconds(api->c_.clock.Now());
        auto claimed = api->Audited(who, tenant, "device.claim", id,
                                    [&] { return api->c_.store.ClaimDevice(tenant, id, at); });
        if (!claimed) return FromError(claimed.error());
        return Response::Json(
            201, wire::api::ToJson(DeviceAnswer({id, std::string(tenant), at, false})).dump());
      }));
  router.Add("GET", "/v1/tenants/{tenant}/devices",
             api->ForTenant(
                 Role::kReader, [&c](const Request&, const Principal&, std::string_view tenant) {
                   auto devices = c.store.ListDevices(tenant);
                   if (!devices) return FromError(devices.error());
                   return Response::Json(200, ListJson(*devices, [](const store::Device& d) {
                                           return wire::api::ToJson(DeviceAnswer(d));
                                         }));
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
                              return Response::Json(200, ListJson(targets->images, ImageJson));
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
          return d ? Response::Json(200, wire::api::ToJson(DeviceAnswer(*d)).dump())
                   : FromError(d.error());
        }));
  }
  router.Add("GET", "/v1/tenants/{tenant}/ca-certificates",
             api->ForTenant(Role::kReader,
                            [api](const Request&, const Principal&, std::string_view tenant) {
                              auto generations = api->cas_.List(tenant);
                              if (!generations) return FromError(generations.error());
                              return Response::Json(200, ListJson(*generations, CaJson));
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
  // The tenant's error reports as devices delivered them (Azure Sphere's download-error-report).
  router.Add("GET", "/v1/tenants/{tenant}/error-reports",
             api->ForTenant(
                 Role::kReader, [&c](const Request&, const Principal&, std::string_view tenant) {
                   const std::int64_t since =
                       UnixSeconds(c.clock.Now()) - store::kErrorReportDays * 24 * 3600;
                   auto reports = c.store.ListErrorReports(tenant, since);
                   if (!reports) return FromError(reports.error());
                   return Response::Json(200, ListJson(*reports, [](const store::ErrorReport& e) {
                                           return wire::api::ToJson(ErrorReportAnswer(e));
                                         }));
                 }));
  router.Add("GET", "/v1/tenants/{tenant}/audit",
             api->ForTenant(Role::kAdministrator, [&c](const Request&, const Principal&,
                                                       std::string_view tenant) {
               auto entries = c.store.ListAudit(tenant, kAuditPage);
               if (!entries) return FromError(entries.error());
               return Response::Json(200, ListJson(*entries, [](const store::AuditEntry& e) {
                                       return wire::api::ToJson(wire::api::AuditEntry{
                                           e.sequence, e.actor, e.action, e.target, e.at});
                                     }));
             }));
}

}  // namespace aspis::service::api
