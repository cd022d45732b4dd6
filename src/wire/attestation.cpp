#include "wire/attestation.hpp"

#include "core/json.hpp"
#include "crypto/encoding.hpp"
#include "wire/codec.hpp"
#include "wire/errors.hpp"

namespace aspis::wire {

namespace {

using json::Json;

std::string B64(ByteView bytes) { return crypto::Base64Encode(bytes); }

Expected<Bytes> GetBytes(const Json& doc, std::string_view key, std::size_t max) {
  auto text = json::GetString(doc, key);
  if (!text) return std::unexpected(text.error());
  auto bytes = crypto::Base64Decode(*text);
  if (!bytes) return std::unexpected(std::move(bytes.error()).WithContext(std::string(key)));
  if (bytes->size() > max) {
    return Fail(WireErrc::kProtocol, "field \"" + std::string(key) + "\" is larger than " +
                                         std::to_string(max) + " bytes");
  }
  return bytes;
}

Json QuoteJson(const Quote& quote) {
  return {{"attest", B64(quote.attest)}, {"signature", B64(quote.signature)}};
}

Expected<Quote> GetQuote(const Json& doc, std::string_view key) {
  auto object = json::GetObject(doc, key);
  if (!object) return std::unexpected(object.error());
  auto attest = GetBytes(**object, "attest", 4096);
  auto signature = GetBytes(**object, "signature", 1024);
  if (!attest) return std::unexpected(std::move(attest.error()).WithContext(std::string(key)));
  if (!signature) {
    return std::unexpected(std::move(signature.error()).WithContext(std::string(key)));
  }
  return Quote{std::move(*attest), std::move(*signature)};
}

Expected<crypto::Digest> GetDigest(const Json& value) {
  crypto::Digest digest{};
  auto bytes = value.is_string() ? HexDecode(value.get<std::string>())
                                 : Expected<Bytes>(Fail(WireErrc::kProtocol, "not a string"));
  if (!bytes || bytes->size() != digest.size()) {
    return Fail(WireErrc::kProtocol, "a digest must be 64 hex digits");
  }
  std::copy(bytes->begin(), bytes->end(), digest.begin());
  return digest;
}

constexpr std::string_view kTenantPrefix = "urn:aspis:tenant:";
constexpr std::string_view kDeviceInfix = ":device:";

}  // namespace

std::string DeviceUri(const DeviceName& name) {
  return std::string(kTenantPrefix) + name.tenant + std::string(kDeviceInfix) + name.device_id;
}

std::optional<DeviceName> ParseDeviceUri(std::string_view uri) {
  if (!uri.starts_with(kTenantPrefix)) return std::nullopt;
  uri.remove_prefix(kTenantPrefix.size());
  const std::size_t infix = uri.find(kDeviceInfix);
  if (infix == 0 || infix == std::string_view::npos || infix + kDeviceInfix.size() == uri.size()) {
    return std::nullopt;
  }
  return DeviceName{std::string(uri.substr(0, infix)),
                    std::string(uri.substr(infix + kDeviceInfix.size()))};
}

Expected<crypto::Digest> ReplayEventLog(const std::vector<MeasurementEvent>& events) {
  crypto::Digest value{};
  for (const auto& event : events) {
    Bytes chain(value.begin(), value.end());
    chain.insert(chain.end(), event.digest.begin(), event.digest.end());
    auto next = crypto::Sha256Of(chain);
    if (!next) return std::unexpected(next.error());
    value = *next;
  }
  return value;
}

Expected<crypto::Digest> EvidenceBinding(ByteView nonce, ByteView runtime_csr, ByteView app_csr) {
  auto runtime = crypto::Sha256Of(runtime_csr);
  auto app = crypto::Sha256Of(app_csr);
  if (!runtime || !app) return std::unexpected(!runtime ? runtime.error() : app.error());
  Bytes joined(nonce.begin(), nonce.end());
  joined.insert(joined.end(), runtime->begin(), runtime->end());
  joined.insert(joined.end(), app->begin(), app->end());
  return crypto::Sha256Of(joined);
}

std::string Serialize(const Challenge& challenge) {
  return Json{{"nonce", B64(challenge.nonce)}}.dump();
}

Expected<Challenge> ParseChallenge(std::string_view text) {
  auto doc = ParseMessage(text, "challenge");
  if (!doc) return std::unexpected(doc.error());
  auto nonce = In(GetBytes(*doc, "nonce", 256), "challenge");
  if (!nonce) return std::unexpected(nonce.error());
  return Challenge{std::move(*nonce)};
}

std::string Serialize(const Evidence& e) {
  Json events = Json::array();
  for (const auto& event : e.event_log) {
    events.push_back({{"component", event.component}, {"digest", crypto::ToHex(event.digest)}});
  }
  Json boot_pcrs = Json::array();
  for (const auto& value : e.boot_pcrs) boot_pcrs.push_back(crypto::ToHex(value));
  Json doc{{"device_id", e.device_id},
           {"identity_public_key", B64(e.identity_public_key)},
           {"root_of_trust", e.root_of_trust},
           {"event_log", std::move(events)},
           {"quote", QuoteJson(e.quote)},
           {"boot_pcrs", std::move(boot_pcrs)},
           {"nonce", B64(e.nonce)},
           {"runtime_csr", B64(e.runtime_csr)},
           {"app_csr", B64(e.app_csr)}};
  if (e.register_certification) {
    doc["register_certification"] = QuoteJson(*e.register_certification);
  }
  if (e.endorsement) {
    doc["endorsement"] = {{"ek_certificate", B64(e.endorsement->ek_certificate)},
                          {"ek_public", B64(e.endorsement->ek_public)},
                          {"identity_public", B64(e.endorsement->identity_public)}};
  }
  if (e.activation) {
    doc["activation"] = {{"secret", B64(e.activation->secret)},
                         {"token", B64(e.activation->token)}};
  }
  return doc.dump();
}

Expected<Evidence> ParseEvidence(std::string_view text) {
  auto doc = ParseMessage(text, "evidence");
  if (!doc) return std::unexpected(doc.error());
  Evidence e;
  auto device_id = In(json::GetString(*doc, "device_id"), "evidence");
  if (!device_id || device_id->size() > 128) {
    return Fail(WireErrc::kProtocol, "evidence needs a device_id of at most 128 characters");
  }
  e.device_id = std::move(*device_id);
  auto key = In(GetBytes(*doc, "identity_public_key", 1024), "evidence");
  auto nonce = In(GetBytes(*doc, "nonce", 256), "evidence");
  auto runtime_csr = In(GetBytes(*doc, "runtime_csr", 16384), "evidence");
  auto app_csr = In(GetBytes(*doc, "app_csr", 16384), "evidence");
  auto root_of_trust = In(json::GetString(*doc, "root_of_trust"), "evidence");
  auto quote = In(GetQuote(*doc, "quote"), "evidence");
  auto events = In(json::GetArray(*doc, "event_log"), "evidence");
  auto boot_pcrs = In(json::GetArray(*doc, "boot_pcrs"), "evidence");
  for (const Error* error :
       {key ? nullptr : &key.error(), nonce ? nullptr : &nonce.error(),
        runtime_csr ? nullptr : &runtime_csr.error(), app_csr ? nullptr : &app_csr.error(),
        root_of_trust ? nullptr : &root_of_trust.error(), quote ? nullptr : &quote.error(),
        events ? nullptr : &events.error(), boot_pcrs ? nullptr : &boot_pcrs.error()}) {
    if (error != nullptr) return std::unexpected(*error);
  }
  if (*root_of_trust != kRootOfTrustTpm && *root_of_trust != kRootOfTrustSoftware) {
    return Fail(WireErrc::kProtocol, "evidence root_of_trust must be \"tpm\" or \"software\"");
  }
  if (doc->contains("register_certification")) {
    auto certification = In(GetQuote(*doc, "register_certification"), "evidence");
    if (!certification) return std::unexpected(certification.error());
    e.register_certification = std::move(*certification);
  }
  if (doc->contains("endorsement")) {
    auto endorsement = In(json::GetObject(*doc, "endorsement"), "evidence");
    if (!endorsement) return std::unexpected(endorsement.error());
    auto certificate = In(GetBytes(**endorsement, "ek_certificate", 8192), "evidence endorsement");
    auto ek = In(GetBytes(**endorsement, "ek_public", 1024), "evidence endorsement");
    auto identity = In(GetBytes(**endorsement, "identity_public", 1024), "evidence endorsement");
    if (!certificate || !ek || !identity) {
      return std::unexpected(!certificate ? certificate.error()
                                          : (!ek ? ek.error() : identity.error()));
    }
    e.endorsement = Endorsement{std::move(*certificate), std::move(*ek), std::move(*identity)};
  }
  if (doc->contains("activation")) {
    auto activation = In(json::GetObject(*doc, "activation"), "evidence");
    if (!activation) return std::unexpected(activation.error());
    auto secret = In(GetBytes(**activation, "secret", 64), "evidence activation");
    auto token = In(GetBytes(**activation, "token", 256), "evidence activation");
    if (!secret || !token) return std::unexpected(!secret ? secret.error() : token.error());
    e.activation = ActivationProof{std::move(*secret), std::move(*token)};
  }
  if ((*boot_pcrs)->size() > kMaxBootPcrs) {
    return Fail(WireErrc::kProtocol,
                "evidence has more than " + std::to_string(kMaxBootPcrs) + " boot PCR values");
  }
  for (const auto& value : **boot_pcrs) {
    auto digest = In(GetDigest(value), "evidence boot_pcrs");
    if (!digest) return std::unexpected(digest.error());
    e.boot_pcrs.push_back(*digest);
  }
  if ((*events)->size() > kMaxEvents) {
    return Fail(WireErrc::kProtocol,
                "evidence event log has more than " + std::to_string(kMaxEvents) + " events");
  }
  for (const auto& entry : **events) {
    auto component = In(json::GetString(entry, "component"), "evidence event");
    auto digest_hex = In(json::GetString(entry, "digest"), "evidence event");
    if (!component) return std::unexpected(component.error());
    if (!digest_hex) return std::unexpected(digest_hex.error());
    auto digest = HexDecode(*digest_hex);
    MeasurementEvent event{*component, {}};
    if (!digest || digest->size() != event.digest.size() || component->size() > 256) {
      return Fail(WireErrc::kProtocol, "evidence event \"" + component->substr(0, 64) +
                                           "\" needs a 64-digit hex SHA-256 digest and a name "
                                           "of at most 256 characters");
    }
    std::copy(digest->begin(), digest->end(), event.digest.begin());
    e.event_log.push_back(std::move(event));
  }
  e.identity_public_key = std::move(*key);
  e.root_of_trust = std::move(*root_of_trust);
  e.quote = std::move(*quote);
  e.nonce = std::move(*nonce);
  e.runtime_csr = std::move(*runtime_csr);
  e.app_csr = std::move(*app_csr);
  return e;
}

std::string Serialize(const AttestationResult& r) {
  Json doc{{"verdict", r.verdict},
           {"runtime_certificate", r.runtime_certificate_pem},
           {"app_certificate", r.app_certificate_pem},
           {"ca_chain", r.ca_chain_pem}};
  if (r.credential) {
    doc["credential"] = {{"credential_blob", B64(r.credential->credential_blob)},
                         {"encrypted_secret", B64(r.credential->encrypted_secret)},
                         {"token", B64(r.credential->token)}};
  }
  return doc.dump();
}

Expected<AttestationResult> ParseAttestationResult(std::string_view text) {
  auto doc = ParseMessage(text, "attestation result");
  if (!doc) return std::unexpected(doc.error());
  auto verdict = json::GetString(*doc, "verdict");
  auto runtime = json::GetString(*doc, "runtime_certificate");
  auto app = json::GetString(*doc, "app_certificate");
  auto chain = json::GetString(*doc, "ca_chain");
  if (!verdict || !runtime || !app || !chain) {
    return Fail(WireErrc::kProtocol, "attestation result lacks a verdict or certificates");
  }
  AttestationResult result{*verdict, *runtime, *app, *chain, std::nullopt};
  if (doc->contains("credential")) {
    auto credential = json::GetObject(*doc, "credential");
    if (!credential) return std::unexpected(credential.error());
    auto blob = GetBytes(**credential, "credential_blob", 1024);
    auto secret = GetBytes(**credential, "encrypted_secret", 1024);
    auto token = GetBytes(**credential, "token", 256);
    if (!blob || !secret || !token) {
      return Fail(WireErrc::kProtocol, "attestation result has a malformed credential");
    }
    result.credential =
        CredentialChallenge{std::move(*blob), std::move(*secret), std::move(*token)};
  }
  return result;
}

}  // namespace aspis::wire
