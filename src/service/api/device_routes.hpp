#pragma once

#include "service/api/api.hpp"
#include "service/http/router.hpp"

// The routes devices call (DESIGN sections 4 and 5): attestation, without authentication (one
// generic refusal whatever the reason), and the device routes that only a runtime certificate
// from the device's own tenant CA opens (check-in, status).
namespace aspis::service::api {

void AddDeviceRoutes(http::Router& router, const Context& context);

}  // namespace aspis::service::api
