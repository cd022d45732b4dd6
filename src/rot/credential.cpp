#include "rot/credential.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/encoding.hpp"
#include "crypto/errors.hpp"
#include "crypto/openssl_ptr.hpp"
#include "rot/errors.hpp"
#include "rot/tpm2b.hpp"

namespace aspis::rot {

namespace {

using crypto::EvpKdfCtxPtr;
using crypto::EvpKdfPtr;

// The EKs accepted are those of the TCG EK Credential Profile's default templates (L-1 and L-2):
// SHA-256 nameAlg, AES-128-CFB, and NIST P-256 or RSA 2048.
constexpr TPMI_ALG_HASH kEkNameAlg = TPM2_ALG_SHA256;
constexpr std::size_t kEkDigestSize = 32;  // the seed and the HMAC key are this long
constexpr std::uint16_t kAesKeyBits = 128;
constexpr std::size_t kAesKeySize = kAesKeyBits / 8;
constexpr std::uint16_t kRsaKeyBits = 2048;
constexpr std::size_t kRsaModulusSize = kRsaKeyBits / 8;
constexpr std::uint32_t kRsaDefaultExponent = 65537;  // what an exponent of 0 stands for
constexpr std::size_t kP256CoordinateSize = 32;
constexpr std::uint8_t kUncompressedPoint = 0x04;

// Secret sharing for credentials uses the label "IDENTITY" with its terminating zero octet, both
// as the OAEP label and as KDFe's Use (Part 1, "Secret Sharing").
constexpr std::string_view kIdentityLabel("IDENTITY\0", 9);

struct NameAlg {
  TPMI_ALG_HASH id;
  std::size_t digest_size;
  const char* openssl_name;
};
// SHA-1 names are refused: a name is all that binds the credential to the identity key.
constexpr std::array<NameAlg, 3> kNameAlgs = {{
    {TPM2_ALG_SHA256, 32, "SHA256"},
    {TPM2_ALG_SHA384, 48, "SHA384"},
    {TPM2_ALG_SHA512, 64, "SHA512"},
}};

const NameAlg* FindNameAlg(std::uint32_t id) {
  const auto* it = std::ranges::find(kNameAlgs, id, &NameAlg::id);
  return it == kNameAlgs.end() ? nullptr : &*it;
}

std::string Hex(std::uint32_t value, std::size_t bytes) {
  Bytes big_endian(bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    big_endian[i] = static_cast<std::uint8_t>(value >> (8 * (bytes - 1 - i)));
  }
  return "0x" + HexEncode(big_endian);
}

std::unexpected<Error> Invalid(std::string message) {
  return Fail(RotErrc::kInvalidArgument, std::move(message));
}

std::unexpected<Error> OpenSslFailure(std::string_view what) {
  return std::unexpected(crypto::OpenSslError(what));
}

// OpenSSL only reads the parameters passed to it; the casts satisfy its non-const signatures.
OSSL_PARAM Utf8Param(const char* key, const char* value) {
  return OSSL_PARAM_construct_utf8_string(key, const_cast<char*>(value), 0);
}
OSSL_PARAM OctetParam(const char* key, ByteView value) {
  return OSSL_PARAM_construct_octet_string(key, const_cast<std::uint8_t*>(value.data()),
                                           value.size());
}

Expected<void> CheckObjectName(ByteView name) {
  if (name.size() < 2) {
    return Invalid("object name of " + std::to_string(name.size()) +
                   " bytes is too short to hold a nameAlg");
  }
  const std::uint32_t id = (std::uint32_t{name[0]} << 8) | name[1];
  const NameAlg* alg = FindNameAlg(id);
  if (alg == nullptr) {
    return Invalid("object name has nameAlg " + Hex(id, 2) +
                   "; only SHA-256, SHA-384 and SHA-512 names are accepted");
  }
  if (name.size() != 2 + alg->digest_size) {
    return Invalid("object name with nameAlg " + std::string(alg->openssl_name) + " is " +
                   std::to_string(name.size()) + " bytes instead of " +
                   std::to_string(2 + alg->digest_size));
  }
  return {};
}

Expected<void> CheckSymmetric(const TPMT_SYM_DEF_OBJECT& symmetric) {
  if (symmetric.algorithm != TPM2_ALG_AES || symmetric.keyBits.aes != kAesKeyBits ||
      symmetric.mode.aes != TPM2_ALG_CFB) {
    return Invalid("EK symmetric definition is algorithm " + Hex(symmetric.algorithm, 2) + ", " +
                   std::to_string(symmetric.keyBits.sym) + " bits, mode " +
                   Hex(symmetric.mode.sym, 2) + "; only AES-128-CFB EKs are supported");
  }
  return {};
}

// The EK must be a key TPM2_ActivateCredential can use (a restricted decryption key) and of the
// one profile this implementation covers.
Expected<void> CheckEk(const TPMT_PUBLIC& ek) {
  if (ek.nameAlg != kEkNameAlg) {
    return Invalid("EK nameAlg is " + Hex(ek.nameAlg, 2) +
                   "; only SHA-256 (0x000b) EKs are supported");
  }
  const TPMA_OBJECT attributes = ek.objectAttributes;
  if ((attributes & TPMA_OBJECT_RESTRICTED) == 0 || (attributes & TPMA_OBJECT_DECRYPT) == 0 ||
      (attributes & TPMA_OBJECT_SIGN_ENCRYPT) != 0) {
    return Invalid("EK objectAttributes " + Hex(attributes, 4) +
                   " are not those of a restricted decryption key");
  }
  switch (ek.type) {
    case TPM2_ALG_ECC:
      if (ek.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
        return Invalid("EK curve is " + Hex(ek.parameters.eccDetail.curveID, 2) +
                       "; only NIST P-256 (0x0003) ECC EKs are supported");
      }
      return CheckSymmetric(ek.parameters.eccDetail.symmetric);
    case TPM2_ALG_RSA:
      if (ek.parameters.rsaDetail.keyBits != kRsaKeyBits || ek.unique.rsa.size != kRsaModulusSize) {
        return Invalid("EK is RSA " + std::to_string(ek.parameters.rsaDetail.keyBits) + " with a " +
                       std::to_string(ek.unique.rsa.size) +
                       "-byte modulus; only RSA 2048 EKs are supported");
      }
      // A TPM's RSA 2048 modulus has its top bit set; a shorter one would also give a ciphertext
      // shorter than the 256 bytes TPM2_ActivateCredential requires.
      if ((ek.unique.rsa.buffer[0] & 0x80) == 0) {
        return Invalid("EK RSA modulus is shorter than 2048 bits");
      }
      return CheckSymmetric(ek.parameters.rsaDetail.symmetric);
    default:
      return Invalid("EK type is " + Hex(ek.type, 2) +
                     "; only ECC (0x0023) and RSA (0x0001) EKs are supported");
  }
}

// A public key from OpenSSL's parameters, checked as OpenSSL checks peer keys.
Expected<crypto::EvpPkeyPtr> PublicKeyFromParams(const char* type, OSSL_PARAM* params,
                                                 std::string_view invalid) {
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    return OpenSslFailure("preparing to import the EK public key");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return Invalid(crypto::OpenSslError(invalid).message());
  }
  crypto::EvpPkeyPtr key(raw);
  crypto::EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check) return OpenSslFailure("checking the EK public key");
  if (EVP_PKEY_public_check(check.get()) != 1) {
    return Invalid(crypto::OpenSslError(invalid).message());
  }
  return key;
}

Expected<crypto::EvpPkeyPtr> P256PublicKey(const TPMS_ECC_POINT& point) {
  if (point.x.size == 0 || point.x.size > kP256CoordinateSize || point.y.size == 0 ||
      point.y.size > kP256CoordinateSize) {
    return Invalid("EK point has coordinates of " + std::to_string(point.x.size) + " and " +
                   std::to_string(point.y.size) + " bytes; NIST P-256 needs 1 to 32");
  }
  std::array<std::uint8_t, 1 + 2 * kP256CoordinateSize> encoded{};
  encoded[0] = kUncompressedPoint;
  std::copy_n(point.x.buffer, point.x.size,
              encoded.begin() + 1 + kP256CoordinateSize - point.x.size);
  std::copy_n(point.y.buffer, point.y.size, encoded.end() - point.y.size);
  std::array<OSSL_PARAM, 3> params = {
      Utf8Param(OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1),
      OctetParam(OSSL_PKEY_PARAM_PUB_KEY, encoded),
      OSSL_PARAM_construct_end(),
  };
  return PublicKeyFromParams("EC", params.data(), "EK point is not on NIST P-256");
}

Expected<crypto::EvpPkeyPtr> Rsa2048PublicKey(const TPMS_RSA_PARMS& parameters,
                                              const TPM2B_PUBLIC_KEY_RSA& modulus) {
  const std::uint32_t exponent =
      parameters.exponent == 0 ? kRsaDefaultExponent : parameters.exponent;
  crypto::BignumPtr n(BN_bin2bn(modulus.buffer, modulus.size, nullptr));
  crypto::BignumPtr e(BN_new());
  crypto::OsslParamBldPtr build(OSSL_PARAM_BLD_new());
  if (!n || !e || !build || BN_set_word(e.get(), exponent) != 1 ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return OpenSslFailure("building the EK's RSA public key");
  }
  crypto::OsslParamPtr params(OSSL_PARAM_BLD_to_param(build.get()));
  if (!params) return OpenSslFailure("building the EK's RSA public key");
  return PublicKeyFromParams("RSA", params.get(), "EK modulus or exponent is not a valid RSA key");
}

// KDFa (Part 1, "KDFa") with HMAC-SHA256 is SP 800-108's KDF in counter mode, and OpenSSL's KBKDF
// lays out its input the same way: HMAC(key, [i]32 || Label || 0x00 || Context || [L]32), with
// Context = contextU || contextV and L the output length in bits (always whole bytes here).
Expected<Bytes> Kdfa(ByteView key, std::string_view label, ByteView context, std::size_t size) {
  EvpKdfPtr kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_KBKDF, nullptr));
  EvpKdfCtxPtr ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  int use_separator = 1;  // the 0x00 after the label
  int use_length = 1;     // [L]32
  std::vector<OSSL_PARAM> params = {
      Utf8Param(OSSL_KDF_PARAM_MODE, "counter"),
      Utf8Param(OSSL_KDF_PARAM_MAC, OSSL_MAC_NAME_HMAC),
      Utf8Param(OSSL_KDF_PARAM_DIGEST, "SHA256"),
      OctetParam(OSSL_KDF_PARAM_KEY, key),
      OctetParam(OSSL_KDF_PARAM_SALT, AsBytes(label)),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &use_separator),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &use_length),
  };
  if (!context.empty()) params.push_back(OctetParam(OSSL_KDF_PARAM_INFO, context));
  params.push_back(OSSL_PARAM_construct_end());
  Bytes out(size);
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1) {
    return OpenSslFailure("deriving the credential's " + std::string(label) + " key (KDFa)");
  }
  return out;
}

// KDFe (Part 1, "KDFe") is H([i]32 || Z || Use || PartyUInfo || PartyVInfo): SP 800-56C's one-step
// KDF with a hash, which is OpenSSL's SSKDF with FixedInfo = Use || PartyUInfo || PartyVInfo.
// (X963KDF would put the counter after Z.)
Expected<Bytes> Kdfe(ByteView z, ByteView fixed_info, std::size_t size) {
  EvpKdfPtr kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_SSKDF, nullptr));
  EvpKdfCtxPtr ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  std::array<OSSL_PARAM, 4> params = {
      Utf8Param(OSSL_KDF_PARAM_DIGEST, "SHA256"),
      OctetParam(OSSL_KDF_PARAM_KEY, z),
      OctetParam(OSSL_KDF_PARAM_INFO, fixed_info),
      OSSL_PARAM_construct_end(),
  };
  Bytes out(size);
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1) {
    return OpenSslFailure("deriving the credential seed (KDFe)");
  }
  return out;
}

// The seed from which the credential's keys derive, and what the TPM recovers it from: the
// contents of the TPM2B_ENCRYPTED_SECRET.
struct Seed {
  Bytes value;
  Bytes encrypted;
};

// ECC secret sharing: an ephemeral key QeU and the EK's QsV agree on Z = x(deU * QsV), and
// seed = KDFe(nameAlg, Z, "IDENTITY", x(QeU), x(QsV)). The TPM gets QeU as a TPMS_ECC_POINT.
Expected<Seed> EccSeed(const TPMT_PUBLIC& ek) {
  auto ek_key = P256PublicKey(ek.unique.ecc);
  if (!ek_key) return std::unexpected(ek_key.error());
  crypto::EvpPkeyPtr ephemeral(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!ephemeral) return OpenSslFailure("generating an ephemeral P-256 key");
  // OpenSSL returns Z as long as the field, with leading zeros, as KDFe needs.
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ephemeral.get(), nullptr));
  Bytes z(kP256CoordinateSize);
  std::size_t z_size = z.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), ek_key->get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), z.data(), &z_size) != 1 || z_size != z.size()) {
    return OpenSslFailure("agreeing on a secret with the EK (ECDH)");
  }
  std::array<std::uint8_t, 1 + 2 * kP256CoordinateSize> q{};
  std::size_t q_size = 0;
  if (EVP_PKEY_get_octet_string_param(ephemeral.get(), OSSL_PKEY_PARAM_PUB_KEY, q.data(), q.size(),
                                      &q_size) != 1 ||
      q_size != q.size() || q[0] != kUncompressedPoint) {
    return OpenSslFailure("reading the ephemeral P-256 public key");
  }
  TPMS_ECC_POINT point{};
  SetTpm2b(point.x, ByteView(q).subspan(1, kP256CoordinateSize));
  SetTpm2b(point.y, ByteView(q).subspan(1 + kP256CoordinateSize));
  // PartyVInfo is the EK's x-coordinate exactly as in its public area, as the TPM uses it.
  Bytes fixed_info(kIdentityLabel.begin(), kIdentityLabel.end());
  fixed_info.insert(fixed_info.end(), point.x.buffer, point.x.buffer + point.x.size);
  fixed_info.insert(fixed_info.end(), ek.unique.ecc.x.buffer,
                    ek.unique.ecc.x.buffer + ek.unique.ecc.x.size);
  auto seed = Kdfe(z, fixed_info, kEkDigestSize);
  if (!seed) return std::unexpected(seed.error());
  auto encrypted = MarshalTpm(point, Tss2_MU_TPMS_ECC_POINT_Marshal, "the ephemeral ECC point");
  if (!encrypted) return std::unexpected(encrypted.error());
  return Seed{std::move(*seed), std::move(*encrypted)};
}

// RSA secret sharing: a random seed, encrypted with RSA-OAEP (SHA-256, label "IDENTITY").
Expected<Seed> RsaSeed(const TPMT_PUBLIC& ek) {
  auto ek_key = Rsa2048PublicKey(ek.parameters.rsaDetail, ek.unique.rsa);
  if (!ek_key) return std::unexpected(ek_key.error());
  auto seed = crypto::RandomBytes(kEkDigestSize);
  if (!seed) return std::unexpected(seed.error());
  crypto::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key->get(), nullptr));
  // The label parameter is copied, unlike EVP_PKEY_CTX_set0_rsa_oaep_label's, which takes an
  // OPENSSL_malloc'ed buffer.
  std::array<OSSL_PARAM, 5> params = {
      Utf8Param(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, OSSL_PKEY_RSA_PAD_MODE_OAEP),
      Utf8Param(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, "SHA256"),
      Utf8Param(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, "SHA256"),
      OctetParam(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, AsBytes(kIdentityLabel)),
      OSSL_PARAM_construct_end(),
  };
  Bytes encrypted(kRsaModulusSize);
  std::size_t size = encrypted.size();
  if (!ctx || EVP_PKEY_encrypt_init_ex(ctx.get(), params.data()) != 1 ||
      EVP_PKEY_encrypt(ctx.get(), encrypted.data(), &size, seed->data(), seed->size()) != 1) {
    return OpenSslFailure("encrypting the credential seed to the EK (RSA-OAEP)");
  }
  encrypted.resize(size);
  return Seed{std::move(*seed), std::move(encrypted)};
}

// AES-CFB with a zero IV, as the TPM uses it for credentials: each key encrypts one message.
Expected<Bytes> AesCfbEncrypt(ByteView key, ByteView plaintext) {
  assert(key.size() == kAesKeySize);
  assert(plaintext.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()));
  const std::array<std::uint8_t, 16> iv{};
  crypto::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  Bytes out(plaintext.size());
  int size = 0;
  int final_size = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), EVP_aes_128_cfb128(), key.data(), iv.data(), nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &size, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + size, &final_size) != 1 ||
      static_cast<std::size_t>(size) + static_cast<std::size_t>(final_size) != out.size()) {
    return OpenSslFailure("encrypting the credential (AES-128-CFB)");
  }
  return out;
}

// The TPM2B_ID_OBJECT (Part 1, "Credential Protection"): encIdentity is the TPM2B_DIGEST holding
// `secret`, encrypted with KDFa(seed, "STORAGE", name) (its size field inside the ciphertext);
// integrityHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity || name).
Expected<Bytes> IdObject(ByteView seed, ByteView object_name, ByteView secret) {
  auto storage_key = Kdfa(seed, "STORAGE", object_name, kAesKeySize);
  if (!storage_key) return std::unexpected(storage_key.error());
  auto integrity_key = Kdfa(seed, "INTEGRITY", {}, kEkDigestSize);
  if (!integrity_key) return std::unexpected(integrity_key.error());

  TPM2B_DIGEST credential{};
  SetTpm2b(credential, secret);
  auto plaintext = MarshalTpm(credential, Tss2_MU_TPM2B_DIGEST_Marshal, "the credential");
  if (!plaintext) return plaintext;
  auto enc_identity = AesCfbEncrypt(*storage_key, *plaintext);
  if (!enc_identity) return enc_identity;

  Bytes hmac_input = *enc_identity;
  hmac_input.insert(hmac_input.end(), object_name.begin(), object_name.end());
  auto hmac = crypto::HmacSha256(*integrity_key, hmac_input);
  if (!hmac) return hmac;
  TPM2B_DIGEST integrity{};
  SetTpm2b(integrity, *hmac);
  auto contents = MarshalTpm(integrity, Tss2_MU_TPM2B_DIGEST_Marshal, "the integrity HMAC");
  if (!contents) return contents;
  contents->insert(contents->end(), enc_identity->begin(), enc_identity->end());

  TPM2B_ID_OBJECT id_object{};
  assert(contents->size() <= sizeof id_object.credential);
  id_object.size = static_cast<std::uint16_t>(contents->size());
  std::ranges::copy(*contents, id_object.credential);
  return MarshalTpm(id_object, Tss2_MU_TPM2B_ID_OBJECT_Marshal, "the credential blob");
}

}  // namespace

// tss2-mu's TPM2B_PUBLIC unmarshaler neither bounds the TPMT_PUBLIC by the size field nor checks
// that it fills it, so the size field is checked here and the TPMT_PUBLIC parsed within it.
Expected<TPMT_PUBLIC> UnmarshalPublic(ByteView tpm2b_public, std::string_view what) {
  const std::string subject(what);
  if (tpm2b_public.size() < 2) {
    return Fail(RotErrc::kInvalidArgument,
                subject + " is shorter than the size field of a TPM2B_PUBLIC");
  }
  const std::size_t size = (std::size_t{tpm2b_public[0]} << 8) | tpm2b_public[1];
  const ByteView body = tpm2b_public.subspan(2);
  if (body.size() < size) {
    return Fail(RotErrc::kInvalidArgument,
                subject + " is truncated: its TPM2B_PUBLIC size field says " +
                    std::to_string(size) + " bytes, " + std::to_string(body.size()) + " follow");
  }
  if (body.size() > size) {
    return Fail(RotErrc::kInvalidArgument, subject +
                                               " has trailing bytes after its TPM2B_PUBLIC (" +
                                               std::to_string(body.size() - size) + ")");
  }
  TPMT_PUBLIC pub{};
  std::size_t offset = 0;
  if (Tss2_MU_TPMT_PUBLIC_Unmarshal(body.data(), body.size(), &offset, &pub) != TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kInvalidArgument, subject + " is not a well-formed TPMT_PUBLIC");
  }
  if (offset != body.size()) {
    return Fail(RotErrc::kInvalidArgument, subject + ": its TPM2B_PUBLIC holds " +
                                               std::to_string(body.size() - offset) +
                                               " bytes after the TPMT_PUBLIC");
  }
  return pub;
}

Expected<Credential> MakeCredential(ByteView ek_public, ByteView object_name, ByteView secret) {
  if (secret.empty() || secret.size() > kMaxCredentialSecret) {
    return Invalid("credential secret is " + std::to_string(secret.size()) +
                   " bytes; it must be 1 to " + std::to_string(kMaxCredentialSecret));
  }
  if (auto name_ok = CheckObjectName(object_name); !name_ok) {
    return std::unexpected(name_ok.error());
  }
  auto ek = UnmarshalPublic(ek_public, "EK public area");
  if (!ek) return std::unexpected(ek.error());
  if (auto ek_ok = CheckEk(*ek); !ek_ok) return std::unexpected(ek_ok.error());

  auto seed = ek->type == TPM2_ALG_ECC ? EccSeed(*ek) : RsaSeed(*ek);
  if (!seed) return std::unexpected(seed.error());
  auto blob = IdObject(seed->value, object_name, secret);
  if (!blob) return std::unexpected(blob.error());

  TPM2B_ENCRYPTED_SECRET encrypted{};
  assert(seed->encrypted.size() <= sizeof encrypted.secret);
  encrypted.size = static_cast<std::uint16_t>(seed->encrypted.size());
  std::ranges::copy(seed->encrypted, encrypted.secret);
  auto encrypted_secret =
      MarshalTpm(encrypted, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal, "the encrypted seed");
  if (!encrypted_secret) return std::unexpected(encrypted_secret.error());
  return Credential{std::move(*blob), std::move(*encrypted_secret)};
}

Expected<Bytes> ObjectName(ByteView tpm2b_public) {
  auto pub = UnmarshalPublic(tpm2b_public, "public area");
  if (!pub) return std::unexpected(pub.error());
  const NameAlg* alg = FindNameAlg(pub->nameAlg);
  if (alg == nullptr) {
    return Invalid("public area has nameAlg " + Hex(pub->nameAlg, 2) +
                   "; only SHA-256, SHA-384 and SHA-512 names are supported");
  }
  // The Name covers the TPMT_PUBLIC as marshaled, which UnmarshalPublic found to be the bytes
  // after the size field.
  const ByteView marshaled = tpm2b_public.subspan(2);
  Bytes name = {static_cast<std::uint8_t>(alg->id >> 8), static_cast<std::uint8_t>(alg->id)};
  name.resize(2 + alg->digest_size);
  std::size_t digest_size = 0;
  if (EVP_Q_digest(nullptr, alg->openssl_name, nullptr, marshaled.data(), marshaled.size(),
                   name.data() + 2, &digest_size) != 1 ||
      digest_size != alg->digest_size) {
    return OpenSslFailure("hashing a public area for its name");
  }
  return name;
}

}  // namespace aspis::rot
