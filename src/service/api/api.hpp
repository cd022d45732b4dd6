#pragma once

#include "core/clock.hpp"
#include "crypto/dsse.hpp"
#include "service/attest/attestation.hpp"
#include "service/ca/tenant_ca.hpp"
#include "service/data_dir.hpp"
#include "service/deploy/deltas.hpp"
#include "service/http/router.hpp"
#include "service/metrics.hpp"
#include "service/store/store.hpp"

// The /v1 REST API for operators, plus /healthz and /metrics. Handlers authenticate bearer tokens,
// authorize by role and tenant, and write every change to the audit log in the same transaction.
namespace aspis::service::api {

struct Context {
  store::Store& store;
  const DataDir& data;
  const Clock& clock;
  Metrics& metrics;
  const ca::TenantCas& cas;
  // The platform's OS publisher keys: OS and board packages must be signed by one.
  const crypto::dsse::TrustedKeys& os_publishers;
  attest::Policy attestation = {};
  // Deltas offered beside full images; none when null.
  deploy::Deltas* deltas = nullptr;
};

// Adds every route to `router`. `context` must outlive the router.
void AddRoutes(http::Router& router, const Context& context);

// The stored form of a bearer secret (lowercase hex SHA-256).
std::string HashSecret(std::string_view secret);

// Issues a new API token for `tenant` (empty: a platform administrator). Returns the secret, which
// is stored only as a hash.
Expected<std::string> CreateToken(store::Store& store, const Clock& clock, std::string_view tenant,
                                  store::Role role, std::string_view description,
                                  std::string* token_id = nullptr);

}  // namespace aspis::service::api
