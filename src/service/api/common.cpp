#include "service/api/common.hpp"

#include "service/api/api.hpp"

#include "core/log.hpp"
#include "rot/quote.hpp"
#include "wire/attestation.hpp"

namespace aspis::service::api {

using http::Request;
using http::Response;
using json::Json;
using store::Role;
using store::StoreErrc;

namespace {

// Roles ordered by power: Administrator > Contributor > Reader.
int Rank(Role role) {
  switch (role) {
    case Role::kAdministrator:
      return 3;
    case Role::kContributor:
      return 2;
    case Role::kReader:
      return 1;
  }
  return 0;
}

}  // namespace

Expected<Principal> Authenticate(const Request& request, store::Store& store) {
  const std::string_view header = request.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header.starts_with(kBearer)) {
    return Fail(StoreErrc::kNotFound, "send an API token as \"Authorization: Bearer <token>\"");
  }
  auto token = store.FindTokenByHash(HashSecret(header.substr(kBearer.size())));
  if (!token || token->revoked) {
    return Fail(StoreErrc::kNotFound, "the API token is unknown or revoked");
  }
  return Principal{token->id, token->tenant_id, token->role};
}

std::optional<Response> Authorize(const Principal& who, std::string_view tenant, Role needed) {
  if (!who.platform() && who.tenant != tenant) {
    return Response::Problem(403, "Forbidden", "the API token is not valid for this tenant");
  }
  if (!who.platform() && Rank(who.role) < Rank(needed)) {
    return Response::Problem(403, "Forbidden",
                             "this needs the " + std::string(store::RoleName(needed)) +
                                 " role; the token has " + std::string(store::RoleName(who.role)));
  }
  return std::nullopt;
}

http::Handler Authed(store::Store& store, PlainHandler handler) {
  return [&store, handler = std::move(handler)](const Request& request) {
    auto who = Authenticate(request, store);
    if (!who) return Response::Problem(401, "Unauthorized", who.error().message());
    return handler(request, *who);
  };
}

http::Handler ForTenant(store::Store& store, Role needed, TenantHandler handler) {
  return Authed(
      store, [needed, handler = std::move(handler)](const Request& request, const Principal& who) {
        const std::string_view tenant = request.Param("tenant");
        if (auto denied = Authorize(who, tenant, needed)) return *denied;
        return handler(request, who, tenant);
      });
}

Expected<void> Audited(store::Store& store, const Clock& clock, const Principal& who,
                       std::string_view tenant, std::string_view action, const std::string& target,
                       const std::function<Expected<void>()>& change) {
  return store.Transaction([&]() -> Expected<void> {
    if (auto ok = change(); !ok) return ok;
    auto seq = store.AppendAudit({0, std::string(tenant), who.actor(), std::string(action),
                                  std::string(target), UnixSeconds(clock.Now())});
    if (!seq) return std::unexpected(seq.error());
    return {};
  });
}

Response FromError(const Error& error) {
  if (error == StoreErrc::kNotFound) return Response::Problem(404, "Not found", error.message());
  if (error == StoreErrc::kConflict) return Response::Problem(409, "Conflict", error.message());
  log::Error("request failed: {}", error.message());
  return Response::Problem(500, "Internal error",
                           "the service could not complete the request; it has been logged");
}

wire::api::BootPcrs BootPcrsOf(std::string_view stored) {
  wire::api::BootPcrs out;
  for (std::size_t i = 0; i < rot::kBootPcrs.size() && !stored.empty(); ++i) {
    const std::size_t comma = stored.find(',');
    out.emplace_back(std::to_string(rot::kBootPcrs[i]), std::string(stored.substr(0, comma)));
    stored = comma == std::string_view::npos ? std::string_view() : stored.substr(comma + 1);
  }
  return out;
}

std::string RootOfTrustName(const store::Device& d) {
  if (d.root_of_trust == wire::kRootOfTrustTpm) return "tpm (EK issuer: " + d.ek_issuer + ")";
  if (d.root_of_trust == wire::kRootOfTrustSoftware) return "software (no hardware protection)";
  return "unknown (not attested yet)";
}

wire::api::Device DeviceAnswer(const store::Device& d) {
  return {.id = d.id,
          .tenant_id = d.tenant_id,
          .claimed_at = d.claimed_at,
          .revoked = d.revoked,
          .verdict = d.verdict,
          .reasons = d.reasons,
          .attested_at = d.last_attested,
          .certificate_expiry = d.certificate_expiry,
          .last_check_in = d.last_check_in,
          .os_version = d.os_version,
          .runtime_version = d.runtime_version,
          .root_of_trust = RootOfTrustName(d),
          .os_release = d.os_release,
          .device_group_id = d.device_group_id,
          .board = d.board,
          .publisher_root = std::nullopt,
          .images = {}};
}

}  // namespace aspis::service::api
