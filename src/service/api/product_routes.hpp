#pragma once

#include "service/api/api.hpp"
#include "service/http/router.hpp"

// Products and device groups, as Azure Sphere users know them (../shared/AZURE-SPHERE-FACTS.md).
// Creating a product makes its five default device groups. Contributors create and update,
// Administrators delete, Readers read; every change is audited.
//
//   POST|GET              /v1/tenants/{tenant}/products
//   GET|PATCH|DELETE      /v1/tenants/{tenant}/products/{product}        (ID or name)
//   POST|GET              /v1/tenants/{tenant}/products/{product}/device-groups
//   GET                   /v1/tenants/{tenant}/device-groups
//   GET|PATCH|DELETE      /v1/tenants/{tenant}/device-groups/{group}
//   POST|GET              /v1/tenants/{tenant}/device-groups/{group}/deployments
//   POST                  /v1/tenants/{tenant}/devices/{device}/device-group
namespace aspis::service::api {

void AddProductRoutes(http::Router& router, const Context& context);

}  // namespace aspis::service::api
