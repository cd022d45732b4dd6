#include "service/api/common.hpp"

#include "core/log.hpp"
#include "rot/quote.hpp"
#include "wire/attestation.hpp"

namespace aspis::service::api {

using http::Response;
using json::Json;
using store::StoreErrc;

Response FromError(const Error& error) {
  if (error == StoreErrc::kNotFound) return Response::Problem(404, "Not found", error.message());
  if (error == StoreErrc::kConflict) return Response::Problem(409, "Conflict", error.message());
  log::Error("request failed: {}", error.message());
  return Response::Problem(500, "Internal error",
                           "the service could not complete the request; it has been logged");
}

// The boot PCRs as "index: value" pairs, from their stored form.
Json BootPcrsJson(std::string_view stored) {
  Json out = Json::object();
  for (std::size_t i = 0; i < rot::kBootPcrs.size() && !stored.empty(); ++i) {
    const std::size_t comma = stored.find(',');
    out[std::to_string(rot::kBootPcrs[i])] = std::string(stored.substr(0, comma));
    stored = comma == std::string_view::npos ? std::string_view() : stored.substr(comma + 1);
  }
  return out;
}

std::string RootOfTrustName(const store::Device& d) {
  if (d.root_of_trust == wire::kRootOfTrustTpm) return "tpm (EK issuer: " + d.ek_issuer + ")";
  if (d.root_of_trust == wire::kRootOfTrustSoftware) return "software (no hardware protection)";
  return "unknown (not attested yet)";
}

Json DeviceJson(const store::Device& d) {
  return {{"id", d.id},
          {"tenant_id", d.tenant_id},
          {"claimed_at", d.claimed_at},
          {"revoked", d.revoked},
          {"attestation",
           {{"verdict", d.verdict},
            {"reasons", d.reasons},
            {"at", d.last_attested},
            {"certificate_expiry", d.certificate_expiry}}},
          {"last_check_in", d.last_check_in},
          {"os_version", d.os_version},
          {"runtime_version", d.runtime_version},
          {"root_of_trust", RootOfTrustName(d)},
          {"os_release", d.os_release}};
}

}  // namespace aspis::service::api
