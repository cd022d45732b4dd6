#include "service/api/device_routes.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include "core/log.hpp"
#include "crypto/dsse.hpp"
#include "service/api/catalog_routes.hpp"
#include "service/api/common.hpp"
#include "service/attest/attestation.hpp"
#include "service/deploy/rollout.hpp"
#include "service/deploy/targets.hpp"
#include "wire/attestation.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"

namespace aspis::service::api {

namespace {

using namespace std::chrono_literals;
using http::Request;
using http::Response;
using store::StoreErrc;

constexpr std::string_view kDeltaMediaType = "application/vnd.aspis.delta";

// A device acts on a manifest only this long after it was issued (freeze attacks).
constexpr std::chrono::seconds kManifestLifetime = 24h;

Expected<std::string> ChainPem(const std::vector<crypto::Certificate>& chain) {
  std::string pem;
  for (const auto& certificate : chain) {
    auto text = certificate.ToPem();
    if (!text) return std::unexpected(text.error());
    pem += *text;
  }
  return pem;
}

// A device route's refusal (403), or the store's failure (500, which a device retries later).
Response Refused(const Error& error) {
  if (error == StoreErrc::kNotFound) return Response::Problem(403, "Forbidden", error.message());
  return FromError(error);
}

// The verifier's outcome as the attester reads it: the certificates, or what to send next.
// Nullopt for a refusal.
std::optional<wire::AttestationResult> ToWire(const attest::Outcome& outcome) {
  switch (outcome.next) {
    case attest::Next::kSendEndorsement:
      return wire::AttestationResult{wire::kEndorsementRequired, {}, {}, {}, std::nullopt};
    case attest::Next::kActivateCredential:
      return wire::AttestationResult{
          wire::kActivateCredential,
          {},
          {},
          {},
          wire::CredentialChallenge{outcome.challenge->credential.credential_blob,
                                    outcome.challenge->credential.encrypted_secret,
                                    outcome.challenge->token}};
    case attest::Next::kNothing:
      break;
  }
  if (!outcome.certificates) return std::nullopt;
  auto runtime = outcome.certificates->runtime.ToPem();
  auto app = outcome.certificates->app.ToPem();
  auto chain = ChainPem(outcome.certificates->chain);
  if (!runtime || !app || !chain) return std::nullopt;
  return wire::AttestationResult{wire::kTrusted, *runtime, *app, *chain, std::nullopt};
}

class DeviceRoutes {
 public:
  explicit DeviceRoutes(const Context& c)
      : c_(c), verifier_(c.store, c.data, c.clock, c.metrics, c.cas, c.attestation) {}

  // Device routes: only a runtime certificate issued by the device's own tenant CA, for a claimed
  // device that is not revoked, opens them. App certificates are refused. A refusal is kNotFound;
  // any other error is the store's, which the device must not read as a refusal (it would
  // attest again, and a fleet would do so together while the database is down).
  Expected<store::Device> AuthenticateDevice(const Request& request) const {
    auto deny = [](std::string why) { return Fail(StoreErrc::kNotFound, std::move(why)); };
    if (!request.client_certificate) return deny("present the device's runtime certificate");
    const crypto::Certificate& cert = *request.client_certificate;
    const auto policies = cert.PolicyOids();
    if (std::find(policies.begin(), policies.end(), wire::kRuntimeCertificatePolicy) ==
        policies.end()) {
      return deny("only the device runtime certificate opens device routes");
    }
    const auto uris = cert.SanUris();
    const auto name = uris.size() == 1 ? wire::ParseDeviceUri(uris[0]) : std::nullopt;
    if (!name) return deny("the certificate does not name a tenant and a device");
    const std::string& tenant = name->tenant;
    const std::string& device_id = name->device_id;
    auto roots = cas().Trusted(tenant);
    if (!roots) return std::unexpected(roots.error());
    if (!crypto::VerifyChain(cert, {}, *roots, c_.clock.Now()).valid() ||
        cert.SubjectCommonName() != device_id) {
      return deny("the certificate was not issued to this device by its tenant's CA");
    }
    auto device = c_.store.GetDevice(tenant, device_id);
    if (!device && device.error() == StoreErrc::kNotFound) {
      return deny("the device is not claimed by the tenant its certificate names");
    }
    if (!device) return device;
    if (device->revoked) return deny("the device is revoked");
    return device;
  }

  // Device check-in (DESIGN section 5): records what the device runs and answers with its update
  // manifest, signed by the tenant's deployment key.
  Response CheckIn(const Request& request) const {
    auto device = AuthenticateDevice(request);
    if (!device) return Refused(device.error());
    auto check_in = wire::ParseCheckIn(request.body);
    if (!check_in) return Response::Problem(400, "Malformed check-in", check_in.error().message());
    if (check_in->device_id != device->id) {
      return Response::Problem(403, "Forbidden",
                               "the check-in names another device than the certificate");
    }
    const auto now = UnixSeconds(c_.clock.Now());
    store::CheckInRecord record{device->tenant_id,
                                device->id,
                                now,
                                check_in->os_version,
                                check_in->runtime_version,
                                check_in->publisher_root,
                                {},
                                check_in->board};
    for (const auto& e : check_in->error_reports) {
      record.error_reports.push_back({device->id, e.sequence, e.type, e.event_class, e.description,
                                      static_cast<std::int64_t>(e.count), e.start, e.end, now});
    }
    record.error_reports_dropped = check_in->error_reports_dropped;
    device->board = check_in->board;  // the targets follow the board reported now
    auto targets = deploy::TargetsFor(c_.store, *device);
    if (!targets) return FromError(targets.error());
    // Only what the device was told to fetch, once each: a device reports on its own targets and
    // cannot write into another group's deployment progress.
    std::set<std::string> reported;
    for (const auto& t : check_in->targets) {
      const bool targeted = std::any_of(targets->images.begin(), targets->images.end(),
                                        [&](const store::Image& i) { return i.id == t.image_id; });
      if (targeted && reported.insert(t.image_id).second) {
        record.images.push_back({t.image_id, t.state, t.reason, now});
      }
    }
    auto sequence = c_.store.RecordCheckIn(record);
    if (!sequence) return FromError(sequence.error());
    if (auto advanced = AdvanceRollout(*device, now); !advanced) {
      return FromError(advanced.error());
    } else if (*advanced) {  // a stage may have opened to this device
      targets = deploy::TargetsFor(c_.store, *device);
      if (!targets) return FromError(targets.error());
    }
    wire::UpdateManifest manifest{.device_id = device->id,
                                  .sequence = static_cast<std::uint64_t>(*sequence),
                                  .issued_at = now,
                                  .expires_at = now + kManifestLifetime.count(),
                                  .os_feed = targets->os_feed,
                                  .targets = {},
                                  .apps_complete = targets->apps_complete};
    for (const auto& image : targets->images) {
      auto delta = DeltaFor(*device, *check_in, image);
      if (!delta) return FromError(delta.error());
      manifest.targets.push_back({image.id, image.component_id, image.kind, image.version,
                                  static_cast<std::uint64_t>(image.security_version), image.sha256,
                                  static_cast<std::uint64_t>(image.size),
                                  wire::DeviceImagePath(image.id), std::move(*delta)});
    }
    auto response = SignManifest(device->tenant_id, manifest);
    if (!response) return FromError(response.error());
    auto keys = c_.store.GetPublisherKeySet(device->tenant_id);
    if (!keys) return FromError(keys.error());
    if (*keys) response->publisher_keys = (*keys)->envelope;
    return Response::Json(200, wire::Serialize(*response));
  }

  // The delta to `target` from the image of its component the device reports running, when one
  // is made (otherwise it is queued, and offered at a later check-in). What the device reports
  // only picks the base, among the images it may be running (Base); the delta rebuilds nothing
  // but the target's signed bytes.
  Expected<std::optional<wire::DeltaOffer>> DeltaFor(const store::Device& device,
                                                     const wire::CheckIn& check_in,
                                                     const store::Image& target) const {
    if (c_.deltas == nullptr) return std::nullopt;
    for (const auto& installed : check_in.images) {
      if (installed.image_id == target.id) continue;
      auto base = Base(device, target, installed.image_id);
      if (!base) return std::unexpected(base.error());
      if (!*base) continue;
      auto made = c_.deltas->Find(**base, target);
      if (!made) return std::nullopt;
      return wire::DeltaOffer{(*base)->id, made->sha256, made->size,
                              wire::DeviceDeltaPath(target.id, (*base)->id)};
    }
    return std::nullopt;
  }

  // The image `id` as a base for a delta to `target`: of the target's component (as the catalog,
  // not the device, says), and one the device may be running: for apps, an image of its group's
  // recent deployments that applied to it (so a device cannot have deltas made from, and learn
  // the files of, versions it never ran); for the OS, any platform OS image.
  Expected<std::optional<store::Image>> Base(const store::Device& device,
                                             const store::Image& target,
                                             std::string_view id) const {
    auto base = c_.store.GetImage(target.tenant_id, id);
    if (!base && base.error() == StoreErrc::kNotFound) return std::nullopt;
    if (!base) return std::unexpected(base.error());
    if (base->tenant_id != target.tenant_id || base->component_id != target.component_id ||
        base->kind != target.kind) {
      return std::nullopt;
    }
    if (target.kind == "os") return std::move(*base);
    auto recent = deploy::RecentlyDeployed(c_.store, device);
    if (!recent) return std::unexpected(recent.error());
    const bool ran = std::any_of(recent->begin(), recent->end(),
                                 [&](const store::Image& i) { return i.id == base->id; });
    if (!ran) return std::nullopt;
    return std::move(*base);
  }

  // A delta offered to the device: to one of its targets, from the image it named.
  Response Delta(const Request& request) const {
    auto device = AuthenticateDevice(request);
    if (!device) return Refused(device.error());
    auto targets = deploy::TargetsFor(c_.store, *device);
    if (!targets) return FromError(targets.error());
    const auto wanted = request.Param("image");
    const auto target = std::find_if(targets->images.begin(), targets->images.end(),
                                     [&](const store::Image& i) { return i.id == wanted; });
    if (target == targets->images.end() || c_.deltas == nullptr) {
      return Response::Problem(404, "Not found", "no such delta is offered to this device");
    }
    auto base = Base(*device, *target, request.Param("base"));
    if (!base) return FromError(base.error());
    const auto made = *base ? c_.deltas->Find(**base, *target) : std::nullopt;
    if (!made)
      return Response::Problem(404, "Not found", "no such delta is offered to this device");
    return ServeFile(made->file, made->size, kDeltaMediaType, request, wire::kImageRangeSize);
  }

  // Decides the rollout of the device's group again now that it reported; whether it changed.
  Expected<bool> AdvanceRollout(const store::Device& device, std::int64_t now) const {
    if (device.device_group_id.empty()) return false;
    bool changed = false;
    auto advanced = c_.store.Transaction([&]() -> Expected<void> {
      auto change = deploy::Advance(c_.store, device.tenant_id, device.device_group_id, now);
      if (!change) return std::unexpected(change.error());
      if (!*change) return {};
      changed = true;
      auto newest = c_.store.ListDeployments(device.tenant_id, device.device_group_id, 1);
      if (!newest) return std::unexpected(newest.error());
      auto seq = c_.store.AppendAudit({0, device.tenant_id, std::string(deploy::kServiceActor),
                                       **change, newest->front().id, now});
      if (!seq) return std::unexpected(seq.error());
      return {};
    });
    // Two instances deciding at once: the other one moved the rollout.
    if (!advanced && advanced.error() == StoreErrc::kConflict) return true;
    if (!advanced) return std::unexpected(advanced.error());
    return changed;
  }

  // A target of the device's, in ranges; any other image is 404 whether it exists or not.
  Response Image(const Request& request) const {
    auto device = AuthenticateDevice(request);
    if (!device) return Refused(device.error());
    auto targets = deploy::TargetsFor(c_.store, *device);
    if (!targets) return FromError(targets.error());
    const auto wanted = request.Param("image");
    for (const auto& image : targets->images) {
      if (image.id == wanted) return ServeImage(c_.data, image, request, wire::kImageRangeSize);
    }
    return Response::Problem(404, "Not found", "no such image is targeted to this device");
  }

  Expected<wire::CheckInResponse> SignManifest(const std::string& tenant,
                                               const wire::UpdateManifest& manifest) const {
    auto record = c_.store.GetTenantKey(tenant, "deployment");
    if (!record) return std::unexpected(record.error());
    auto pem =
        OpenSecret(c_.data.master_key, record->sealed_key, "tenant/" + tenant + "/deployment");
    if (!pem) return std::unexpected(pem.error());
    auto key = crypto::PrivateKey::FromPem(AsString(*pem));
    if (!key) return std::unexpected(key.error());
    const std::string payload = wire::Serialize(manifest);
    auto envelope = crypto::dsse::Sign(wire::kManifestPayloadType, AsBytes(payload),
                                       std::span<const crypto::PrivateKey>(&*key, 1));
    if (!envelope) return std::unexpected(envelope.error());
    // The deployment certificate and every unexpired tenant CA: the device finds the chain to the
    // platform root it pins.
    std::string chain = record->certificate_pem;
    auto trusted = cas().Trusted(tenant);
    if (!trusted) return std::unexpected(trusted.error());
    for (const auto& ca : *trusted) {
      auto ca_pem = ca.ToPem();
      if (!ca_pem) return std::unexpected(ca_pem.error());
      chain += *ca_pem;
    }
    return wire::CheckInResponse{crypto::dsse::Serialize(*envelope), chain, {}};
  }

  // The caller is not authenticated: it learns only trusted or not (never whether a device is
  // claimed, revoked or why); the reasons go to the device's tenant.
  Response Attest(const Request& request) const {
    auto evidence = wire::ParseEvidence(request.body);
    if (!evidence) return Response::Problem(400, "Malformed evidence", evidence.error().message());
    const attest::Outcome outcome = verifier_.Verify(*evidence);
    if (auto result = ToWire(outcome)) return Response::Json(200, wire::Serialize(*result));
    if (outcome.verdict.outcome() == Verdict::Outcome::kCouldNotCheck) {
      log::Error("attestation of {} could not be checked: {}", evidence->device_id,
                 outcome.verdict.reason());
      return Response::Problem(503, "Attestation unavailable",
                               "the service could not check the evidence; retry later");
    }
    return Response::Problem(403, "Untrusted", wire::kAttestationRefused);
  }

  Response Challenge() const {
    auto challenge = verifier_.Challenge();
    return challenge ? Response::Json(200, wire::Serialize(*challenge))
                     : FromError(challenge.error());
  }

  Response Status(const Request& request) const {
    auto device = AuthenticateDevice(request);
    if (!device) return Refused(device.error());
    return Response::Json(200, wire::api::ToJson(DeviceAnswer(*device)).dump());
  }

 private:
  const ca::TenantCas& cas() const { return c_.cas; }

  Context c_;
  attest::Verifier verifier_;
};

}  // namespace

void AddDeviceRoutes(http::Router& router, const Context& context) {
  auto routes = std::make_shared<DeviceRoutes>(context);
  router.Add("POST", wire::kChallengePath,
             [routes](const Request&) { return routes->Challenge(); });
  router.Add("POST", wire::kAttestationPath,
             [routes](const Request& request) { return routes->Attest(request); });
  router.Add("POST", wire::kCheckInPath,
             [routes](const Request& request) { return routes->CheckIn(request); });
  router.Add("GET", wire::kDeviceImagePath,
             [routes](const Request& request) { return routes->Image(request); });
  router.Add("GET", wire::kDeviceDeltaPath,
             [routes](const Request& request) { return routes->Delta(request); });
  router.Add("GET", wire::kDeviceStatusPath,
             [routes](const Request& request) { return routes->Status(request); });
}

}  // namespace aspis::service::api
