#include "crypto/foreign_key.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <algorithm>
#include <array>
#include <memory>

#include "crypto/errors.hpp"
#include "crypto/openssl_ptr.hpp"

namespace aspis::crypto {

namespace {

using Pkcs8Ptr = OpenSslPtr<PKCS8_PRIV_KEY_INFO, PKCS8_PRIV_KEY_INFO_free>;
using X509SigPtr = OpenSslPtr<X509_SIG, X509_SIG_free>;
using Pbe2ParamPtr = OpenSslPtr<PBE2PARAM, PBE2PARAM_free>;
using Pbkdf2ParamPtr = OpenSslPtr<PBKDF2PARAM, PBKDF2PARAM_free>;

struct OpenSslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};
using OpenSslString = std::unique_ptr<char, OpenSslFree>;
using OpenSslBytes = std::unique_ptr<unsigned char, OpenSslFree>;

std::unexpected<Error> Unsupported(const std::string& what) {
  return Fail(CryptoErrc::kUnsupportedKey, what);
}

// Checks what a decoded key is: RSA up to kMaxRsaKeyBits, or EC on a named NIST curve.
Expected<EvpPkeyPtr> Allowed(EvpPkeyPtr key) {
  if (!key) return std::unexpected(OpenSslError("text holds no private key", CryptoErrc::kParse));
  if (EVP_PKEY_is_a(key.get(), "RSA")) {
    if (EVP_PKEY_get_bits(key.get()) > kMaxRsaKeyBits) {
      return Unsupported("an RSA key of more than " + std::to_string(kMaxRsaKeyBits) + " bits");
    }
    return key;
  }
  std::array<char, 64> curve{};
  if (EVP_PKEY_is_a(key.get(), "EC") &&
      EVP_PKEY_get_group_name(key.get(), curve.data(), curve.size(), nullptr) == 1) {
    const std::string_view name(curve.data());
    if (name == "prime256v1" || name == "secp384r1" || name == "secp521r1") return key;
  }
  ERR_clear_error();
  return Unsupported("a key that is neither RSA nor EC on P-256, P-384 or P-521");
}

// The key a PKCS#8 structure holds, its algorithm checked before OpenSSL decodes it (decoding
// some types, DSA's, computes with parameters of any size).
Expected<EvpPkeyPtr> FromPkcs8(const PKCS8_PRIV_KEY_INFO* info) {
  const ASN1_OBJECT* algorithm = nullptr;
  if (PKCS8_pkey_get0(&algorithm, nullptr, nullptr, nullptr, info) != 1) {
    return std::unexpected(OpenSslError("reading a PKCS#8 key", CryptoErrc::kParse));
  }
  const int nid = OBJ_obj2nid(algorithm);
  if (nid != NID_rsaEncryption && nid != NID_X9_62_id_ecPublicKey) {
    return Unsupported("a key that is neither RSA nor EC");
  }
  return Allowed(EvpPkeyPtr(EVP_PKCS82PKEY(info)));
}

// Decrypts an encrypted PKCS#8 key: PBES2 with PBKDF2 of bounded cost only (an unbounded
// iteration count would hold the caller for hours).
Expected<EvpPkeyPtr> FromEncryptedPkcs8(const X509_SIG* sig, std::string_view password) {
  const X509_ALGOR* scheme = nullptr;
  X509_SIG_get0(sig, &scheme, nullptr);
  if (OBJ_obj2nid(scheme->algorithm) != NID_pbes2) {
    return Unsupported("a key encrypted other than with PBES2");
  }
  const Pbe2ParamPtr pbes2(static_cast<PBE2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), scheme->parameter)));
  if (!pbes2 || OBJ_obj2nid(pbes2->keyfunc->algorithm) != NID_id_pbkdf2) {
    ERR_clear_error();
    return Unsupported("a key whose password is derived other than with PBKDF2");
  }
  const Pbkdf2ParamPtr pbkdf2(static_cast<PBKDF2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbes2->keyfunc->parameter)));
  std::uint64_t iterations = 0;
  if (!pbkdf2 || ASN1_INTEGER_get_uint64(&iterations, pbkdf2->iter) != 1 ||
      iterations > kMaxKeyDerivationIterations) {
    ERR_clear_error();
    return Unsupported("a key whose password is derived with more than " +
                       std::to_string(kMaxKeyDerivationIterations) + " iterations");
  }
  const Pkcs8Ptr info(PKCS8_decrypt(sig, password.data(), static_cast<int>(password.size())));
  if (!info) {
    return std::unexpected(OpenSslError("the password does not open the key", CryptoErrc::kParse));
  }
  return FromPkcs8(info.get());
}

// Reads the first key block of `pem` (EC PARAMETERS blocks before it skipped) and decodes it.
Expected<EvpPkeyPtr> ReadKey(std::string_view pem, std::string& password) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(OpenSslError("reading key PEM"));
  for (;;) {
    char* name_raw = nullptr;
    char* header_raw = nullptr;
    unsigned char* data_raw = nullptr;
    long length = 0;
    if (PEM_read_bio(bio.get(), &name_raw, &header_raw, &data_raw, &length) != 1) {
      return std::unexpected(OpenSslError("text holds no private key", CryptoErrc::kParse));
    }
    const OpenSslString name(name_raw);
    const OpenSslString header(header_raw);
    const OpenSslBytes data(data_raw);
    const std::string_view kind(name.get());
    if (kind == "EC PARAMETERS") continue;
    const unsigned char* p = data.get();
    if (kind == "PRIVATE KEY") {
      const Pkcs8Ptr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, length));
      if (!info) return std::unexpected(OpenSslError("not a PKCS#8 key", CryptoErrc::kParse));
      return FromPkcs8(info.get());
    }
    if (kind == "ENCRYPTED PRIVATE KEY") {
      const X509SigPtr sig(d2i_X509_SIG(nullptr, &p, length));
      if (!sig) return std::unexpected(OpenSslError("not a PKCS#8 key", CryptoErrc::kParse));
      return FromEncryptedPkcs8(sig.get(), password);
    }
    if (kind != "RSA PRIVATE KEY" && kind != "EC PRIVATE KEY") {
      return Unsupported("a PEM block \"" + std::string(kind) + "\", not a private key");
    }
    // OpenSSL's legacy form: DEK-Info encryption derives its key with one MD5 round.
    EVP_CIPHER_INFO cipher{};
    auto give = [](char* buffer, int size, int, void* user) -> int {
      const auto* text = static_cast<const std::string*>(user);
      if (text->empty() || text->size() > static_cast<std::size_t>(size)) return -1;
      std::copy_n(text->data(), text->size(), buffer);  // a length, not a C string
      return static_cast<int>(text->size());
    };
    if (PEM_get_EVP_CIPHER_INFO(header.get(), &cipher) != 1 ||
        PEM_do_header(&cipher, data.get(), &length, give, &password) != 1) {
      return std::unexpected(
          OpenSslError("the password does not open the key", CryptoErrc::kParse));
    }
    p = data.get();
    return Allowed(EvpPkeyPtr(d2i_PrivateKey(kind == "RSA PRIVATE KEY" ? EVP_PKEY_RSA : EVP_PKEY_EC,
                                             nullptr, &p, length)));
  }
}

}  // namespace

Expected<std::string> KeyOfCertificatePem(std::string_view key_pem,
                                          std::optional<std::string_view> password,
                                          const ForeignCertificate& certificate) {
  std::string secret(password.value_or(""));
  auto key = ReadKey(key_pem, secret);
  OPENSSL_cleanse(secret.data(), secret.size());
  if (!key) return std::unexpected(key.error());
  if (X509_check_private_key(certificate.native(), key->get()) != 1) {
    return std::unexpected(OpenSslError("the key is not the certificate's", CryptoErrc::kParse));
  }
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PKCS8PrivateKey(out.get(), key->get(), nullptr, nullptr, 0, nullptr,
                                            nullptr) != 1) {
    return std::unexpected(OpenSslError("encoding the key"));
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  std::string pem(data, static_cast<std::size_t>(size));
  OPENSSL_cleanse(data, static_cast<std::size_t>(size));
  return pem;
}

}  // namespace aspis::crypto
