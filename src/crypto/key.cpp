#include "crypto/key.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <limits>

#include "crypto/errors.hpp"
#include "crypto/key_library.hpp"
#include "crypto/openssl_ptr.hpp"
#include "crypto/sha256.hpp"

namespace aspis::crypto {

namespace {

constexpr std::size_t kScalarSize = 32;

std::shared_ptr<EVP_PKEY> Share(EVP_PKEY* key) { return {key, EVP_PKEY_free}; }

Expected<void> RequireP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
    return Fail(CryptoErrc::kUnsupportedKey,
                "key is not an elliptic-curve key (Aspis uses ECDSA P-256)");
  }
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) !=
          1 ||
      OBJ_sn2nid(group) != NID_X9_62_prime256v1) {
    return Fail(CryptoErrc::kUnsupportedKey, std::string("elliptic-curve key is on curve ") +
                                                 (group[0] ? group : "(unknown)") + ", not P-256");
  }
  return {};
}

Expected<Bytes> SpkiDer(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding public key"));
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

// The DER SubjectPublicKeyInfo of a P-256 key (id-ecPublicKey, namedCurve prime256v1) up to its
// 65-byte uncompressed point: the one encoding Aspis keys take. Parsing it by this template and
// building the key from the point spares OpenSSL 3.0's general decoder, which costs several ECDSA
// verifications per key.
constexpr std::array<unsigned char, 26> kP256SpkiPrefix = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
constexpr std::size_t kPointSize = 1 + 2 * kScalarSize;

bool IsUncompressedPoint(ByteView point) {
  return point.size() == kPointSize && point[0] == POINT_CONVERSION_UNCOMPRESSED;
}

// A provider key from an uncompressed P-256 point; refused when the point is not on the curve.
Expected<EvpPkeyPtr> KeyFromPoint(ByteView point) {
  char group[] = "P-256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                        const_cast<unsigned char*>(point.data()), point.size()),
      OSSL_PARAM_construct_end()};
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) !=
          1) {
    return std::unexpected(OpenSslError("point is not on the P-256 curve", CryptoErrc::kParse));
  }
  return EvpPkeyPtr(raw);
}

Expected<std::string> BioToString(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  if (len < 0) return std::unexpected(OpenSslError("reading memory buffer"));
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

Expected<PublicKey> PublicKey::FromNative(EVP_PKEY* key) {
  if (auto ok = RequireP256(key); !ok) return std::unexpected(ok.error());
  auto der = SpkiDer(key);
  if (!der) return std::unexpected(der.error());
  auto digest = Sha256Of(*der);
  if (!digest) return std::unexpected(digest.error());
  if (EVP_PKEY_up_ref(key) != 1) return std::unexpected(OpenSslError("referencing key"));
  return PublicKey(Share(key), std::move(*der), ToHex(*digest));
}

Expected<PublicKey> PublicKey::FromPoint(ByteView point) {
  if (!IsUncompressedPoint(point)) {
    return Fail(CryptoErrc::kParse, "not an uncompressed P-256 point");
  }
  auto key = KeyFromPoint(point);
  if (!key) return std::unexpected(key.error());
  Bytes der(kP256SpkiPrefix.begin(), kP256SpkiPrefix.end());
  der.insert(der.end(), point.begin(), point.end());
  auto digest = Sha256Of(der);
  if (!digest) return std::unexpected(digest.error());
  return PublicKey(Share(key->release()), std::move(der), ToHex(*digest));
}

Expected<PublicKey> PublicKey::FromSpki(X509_PUBKEY* spki) {
  // The usual case without decoding the key: P-256 by name, uncompressed point.
  ASN1_OBJECT* algorithm = nullptr;
  const unsigned char* point = nullptr;
  int point_size = 0;
  X509_ALGOR* algor = nullptr;
  if (X509_PUBKEY_get0_param(&algorithm, &point, &point_size, &algor, spki) == 1 &&
      OBJ_obj2nid(algorithm) == NID_X9_62_id_ecPublicKey && point_size > 0) {
    int parameter_type = 0;
    const void* parameter = nullptr;
    X509_ALGOR_get0(nullptr, &parameter_type, &parameter, algor);
    const ByteView bits(point, static_cast<std::size_t>(point_size));
    if (parameter_type == V_ASN1_OBJECT &&
        OBJ_obj2nid(static_cast<const ASN1_OBJECT*>(parameter)) == NID_X9_62_prime256v1 &&
        IsUncompressedPoint(bits)) {
      return FromPoint(bits);
    }
  }
  EVP_PKEY* key = X509_PUBKEY_get0(spki);
  if (key == nullptr) {
    return std::unexpected(OpenSslError("unusable public key", CryptoErrc::kUnsupportedKey));
  }
  if (auto ok = RequireP256(key); !ok) return std::unexpected(ok.error());
  // Re-serialized from the parsed structure: canonical DER, whatever encoding came in.
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(spki, &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding public key"));
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  auto digest = Sha256Of(bytes);
  if (!digest) return std::unexpected(digest.error());
  if (EVP_PKEY_up_ref(key) != 1) return std::unexpected(OpenSslError("referencing key"));
  return PublicKey(Share(key), std::move(bytes), ToHex(*digest));
}

Expected<PublicKey> PublicKey::FromCanonicalDer(ByteView spki) {
  if (spki.size() != kP256SpkiPrefix.size() + kPointSize ||
      !std::equal(kP256SpkiPrefix.begin(), kP256SpkiPrefix.end(), spki.begin())) {
    return Fail(CryptoErrc::kParse,
                "public key is not a named-curve P-256 SubjectPublicKeyInfo with an uncompressed "
                "point");
  }
  return FromPoint(spki.subspan(kP256SpkiPrefix.size()));
}

Expected<PublicKey> PublicKey::FromDer(ByteView spki) {
  if (spki.size() == kP256SpkiPrefix.size() + kPointSize &&
      std::equal(kP256SpkiPrefix.begin(), kP256SpkiPrefix.end(), spki.begin())) {
    return FromPoint(spki.subspan(kP256SpkiPrefix.size()));
  }
  if (spki.size() > static_cast<std::size_t>(std::numeric_limits<long>::max())) {
    return Fail(CryptoErrc::kParse, "public key is too large");
  }
  const unsigned char* p = spki.data();
  X509PubkeyPtr parsed(d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (!parsed)
    return std::unexpected(
        OpenSslError("public key is not a DER SubjectPublicKeyInfo", CryptoErrc::kParse));
  if (p != spki.data() + spki.size()) {
    return Fail(CryptoErrc::kParse, "public key DER has trailing bytes");
  }
  return FromSpki(parsed.get());
}

Expected<PublicKey> PublicKey::FromEcPoint(ByteView x, ByteView y) {
  if (x.size() != kScalarSize || y.size() != kScalarSize) {
    return Fail(CryptoErrc::kParse, "P-256 point coordinates must be 32 bytes each");
  }
  Bytes point{POINT_CONVERSION_UNCOMPRESSED};
  point.insert(point.end(), x.begin(), x.end());
  point.insert(point.end(), y.begin(), y.end());
  return FromPoint(point);
}

Expected<PublicKey> PublicKey::FromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading public key PEM"));
  EvpPkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key)
    return std::unexpected(OpenSslError("text is not a PEM public key", CryptoErrc::kParse));
  return FromNative(key.get());
}

Expected<std::vector<PublicKey>> PublicKey::AllFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading public key PEM"));
  std::vector<PublicKey> keys;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long length = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &length) != 1) break;
    const std::string type = name;
    const Bytes der(data, data + length);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (type != PEM_STRING_PUBLIC) continue;
    auto key = FromDer(der);
    if (!key) return std::unexpected(key.error());
    keys.push_back(std::move(*key));
  }
  const unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
    return keys;
  }
  return std::unexpected(OpenSslError("a PEM block is malformed", CryptoErrc::kParse));
}

Expected<std::string> PublicKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
    return std::unexpected(OpenSslError("encoding public key"));
  }
  return BioToString(bio.get());
}

Verdict PublicKey::Verify(ByteView data, ByteView der_signature) const {
  // Parse strictly first: OpenSSL reports a malformed signature as an error (-1), and a forged
  // signature must read as invalid, not as "could not check".
  auto rs = EcdsaDerToRs(der_signature);
  if (!rs) return Verdict::Invalid("signature is not a DER ECDSA signature");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit_ex(ctx.get(), nullptr, "SHA256", nullptr, nullptr, key_.get(),
                                      nullptr) != 1) {
    return Verdict::CouldNotCheck(OpenSslError("preparing signature verification").message());
  }
  const int rc = EVP_DigestVerify(ctx.get(), der_signature.data(), der_signature.size(),
                                  data.data(), data.size());
  if (rc == 1) return Verdict::Valid();
  if (rc == 0) {
    ERR_clear_error();
    return Verdict::Invalid("signature does not match key " + fingerprint_.substr(0, 16));
  }
  return Verdict::CouldNotCheck(OpenSslError("verifying signature").message());
}

Expected<PrivateKey> PrivateKey::Adopt(EVP_PKEY* key) {
  auto pub = PublicKey::FromNative(key);
  EvpPkeyPtr owned(key);
  if (!pub) return std::unexpected(pub.error());
  return PrivateKey(Share(owned.release()), std::move(*pub));
}

Expected<PrivateKey> PrivateKey::GenerateP256() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return std::unexpected(OpenSslError("generating P-256 key"));
  return Adopt(key);
}

Expected<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading private key PEM"));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return std::unexpected(
        OpenSslError("text is not an unencrypted PEM private key", CryptoErrc::kParse));
  }
  return Adopt(key);
}

Expected<std::string> PrivateKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey_ex(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr,
                                          nullptr, ContextOf(*this), PropertiesOf(*this)) != 1) {
    return std::unexpected(OpenSslError("encoding private key"));
  }
  return BioToString(bio.get());
}

const std::shared_ptr<const KeyLibrary>& LibraryOf(const PrivateKey& key) { return key.library_; }

Expected<EvpMdCtxPtr> BeginSigning(const PrivateKey& key) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", ContextOf(key), PropertiesOf(key),
                                    key.native(), nullptr) != 1) {
    return std::unexpected(OpenSslError("preparing ECDSA signature"));
  }
  return ctx;
}

Expected<Bytes> PrivateKey::Sign(ByteView data) const {
  auto ctx = BeginSigning(*this);
  if (!ctx) return std::unexpected(ctx.error());
  std::size_t len = 0;
  if (EVP_DigestSign(ctx->get(), nullptr, &len, data.data(), data.size()) != 1) {
    return std::unexpected(OpenSslError("preparing ECDSA signature"));
  }
  Bytes signature(len);
  if (EVP_DigestSign(ctx->get(), signature.data(), &len, data.data(), data.size()) != 1) {
    return std::unexpected(OpenSslError("signing"));
  }
  signature.resize(len);
  return signature;
}

Expected<EcdsaRs> EcdsaDerToRs(ByteView der) {
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) {
    ERR_clear_error();
    return Fail(CryptoErrc::kParse, "not a DER ECDSA signature");
  }
  // Re-encoding must give the same bytes: rejects BER leniencies (malleable encodings).
  unsigned char* again = nullptr;
  const int again_len = i2d_ECDSA_SIG(sig.get(), &again);
  const bool canonical =
      again_len == static_cast<int>(der.size()) && std::equal(der.begin(), der.end(), again);
  OPENSSL_free(again);
  if (!canonical) return Fail(CryptoErrc::kParse, "ECDSA signature is not in canonical DER");
  EcdsaRs out{Bytes(kScalarSize), Bytes(kScalarSize)};
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out.r.data(), kScalarSize) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out.s.data(), kScalarSize) < 0) {
    return Fail(CryptoErrc::kParse, "ECDSA signature values are larger than P-256 allows");
  }
  return out;
}

Expected<Bytes> EcdsaRsToDer(ByteView r, ByteView s) {
  if (r.empty() || s.empty() || r.size() > kScalarSize || s.size() > kScalarSize) {
    return Fail(CryptoErrc::kParse, "ECDSA r and s must each be 1 to 32 bytes");
  }
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BignumPtr br(BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr));
  BignumPtr bs(BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr));
  if (!sig || !br || !bs) return std::unexpected(OpenSslError("building ECDSA signature"));
  // set0 takes ownership of both numbers; it fails only for null arguments, excluded above.
  ECDSA_SIG_set0(sig.get(), br.release(), bs.release());
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return std::unexpected(OpenSslError("encoding ECDSA signature"));
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

Expected<Bytes> RsaPublicKeySpki(ByteView modulus, std::uint32_t exponent) {
  const BignumPtr n(BN_bin2bn(modulus.data(), static_cast<int>(modulus.size()), nullptr));
  const BignumPtr e(BN_new());
  const OsslParamBldPtr builder(OSSL_PARAM_BLD_new());
  if (!n || !e || !builder || BN_set_word(e.get(), exponent) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return std::unexpected(OpenSslError("building an RSA public key"));
  }
  const OsslParamPtr params(OSSL_PARAM_BLD_to_param(builder.get()));
  const EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return std::unexpected(OpenSslError("building an RSA public key", CryptoErrc::kParse));
  }
  const EvpPkeyPtr key(raw);
  return SpkiDer(key.get());
}

Expected<bool> SamePublicKey(ByteView spki_a, ByteView spki_b) {
  auto parse = [](ByteView der) -> Expected<EvpPkeyPtr> {
    const unsigned char* p = der.data();
    EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
    if (!key || p != der.data() + der.size()) {
      return std::unexpected(
          OpenSslError("public key is not a DER SubjectPublicKeyInfo", CryptoErrc::kParse));
    }
    return key;
  };
  auto a = parse(spki_a);
  if (!a) return std::unexpected(a.error());
  auto b = parse(spki_b);
  if (!b) return std::unexpected(b.error());
  return EVP_PKEY_eq(a->get(), b->get()) == 1;
}

}  // namespace aspis::crypto
