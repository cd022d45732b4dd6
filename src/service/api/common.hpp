#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "service/http/message.hpp"
#include "service/http/router.hpp"
#include "service/store/store.hpp"
#include "wire/operator_api.hpp"

// What the routes share: who calls (bearer tokens and roles), how errors and devices look in
// responses, and audited changes.
namespace aspis::service::api {

// The caller of an operator route, from its bearer token.
struct Principal {
  std::string token_id;
  std::string tenant;  // empty: platform administrator
  store::Role role = store::Role::kReader;

  bool platform() const { return tenant.empty(); }
  std::string actor() const { return platform() ? "platform-admin:" + token_id : token_id; }
};

// The principal of the request's "Authorization: Bearer" token. Errors: kNotFound with a message
// for a 401.
Expected<Principal> Authenticate(const http::Request& request, store::Store& store);
// A 403 when `who` may not act on `tenant` with the `needed` role (Administrator > Contributor >
// Reader; platform administrators may do anything); nullopt when allowed.
std::optional<http::Response> Authorize(const Principal& who, std::string_view tenant,
                                        store::Role needed);

using PlainHandler = std::function<http::Response(const http::Request&, const Principal&)>;
using TenantHandler =
    std::function<http::Response(const http::Request&, const Principal&, std::string_view)>;
// `handler` behind authentication (401 otherwise).
http::Handler Authed(store::Store& store, PlainHandler handler);
// `handler` for the route's {tenant}, behind authentication and the `needed` role.
http::Handler ForTenant(store::Store& store, store::Role needed, TenantHandler handler);
// Runs `change` and its audit entry in one transaction. `target` is read after `change` runs, so
// a change may name what it created.
Expected<void> Audited(store::Store& store, const Clock& clock, const Principal& who,
                       std::string_view tenant, std::string_view action, const std::string& target,
                       const std::function<Expected<void>()>& change);

// A store error as the HTTP answer: 404, 409, or a logged 500 that says nothing of the cause.
http::Response FromError(const Error& error);

// A device as the API shows it (without what `device show` adds).
wire::api::Device DeviceAnswer(const store::Device& device);
// "tpm (EK issuer: ...)", "software (no hardware protection)" or "unknown (not attested yet)".
std::string RootOfTrustName(const store::Device& device);
// Stored boot PCR values (store::Device::boot_pcrs) by index.
wire::api::BootPcrs BootPcrsOf(std::string_view stored);

}  // namespace aspis::service::api
