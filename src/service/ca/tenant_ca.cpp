#include "service/ca/tenant_ca.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.hpp"
#include "crypto/sha256.hpp"
#include "wire/attestation.hpp"

namespace aspis::service::ca {

namespace {

// Generation 1 keeps the context it was sealed under before CAs had generations.
std::string SealContext(std::string_view tenant, std::int64_t generation) {
  return generation == 1 ? fmt::format("tenant/{}/ca", tenant)
                         : fmt::format("tenant/{}/ca/{}", tenant, generation);
}

Expected<std::string> SealKey(const DataDir& data, const crypto::PrivateKey& key,
                              std::string_view context) {
  auto pem = key.ToPem();
  if (!pem) return std::unexpected(pem.error());
  return SealSecret(data.master_key, AsBytes(*pem), context);
}

crypto::CertificateProfile CaProfile(const store::Tenant& tenant, Clock::TimePoint now) {
  return {.common_name = "Aspis Tenant CA " + tenant.id,
          .organization = tenant.name,
          .not_before = now - 1h,
          .lifetime = kLifetime,
          .is_ca = true,
          .path_length = 0};
}

crypto::CertificateProfile DeploymentProfile(const store::Tenant& tenant, Clock::TimePoint now) {
  return {.common_name = "Aspis Deployments " + tenant.id,
          .organization = tenant.name,
          .not_before = now - 1h,
          .lifetime = kLifetime,
          .policy_oids = {wire::kDeploymentCertificatePolicy}};
}

}  // namespace

std::string_view StateName(State state) {
  switch (state) {
    case State::kActive:
      return "Active";
    case State::kInactive:
      return "Inactive";
    case State::kExpired:
      return "Expired";
  }
  return "Inactive";
}

Expected<NewTenantKeys> TenantCas::MakeFirst(const store::Tenant& tenant) const {
  auto ca_key = crypto::PrivateKey::GenerateP256();
  if (!ca_key) return std::unexpected(ca_key.error());
  auto deployment_key = crypto::PrivateKey::GenerateP256();
  if (!deployment_key) return std::unexpected(deployment_key.error());
  const auto now = clock_.Now();
  auto ca = crypto::Issue(data_.root_ca, data_.root_key, ca_key->Public(), CaProfile(tenant, now));
  if (!ca) return std::unexpected(ca.error());
  auto deployment =
      crypto::Issue(*ca, *ca_key, deployment_key->Public(), DeploymentProfile(tenant, now));
  if (!deployment) return std::unexpected(deployment.error());
  auto ca_pem = ca->ToPem();
  auto deployment_pem = deployment->ToPem();
  auto sealed_ca = SealKey(data_, *ca_key, SealContext(tenant.id, 1));
  auto sealed_deployment = SealKey(data_, *deployment_key, "tenant/" + tenant.id + "/deployment");
  for (const auto* part : {&ca_pem, &deployment_pem, &sealed_ca, &sealed_deployment}) {
    if (!*part) return std::unexpected(part->error());
  }
  return NewTenantKeys{
      .ca = {tenant.id, 1, *ca_pem, *sealed_ca, UnixSeconds(now)},
      .deployment = {tenant.id, "deployment", *deployment_pem, *sealed_deployment}};
}

Expected<TenantCas::Parsed> TenantCas::Parse(const store::TenantCa& record) const {
  const auto id = std::pair{record.tenant_id, record.generation};
  {
    const std::lock_guard lock(mutex_);
    const auto cached = cache_.find(id);
    if (cached != cache_.end() && cached->second.certificate_pem == record.certificate_pem) {
      return cached->second;
    }
  }
  auto cert = crypto::Certificate::FromPem(record.certificate_pem);
  if (!cert) return std::unexpected(cert.error());
  auto digest = crypto::Sha256Of(cert->Der());
  if (!digest) return std::unexpected(digest.error());
  Parsed parsed{record.certificate_pem, std::move(*cert), crypto::ToHex(*digest), {}, {}};
  const std::lock_guard lock(mutex_);
  cache_.insert_or_assign(id, parsed);
  return parsed;
}

Expected<std::vector<Generation>> TenantCas::Load(std::string_view tenant,
                                                  std::vector<store::TenantCa>* records) const {
  auto stored = store_.ListTenantCas(tenant);
  if (!stored) return std::unexpected(stored.error());
  if (stored->empty()) {
    return Fail(store::StoreErrc::kNotFound, "tenant " + std::string(tenant) + " has no CA");
  }
  const auto now = UnixSeconds(clock_.Now());
  std::vector<Generation> generations;
  for (const auto& record : *stored) {
    auto parsed = Parse(record);
    if (!parsed) {
      return std::unexpected(std::move(parsed.error())
                                 .WithContext(fmt::format("reading CA generation {} of tenant {}",
                                                          record.generation, tenant)));
    }
    const State state =
        UnixSeconds(parsed->certificate.NotAfter()) <= now ? State::kExpired : State::kInactive;
    generations.push_back({record.generation, std::move(parsed->certificate), record.activates_at,
                           state, std::move(parsed->thumbprint)});
  }
  // The newest generation already due to sign is the active one.
  const auto active = std::find_if(generations.rbegin(), generations.rend(), [&](const auto& g) {
    return g.state != State::kExpired && g.activates_at <= now;
  });
  if (active != generations.rend()) active->state = State::kActive;
  *records = std::move(*stored);
  return generations;
}

Expected<bool> TenantCas::MakeSuccessor(const store::TenantCa& latest) const {
  auto tenant = store_.GetTenant(latest.tenant_id);
  if (!tenant) return std::unexpected(tenant.error());
  auto predecessor = crypto::Certificate::FromPem(latest.certificate_pem);
  if (!predecessor) return std::unexpected(predecessor.error());
  auto deployment = store_.GetTenantKey(tenant->id, "deployment");
  if (!deployment) return std::unexpected(deployment.error());
  auto deployment_cert = crypto::Certificate::FromPem(deployment->certificate_pem);
  if (!deployment_cert) return std::unexpected(deployment_cert.error());
  auto key = crypto::PrivateKey::GenerateP256();
  if (!key) return std::unexpected(key.error());

  const auto now = clock_.Now();
  const std::int64_t generation = latest.generation + 1;
  auto cert = crypto::Issue(data_.root_ca, data_.root_key, key->Public(), CaProfile(*tenant, now));
  if (!cert) return std::unexpected(cert.error());
  // The deployment key is certified again by the successor, so its chain outlives the predecessor.
  auto reissued = crypto::Issue(*cert, *key, deployment_cert->SubjectPublicKey(),
                                DeploymentProfile(*tenant, now));
  if (!reissued) return std::unexpected(reissued.error());
  auto cert_pem = cert->ToPem();
  auto reissued_pem = reissued->ToPem();
  auto sealed = SealKey(data_, *key, SealContext(tenant->id, generation));
  for (const auto* part : {&cert_pem, &reissued_pem, &sealed}) {
    if (!*part) return std::unexpected(part->error());
  }
  // Signs 45 days from now, and never later than the predecessor's expiry (a service that was down
  // through the lead time must not leave the tenant without a CA).
  const std::int64_t activates_at =
      std::min(UnixSeconds(now + kActivationDelay), UnixSeconds(predecessor->NotAfter()));
  auto made = store_.Transaction([&]() -> Expected<void> {
    if (auto ok = store_.AddTenantCa({tenant->id, generation, *cert_pem, *sealed, activates_at});
        !ok) {
      return ok;
    }
    if (auto ok = store_.SetTenantKeyCertificate(tenant->id, "deployment", *reissued_pem); !ok) {
      return ok;
    }
    auto entry = store_.AppendAudit({0, tenant->id, "aspis-service", "ca.successor",
                                     fmt::format("generation {}", generation), UnixSeconds(now)});
    if (!entry) return std::unexpected(entry.error());
    return {};
  });
  if (!made) {
    if (made.error() == store::StoreErrc::kConflict) return false;
    return std::unexpected(made.error());
  }
  log::Info("tenant {}: made CA generation {}, active from Unix time {}", tenant->id, generation,
            activates_at);
  return true;
}

Expected<std::size_t> TenantCas::MakeDueSuccessors() const {
  auto tenants = store_.ListTenants();
  if (!tenants) return std::unexpected(tenants.error());
  std::size_t made = 0;
  std::optional<Error> first_error;
  for (const auto& tenant : *tenants) {
    auto ok = [&]() -> Expected<void> {
      auto stored = store_.ListTenantCas(tenant.id);
      if (!stored) return std::unexpected(stored.error());
      if (stored->empty()) return {};
      auto latest = crypto::Certificate::FromPem(stored->back().certificate_pem);
      if (!latest) return std::unexpected(latest.error());
      if (latest->NotAfter() - clock_.Now() > kSuccessorLead) return {};
      auto successor = MakeSuccessor(stored->back());
      if (!successor) return std::unexpected(successor.error());
      made += *successor ? 1 : 0;
      return {};
    }();
    if (!ok) {
      log::Error("tenant {}: making the next CA failed: {}", tenant.id, ok.error().message());
      if (!first_error) {
        first_error =
            std::move(ok.error()).WithContext("making the next CA of tenant " + tenant.id);
      }
    }
  }
  if (first_error) return std::unexpected(std::move(*first_error));
  return made;
}

Expected<std::vector<Generation>> TenantCas::List(std::string_view tenant) const {
  std::vector<store::TenantCa> records;
  return Load(tenant, &records);
}

Expected<std::vector<crypto::Certificate>> TenantCas::Trusted(std::string_view tenant) const {
  auto generations = List(tenant);
  if (!generations) return std::unexpected(generations.error());
  std::vector<crypto::Certificate> trusted;
  for (const auto& g : *generations) {
    if (g.state != State::kExpired) trusted.push_back(g.certificate);
  }
  return trusted;
}

Expected<Signer> TenantCas::Active(std::string_view tenant) const {
  return Find(tenant, [](const Generation& g) { return g.state == State::kActive; });
}

Expected<Signer> TenantCas::SignerOf(std::string_view tenant, std::int64_t number) const {
  auto signer = Find(tenant, [number](const Generation& g) { return g.number == number; });
  if (!signer && signer.error() == CoreErrc::kInvalidArgument) {
    return Fail(store::StoreErrc::kNotFound, "the tenant has no CA certificate with that index");
  }
  return signer;
}

Expected<Signer> TenantCas::Find(std::string_view tenant,
                                 const std::function<bool(const Generation&)>& which) const {
  std::vector<store::TenantCa> records;
  auto generations = Load(tenant, &records);
  if (!generations) return std::unexpected(generations.error());
  for (std::size_t i = 0; i < generations->size(); ++i) {
    const Generation& g = (*generations)[i];
    if (!which(g)) continue;
    const auto id = std::pair{std::string(tenant), g.number};
    {
      const std::lock_guard lock(mutex_);
      const auto cached = cache_.find(id);
      if (cached != cache_.end() && cached->second.key &&
          cached->second.sealed_key == records[i].sealed_key) {
        return Signer{g, *cached->second.key};
      }
    }
    auto pem = OpenSecret(data_.master_key, records[i].sealed_key, SealContext(tenant, g.number));
    if (!pem) return std::unexpected(pem.error());
    auto key = crypto::PrivateKey::FromPem(AsString(*pem));
    if (!key) return std::unexpected(key.error());
    {
      const std::lock_guard lock(mutex_);
      const auto cached = cache_.find(id);
      if (cached != cache_.end()) {
        cached->second.sealed_key = records[i].sealed_key;
        cached->second.key = *key;
      }
    }
    return Signer{g, std::move(*key)};
  }
  return Fail(CoreErrc::kInvalidArgument,
              "tenant " + std::string(tenant) + " has no CA that may sign now");
}

}  // namespace aspis::service::ca
