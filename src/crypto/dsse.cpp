#include "crypto/dsse.hpp"

#include <set>

#include "core/json.hpp"
#include "crypto/encoding.hpp"
#include "crypto/errors.hpp"

namespace aspis::crypto::dsse {

Bytes Pae(std::string_view payload_type, ByteView payload) {
  const std::string head = "DSSEv1 " + std::to_string(payload_type.size()) + " " +
                           std::string(payload_type) + " " + std::to_string(payload.size()) + " ";
  Bytes out(head.begin(), head.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Expected<Envelope> Sign(std::string_view payload_type, ByteView payload,
                        std::span<const PrivateKey> keys) {
  if (keys.empty())
    return Fail(CryptoErrc::kInvalidArgument, "DSSE signing needs at least one key");
  if (payload_type.empty()) return Fail(CryptoErrc::kInvalidArgument, "DSSE payload type is empty");
  Envelope envelope{std::string(payload_type), Bytes(payload.begin(), payload.end()), {}};
  const Bytes pae = Pae(payload_type, payload);
  for (const auto& key : keys) {
    auto sig = key.Sign(pae);
    if (!sig) return std::unexpected(sig.error());
    envelope.signatures.push_back({key.Public().Fingerprint(), std::move(*sig)});
  }
  return envelope;
}

std::string Serialize(const Envelope& envelope) {
  json::Json signatures = json::Json::array();
  for (const auto& s : envelope.signatures) {
    signatures.push_back({{"keyid", s.keyid}, {"sig", Base64Encode(s.sig)}});
  }
  return json::Json{{"payloadType", envelope.payload_type},
                    {"payload", Base64Encode(envelope.payload)},
                    {"signatures", std::move(signatures)}}
      .dump();
}

Expected<Envelope> Parse(std::string_view text) {
  if (text.size() > kMaxEnvelopeSize) {
    return Fail(CryptoErrc::kParse,
                "DSSE envelope is larger than " + std::to_string(kMaxEnvelopeSize) + " bytes");
  }
  auto parsed = json::Parse(text, 8);
  if (!parsed) return std::unexpected(std::move(parsed.error()).WithContext("DSSE envelope"));
  const json::Json& doc = *parsed;
  auto type = json::GetString(doc, "payloadType");
  auto payload_text = json::GetString(doc, "payload");
  auto signatures = json::GetArray(doc, "signatures");
  if (!type) return std::unexpected(std::move(type.error()).WithContext("DSSE envelope"));
  if (!payload_text)
    return std::unexpected(std::move(payload_text.error()).WithContext("DSSE envelope"));
  if (!signatures)
    return std::unexpected(std::move(signatures.error()).WithContext("DSSE envelope"));
  auto payload = Base64Decode(*payload_text);
  if (!payload) return std::unexpected(std::move(payload.error()).WithContext("DSSE payload"));
  if ((*signatures)->size() > kMaxSignatures) {
    return Fail(CryptoErrc::kParse,
                "DSSE envelope has more than " + std::to_string(kMaxSignatures) + " signatures");
  }
  Envelope envelope{std::move(*type), std::move(*payload), {}};
  for (const auto& entry : **signatures) {
    auto sig_text = json::GetString(entry, "sig");
    if (!sig_text)
      return std::unexpected(std::move(sig_text.error()).WithContext("DSSE signature"));
    auto sig = Base64Decode(*sig_text);
    if (!sig) return std::unexpected(std::move(sig.error()).WithContext("DSSE signature"));
    std::string keyid;
    if (entry.contains("keyid")) {
      auto id = json::GetString(entry, "keyid");
      if (!id) return std::unexpected(std::move(id.error()).WithContext("DSSE signature"));
      keyid = std::move(*id);
    }
    envelope.signatures.push_back({std::move(keyid), std::move(*sig)});
  }
  return envelope;
}

const PublicKey* TrustedKeys::Find(std::string_view keyid) const {
  const auto it = keys_.find(keyid);
  return it == keys_.end() ? nullptr : &it->second;
}

Expected<Bytes> Verify(const Envelope& envelope, std::string_view expected_type,
                       const TrustedKeys& trusted, std::size_t threshold) {
  if (threshold == 0)
    return Fail(CryptoErrc::kInvalidArgument, "DSSE threshold must be at least 1");
  if (envelope.payload_type != expected_type) {
    return Fail(CryptoErrc::kUntrusted, "DSSE payload type is \"" + envelope.payload_type +
                                            "\", expected \"" + std::string(expected_type) + "\"");
  }
  if (envelope.signatures.size() > kMaxSignatures) {
    return Fail(CryptoErrc::kUntrusted, "DSSE envelope has too many signatures");
  }
  const Bytes pae = Pae(envelope.payload_type, envelope.payload);
  std::set<std::string> signers;
  std::string unknown;
  for (const auto& s : envelope.signatures) {
    // The key ID selects the key; signatures from keys we do not trust are not tried at all.
    const PublicKey* key = trusted.Find(s.keyid);
    if (key == nullptr) {
      if (unknown.empty()) unknown = s.keyid.empty() ? "(no key id)" : s.keyid.substr(0, 16);
      continue;
    }
    const Verdict verdict = key->Verify(pae, s.sig);
    if (verdict.outcome() == Verdict::Outcome::kCouldNotCheck) {
      return Fail(CryptoErrc::kOpenSsl, "could not check DSSE signature: " + verdict.reason());
    }
    if (verdict.valid()) signers.insert(s.keyid);
  }
  if (signers.size() < threshold) {
    std::string message = "DSSE envelope has " + std::to_string(signers.size()) +
                          " valid signature(s) from trusted keys, " + std::to_string(threshold) +
                          " required";
    if (!unknown.empty()) message += " (signed by untrusted key id " + unknown + "...)";
    return Fail(CryptoErrc::kUntrusted, std::move(message));
  }
  return envelope.payload;
}

}  // namespace aspis::crypto::dsse
