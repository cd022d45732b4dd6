#include "crypto/x509.hpp"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <ctime>
#include <limits>

#include "crypto/encoding.hpp"
#include "crypto/errors.hpp"
#include "crypto/key_library.hpp"
#include "crypto/openssl_ptr.hpp"

namespace aspis::crypto {

namespace {

constexpr std::size_t kMaxDerSize = std::size_t{64} << 10;

Expected<std::string> PemOf(auto write, auto* object) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), object) != 1) return std::unexpected(OpenSslError("encoding PEM"));
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string CommonNameOf(const X509_NAME* name) {
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<std::size_t>(ASN1_STRING_length(data)));
}

std::chrono::sys_seconds ToSeconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::sys_seconds(std::chrono::seconds(timegm(&tm)));
}

// Saturated at Clock's range (about 1677 to 2262), which a certificate may outlast.
Clock::TimePoint ToTimePoint(const ASN1_TIME* t) {
  const auto seconds = ToSeconds(t).time_since_epoch();
  using Limits = std::numeric_limits<Clock::TimePoint::duration::rep>;
  const auto max =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::TimePoint::duration(Limits::max()));
  if (seconds >= max) return Clock::TimePoint::max();
  if (seconds <= -max) return Clock::TimePoint::min();
  return Clock::TimePoint(std::chrono::duration_cast<Clock::TimePoint::duration>(seconds));
}

Expected<X509NamePtr> BuildName(const CertificateProfile& profile) {
  if (profile.common_name.empty()) {
    return Fail(CryptoErrc::kInvalidArgument, "certificate common name is empty");
  }
  X509NamePtr name(X509_NAME_new());
  auto add = [&](const char* field, const std::string& value) {
    return X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0) == 1;
  };
  if (!name || (!profile.organization.empty() && !add("O", profile.organization)) ||
      !add("CN", profile.common_name)) {
    return std::unexpected(OpenSslError("building certificate name", CryptoErrc::kInvalidArgument));
  }
  return name;
}

// Adds an extension built from a constant configuration string (never from caller data).
Expected<void> AddConfExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return std::unexpected(OpenSslError(std::string("adding extension ") + OBJ_nid2sn(nid)));
  }
  return {};
}

Expected<void> AddSubjectAltNames(X509* cert, const CertificateProfile& profile) {
  if (profile.san_uris.empty() && profile.san_dns.empty() && profile.san_ips.empty()) return {};
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return std::unexpected(OpenSslError("building subject alternative names"));
  auto push_string = [&](int type, const std::string& value) -> bool {
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    if (gn == nullptr || s == nullptr ||
        ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(s);
      return false;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
      GENERAL_NAME_free(gn);
      return false;
    }
    return true;
  };
  for (const auto& uri : profile.san_uris) {
    if (!push_string(GEN_URI, uri)) return std::unexpected(OpenSslError("adding URI name"));
  }
  for (const auto& dns : profile.san_dns) {
    if (!push_string(GEN_DNS, dns)) return std::unexpected(OpenSslError("adding DNS name"));
  }
  for (const auto& ip : profile.san_ips) {
    GENERAL_NAME* gn = a2i_GENERAL_NAME(nullptr, nullptr, nullptr, GEN_IPADD, ip.c_str(), 0);
    if (gn == nullptr) {
      return std::unexpected(
          OpenSslError("\"" + ip + "\" is not an IP address", CryptoErrc::kInvalidArgument));
    }
    if (sk_GENERAL_NAME_push(names.get(), gn) == 0) {
      GENERAL_NAME_free(gn);
      return std::unexpected(OpenSslError("adding IP address name"));
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return std::unexpected(OpenSslError("adding subject alternative names"));
  }
  return {};
}

Expected<void> AddPolicies(X509* cert, const std::vector<std::string>& oids) {
  if (oids.empty()) return {};
  CertificatePoliciesPtr policies(CERTIFICATEPOLICIES_new());
  if (!policies) return std::unexpected(OpenSslError("building certificate policies"));
  for (const auto& oid : oids) {
    POLICYINFO* info = POLICYINFO_new();
    ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), /*no_name=*/1);
    if (info == nullptr || obj == nullptr) {
      POLICYINFO_free(info);
      ASN1_OBJECT_free(obj);
      return std::unexpected(OpenSslError("\"" + oid + "\" is not a dotted-decimal OID",
                                          CryptoErrc::kInvalidArgument));
    }
    ASN1_OBJECT_free(info->policyid);
    info->policyid = obj;
    if (sk_POLICYINFO_push(policies.get(), info) == 0) {
      POLICYINFO_free(info);
      return std::unexpected(OpenSslError("adding certificate policy"));
    }
  }
  if (X509_add1_ext_i2d(cert, NID_certificate_policies, policies.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    return std::unexpected(OpenSslError("adding certificate policies"));
  }
  return {};
}

Expected<void> SetSerial(X509* cert) {
  auto random = RandomBytes(16);
  if (!random) return std::unexpected(random.error());
  (*random)[0] &= 0x7f;  // positive
  (*random)[0] |= 0x01;  // and never shorter than 16 bytes
  BignumPtr bn(BN_bin2bn(random->data(), static_cast<int>(random->size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return std::unexpected(OpenSslError("setting serial number"));
  }
  return {};
}

// Builds and signs a certificate. `issuer` is null for a self-signed one.
Expected<Certificate> Build(X509* issuer, const PrivateKey& issuer_key, const PublicKey& subject,
                            const CertificateProfile& profile) {
  if (profile.lifetime <= std::chrono::seconds(0)) {
    return Fail(CryptoErrc::kInvalidArgument, "certificate lifetime must be positive");
  }
  auto name = BuildName(profile);
  if (!name) return std::unexpected(name.error());
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return std::unexpected(OpenSslError("creating certificate"));
  }
  if (auto ok = SetSerial(cert.get()); !ok) return std::unexpected(ok.error());
  const std::time_t not_before = std::chrono::system_clock::to_time_t(profile.not_before);
  const std::time_t not_after =
      std::chrono::system_clock::to_time_t(profile.not_before + profile.lifetime);
  if (X509_set_subject_name(cert.get(), name->get()) != 1 ||
      X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name->get()) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after) == nullptr ||
      X509_set_pubkey(cert.get(), subject.native()) != 1) {
    return std::unexpected(OpenSslError("filling certificate"));
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string constraints = profile.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
  if (profile.is_ca && profile.path_length) {
    constraints += ",pathlen:" + std::to_string(*profile.path_length);
  }
  const char* usage =
      profile.is_ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature";
  std::string eku;
  if (profile.client_auth) eku = "clientAuth";
  if (profile.server_auth) eku += eku.empty() ? "serverAuth" : ",serverAuth";
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, constraints.c_str()}, std::pair{NID_key_usage, usage},
        std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto ok = AddConfExtension(cert.get(), &ctx, nid, value); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (!eku.empty()) {
    if (auto ok = AddConfExtension(cert.get(), &ctx, NID_ext_key_usage, eku.c_str()); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (auto ok = AddSubjectAltNames(cert.get(), profile); !ok) return std::unexpected(ok.error());
  if (auto ok = AddPolicies(cert.get(), profile.policy_oids); !ok) {
    return std::unexpected(ok.error());
  }
  auto signing = BeginSigning(issuer_key);
  if (!signing) return std::unexpected(signing.error());
  if (X509_sign_ctx(cert.get(), signing->get()) <= 0) {
    return std::unexpected(OpenSslError("signing certificate"));
  }
  return Certificate::FromNative(cert.get());
}

}  // namespace

namespace {

Expected<X509Ptr> ParseDer(ByteView der) {
  if (der.size() > kMaxDerSize)
    return Fail(CryptoErrc::kParse, "certificate is larger than 64 KiB");
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert)
    return std::unexpected(OpenSslError("bytes are not a DER certificate", CryptoErrc::kParse));
  if (p != der.data() + der.size())
    return Fail(CryptoErrc::kParse, "certificate DER has trailing bytes");
  return cert;
}

// Every certificate in `pem`, each through `adopt`.
template <class T, class Adopt>
Expected<std::vector<T>> ParsePemList(std::string_view pem, Adopt adopt) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading certificate PEM"));
  std::vector<T> out;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    auto parsed = adopt(cert.get());
    if (!parsed) return std::unexpected(parsed.error());
    out.push_back(std::move(*parsed));
  }
  const unsigned long last = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (!clean_end || out.empty()) {
    return std::unexpected(OpenSslError(
        out.empty() ? "text holds no PEM certificate" : "PEM certificate list is malformed",
        CryptoErrc::kParse));
  }
  ERR_clear_error();
  return out;
}

Expected<Bytes> EncodeDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding certificate"));
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  return bytes;
}

}  // namespace

Expected<Certificate> Certificate::FromNative(X509* cert) {
  X509_PUBKEY* spki = X509_get_X509_PUBKEY(cert);
  if (spki == nullptr) {
    return std::unexpected(
        OpenSslError("certificate has no usable public key", CryptoErrc::kParse));
  }
  auto public_key = PublicKey::FromSpki(spki);
  if (!public_key)
    return std::unexpected(std::move(public_key.error()).WithContext("certificate key"));
  auto der = EncodeDer(cert);
  if (!der) return std::unexpected(der.error());
  if (X509_up_ref(cert) != 1) return std::unexpected(OpenSslError("referencing certificate"));
  return Certificate(std::shared_ptr<X509>(cert, X509_free), std::move(*der),
                     std::move(*public_key));
}

Expected<Certificate> Certificate::FromDer(ByteView der) {
  auto cert = ParseDer(der);
  if (!cert) return std::unexpected(cert.error());
  return FromNative(cert->get());
}

Expected<std::vector<Certificate>> Certificate::ChainFromPem(std::string_view pem) {
  return ParsePemList<Certificate>(pem, [](X509* cert) { return FromNative(cert); });
}

Expected<ForeignCertificate> ForeignCertificate::FromNative(X509* cert) {
  auto der = EncodeDer(cert);
  if (!der) return std::unexpected(der.error());
  if (X509_up_ref(cert) != 1) return std::unexpected(OpenSslError("referencing certificate"));
  return ForeignCertificate(std::shared_ptr<X509>(cert, X509_free), std::move(*der));
}

Expected<ForeignCertificate> ForeignCertificate::FromDer(ByteView der) {
  auto cert = ParseDer(der);
  if (!cert) return std::unexpected(cert.error());
  return FromNative(cert->get());
}

Expected<std::vector<ForeignCertificate>> ForeignCertificate::ChainFromPem(std::string_view pem) {
  return ParsePemList<ForeignCertificate>(pem, [](X509* cert) { return FromNative(cert); });
}

Expected<Bytes> ForeignCertificate::SubjectPublicKeyInfo() const {
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert_.get()), &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding the certificate's public key"));
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  return bytes;
}

namespace {

std::string Rfc2253(const X509_NAME* name, std::string_view unreadable) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) {
    ERR_clear_error();
    return std::string(unreadable);
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

std::string ForeignCertificate::SubjectName() const {
  return Rfc2253(X509_get_subject_name(cert_.get()), "(unreadable subject)");
}

std::string ForeignCertificate::IssuerName() const {
  return Rfc2253(X509_get_issuer_name(cert_.get()), "(unreadable issuer)");
}

std::chrono::sys_seconds ForeignCertificate::NotBefore() const {
  return ToSeconds(X509_get0_notBefore(cert_.get()));
}

std::chrono::sys_seconds ForeignCertificate::NotAfter() const {
  return ToSeconds(X509_get0_notAfter(cert_.get()));
}

Expected<std::string> ForeignCertificate::ToPem() const {
  return PemOf(PEM_write_bio_X509, cert_.get());
}

Expected<Certificate> Certificate::FromPem(std::string_view pem) {
  auto chain = ChainFromPem(pem);
  if (!chain) return std::unexpected(chain.error());
  return std::move(chain->front());
}

Expected<std::string> Certificate::ToPem() const { return PemOf(PEM_write_bio_X509, cert_.get()); }

std::string Certificate::SubjectCommonName() const {
  return CommonNameOf(X509_get_subject_name(cert_.get()));
}

std::string Certificate::IssuerCommonName() const {
  return CommonNameOf(X509_get_issuer_name(cert_.get()));
}

std::string Certificate::SerialHex() const {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert_.get());
  return HexEncode(ByteView(ASN1_STRING_get0_data(serial),
                            static_cast<std::size_t>(ASN1_STRING_length(serial))));
}

Clock::TimePoint Certificate::NotBefore() const {
  return ToTimePoint(X509_get0_notBefore(cert_.get()));
}

Clock::TimePoint Certificate::NotAfter() const {
  return ToTimePoint(X509_get0_notAfter(cert_.get()));
}

bool Certificate::IsCa() const { return X509_check_ca(cert_.get()) != 0; }

std::vector<std::string> Certificate::SanUris() const {
  std::vector<std::string> out;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert_.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                     static_cast<std::size_t>(ASN1_STRING_length(uri)));
  }
  return out;
}

std::vector<std::string> Certificate::PolicyOids() const {
  std::vector<std::string> out;
  CertificatePoliciesPtr policies(static_cast<CERTIFICATEPOLICIES*>(
      X509_get_ext_d2i(cert_.get(), NID_certificate_policies, nullptr, nullptr)));
  for (int i = 0; policies && i < sk_POLICYINFO_num(policies.get()); ++i) {
    char text[128];
    const int len =
        OBJ_obj2txt(text, sizeof text, sk_POLICYINFO_value(policies.get(), i)->policyid, 1);
    if (len > 0 && static_cast<std::size_t>(len) < sizeof text) out.emplace_back(text);
  }
  return out;
}

Expected<CertificateRequest> CertificateRequest::Adopt(X509_REQ* req) {
  X509ReqPtr owned(req);
  X509_PUBKEY* spki = X509_REQ_get_X509_PUBKEY(req);
  if (spki == nullptr) {
    return std::unexpected(
        OpenSslError("certificate request has no usable public key", CryptoErrc::kParse));
  }
  auto public_key = PublicKey::FromSpki(spki);
  if (!public_key) return std::unexpected(std::move(public_key.error()).WithContext("request key"));
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req, &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding certificate request"));
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  return CertificateRequest(std::shared_ptr<X509_REQ>(owned.release(), X509_REQ_free),
                            std::move(bytes), std::move(*public_key));
}

Expected<CertificateRequest> CertificateRequest::Create(const PrivateKey& key,
                                                        std::string_view common_name) {
  CertificateProfile profile;
  profile.common_name = std::string(common_name);
  auto name = BuildName(profile);
  if (!name) return std::unexpected(name.error());
  auto signing = BeginSigning(key);
  if (!signing) return std::unexpected(signing.error());
  X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name->get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.Public().native()) != 1 ||
      X509_REQ_sign_ctx(req.get(), signing->get()) <= 0) {
    return std::unexpected(OpenSslError("creating certificate request"));
  }
  return Adopt(req.release());
}

Expected<CertificateRequest> CertificateRequest::FromDer(ByteView der) {
  if (der.size() > kMaxDerSize) {
    return Fail(CryptoErrc::kParse, "certificate request is larger than 64 KiB");
  }
  const unsigned char* p = der.data();
  X509ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) {
    return std::unexpected(
        OpenSslError("bytes are not a DER certificate request", CryptoErrc::kParse));
  }
  if (p != der.data() + der.size()) {
    return Fail(CryptoErrc::kParse, "certificate request DER has trailing bytes");
  }
  return Adopt(req.release());
}

Expected<CertificateRequest> CertificateRequest::FromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading certificate request PEM"));
  X509_REQ* req = PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr);
  if (req == nullptr) {
    return std::unexpected(
        OpenSslError("text is not a PEM certificate request", CryptoErrc::kParse));
  }
  return Adopt(req);
}

Expected<std::string> CertificateRequest::ToPem() const {
  return PemOf(PEM_write_bio_X509_REQ, req_.get());
}

std::string CertificateRequest::SubjectCommonName() const {
  return CommonNameOf(X509_REQ_get_subject_name(req_.get()));
}

Verdict CertificateRequest::VerifySignature() const {
  const int rc = X509_REQ_verify(req_.get(), public_key_.native());
  if (rc == 1) return Verdict::Valid();
  const Error error = OpenSslError("certificate request signature does not verify");
  // OpenSSL reports a garbled signature as -1 too; only an allocation failure cannot be judged.
  if (rc < 0 && ERR_GET_REASON(ERR_peek_last_error()) == ERR_R_MALLOC_FAILURE) {
    return Verdict::CouldNotCheck(error.message());
  }
  return Verdict::Invalid(error.message());
}

Expected<Certificate> CreateSelfSigned(const PrivateKey& key, const CertificateProfile& profile) {
  return Build(nullptr, key, key.Public(), profile);
}

Expected<Certificate> Issue(const Certificate& issuer, const PrivateKey& issuer_key,
                            const PublicKey& subject, const CertificateProfile& profile) {
  if (!issuer.IsCa()) {
    return Fail(CryptoErrc::kInvalidArgument,
                "issuer \"" + issuer.SubjectCommonName() + "\" is not a CA");
  }
  if (!(issuer.SubjectPublicKey() == issuer_key.Public())) {
    return Fail(CryptoErrc::kInvalidArgument, "issuer key does not match the issuer certificate");
  }
  // Certificates carry whole seconds.
  if (std::chrono::floor<std::chrono::seconds>(profile.not_before) + profile.lifetime >
      issuer.NotAfter()) {
    return Fail(CryptoErrc::kInvalidArgument,
                "certificate would outlive its issuer \"" + issuer.SubjectCommonName() + "\"");
  }
  return Build(issuer.native(), issuer_key, subject, profile);
}

Expected<std::string> IssueCrl(const Certificate& issuer, const PrivateKey& issuer_key,
                               const CrlProfile& profile) {
  if (!issuer.IsCa()) {
    return Fail(CryptoErrc::kInvalidArgument,
                "issuer \"" + issuer.SubjectCommonName() + "\" is not a CA");
  }
  if (!(issuer.SubjectPublicKey() == issuer_key.Public())) {
    return Fail(CryptoErrc::kInvalidArgument, "the CRL signing key is not the issuer's");
  }
  const X509CrlPtr crl(X509_CRL_new());
  const Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!crl || !number || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.native())) != 1 ||
      ASN1_INTEGER_set_uint64(number.get(), profile.number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return std::unexpected(OpenSslError("creating a CRL"));
  }
  const Asn1TimePtr this_update(
      ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(profile.this_update)));
  const Asn1TimePtr next_update(
      ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(profile.next_update)));
  if (!this_update || !next_update || X509_CRL_set1_lastUpdate(crl.get(), this_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1) {
    return std::unexpected(OpenSslError("setting the CRL's dates"));
  }
  for (const auto& entry : profile.revoked) {
    auto serial_bytes = HexDecode(entry.serial_hex);
    if (!serial_bytes) return Fail(CryptoErrc::kInvalidArgument, "a revoked serial is not hex");
    X509RevokedPtr revoked(X509_REVOKED_new());
    const Asn1IntegerPtr serial(ASN1_INTEGER_new());
    const Asn1TimePtr at(
        ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(entry.revoked_at)));
    if (!revoked || !serial || !at ||
        ASN1_STRING_set(serial.get(), serial_bytes->data(),
                        static_cast<int>(serial_bytes->size())) != 1 ||
        X509_REVOKED_set_serialNumber(revoked.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(revoked.get(), at.get()) != 1) {
      return std::unexpected(OpenSslError("adding a revoked certificate to the CRL"));
    }
    // Once added, the entry is the CRL's.
    X509_REVOKED* added = revoked.release();
    if (X509_CRL_add0_revoked(crl.get(), added) != 1) {
      X509_REVOKED_free(added);
      return std::unexpected(OpenSslError("adding a revoked certificate to the CRL"));
    }
  }
  if (X509_CRL_sort(crl.get()) != 1) return std::unexpected(OpenSslError("sorting the CRL"));
  auto signing = BeginSigning(issuer_key);
  if (!signing) return std::unexpected(signing.error());
  if (X509_CRL_sign_ctx(crl.get(), signing->get()) <= 0) {
    return std::unexpected(OpenSslError("signing the CRL"));
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) {
    return std::unexpected(OpenSslError("encoding the CRL"));
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

namespace {

template <class Cert>
Verdict VerifyNativeChain(const Cert& leaf, std::span<const Cert> intermediates,
                          std::span<const Cert> roots, Clock::TimePoint at,
                          std::string_view leaf_name) {
  X509StorePtr store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) {
    return Verdict::CouldNotCheck(OpenSslError("preparing chain verification").message());
  }
  for (const auto& root : roots) {
    if (X509_STORE_add_cert(store.get(), root.native()) != 1) {
      return Verdict::CouldNotCheck(OpenSslError("adding trusted root").message());
    }
  }
  for (const auto& cert : intermediates) {
    if (X509_up_ref(cert.native()) != 1 || sk_X509_push(untrusted.get(), cert.native()) == 0) {
      return Verdict::CouldNotCheck(OpenSslError("adding intermediate").message());
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.native(), untrusted.get()) != 1) {
    return Verdict::CouldNotCheck(OpenSslError("preparing chain verification").message());
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(at));
  // Every given root is a trust anchor, self-signed or not: a tenant CA alone can be pinned.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN);
  const int rc = X509_verify_cert(ctx.get());
  if (rc == 1) return Verdict::Valid();
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  std::string reason =
      "certificate \"" + std::string(leaf_name) +
      "\" does not chain to a trusted root: " + X509_verify_cert_error_string(error);
  if (rc < 0 || error == X509_V_ERR_OUT_OF_MEM || error == X509_V_ERR_UNSPECIFIED) {
    return Verdict::CouldNotCheck(std::move(reason));
  }
  return Verdict::Invalid(std::move(reason));
}

}  // namespace

Verdict VerifyChain(const Certificate& leaf, std::span<const Certificate> intermediates,
                    std::span<const Certificate> roots, Clock::TimePoint at) {
  return VerifyNativeChain(leaf, intermediates, roots, at, leaf.SubjectCommonName());
}

Verdict VerifyChain(const ForeignCertificate& leaf,
                    std::span<const ForeignCertificate> intermediates,
                    std::span<const ForeignCertificate> roots, Clock::TimePoint at) {
  return VerifyNativeChain(leaf, intermediates, roots, at, "issued by " + leaf.IssuerName());
}

std::optional<int> VerifyErrorOfText(std::string_view text) {
  // OpenSSL 3.0's codes run to 94; it gives every other one the same text, which names none.
  const std::string_view unknown = X509_verify_cert_error_string(-1);
  if (text == unknown) return std::nullopt;
  for (int code = 0; code < 256; ++code) {
    if (text == X509_verify_cert_error_string(code)) return code;
  }
  return std::nullopt;
}

}  // namespace aspis::crypto
