#include "device/board/cert_store.hpp"

#include <sys/mount.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "core/clock.hpp"
#include "crypto/foreign_key.hpp"
#include "support/temp_dir.hpp"
#include "support/test_pki.hpp"

namespace aspis::device::board {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Contents(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

std::string PemOf(auto write) {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (write(bio) == 1) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<std::size_t>(size));
  }
  BIO_free(bio);
  return pem;
}

// `key` as PKCS#8 encrypted with PBES2 (AES-256-CBC) and PBKDF2 of `iterations`.
std::string EncryptedWithIterations(const crypto::PrivateKey& key, int iterations) {
  PKCS8_PRIV_KEY_INFO* info = EVP_PKEY2PKCS8(key.native());
  X509_ALGOR* scheme =
      PKCS5_pbe2_set_iv(EVP_aes_256_cbc(), iterations, nullptr, 0, nullptr, NID_hmacWithSHA256);
  X509_SIG* sig = PKCS8_set0_pbe("sesame", 6, info, scheme);
  const std::string pem = PemOf([&](BIO* bio) { return PEM_write_bio_PKCS8(bio, sig); });
  X509_SIG_free(sig);
  PKCS8_PRIV_KEY_INFO_free(info);
  return pem;
}

class CertStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = CertStore::Open(dir_ / "certstore");
    ASSERT_TRUE(opened) << opened.error().message();
    store_ = std::move(*opened);
  }

  // A client certificate issued by the CA, named `name`, and its key.
  testing::Issuer Client(const std::string& name) const {
    auto key = *crypto::PrivateKey::GenerateP256();
    auto cert = *crypto::Issue(
        ca_.cert, ca_.key, key.Public(),
        {.common_name = name, .not_before = now_ - 1h, .lifetime = 12h, .client_auth = true});
    return {key, cert};
  }

  std::string Pem(const crypto::Certificate& c) const { return *c.ToPem(); }

  testing::TempDir dir_;
  Clock::TimePoint now_ = std::chrono::system_clock::now();
  testing::Issuer ca_ = testing::MakeRoot(now_);
  std::unique_ptr<CertStore> store_;
};

TEST_F(CertStoreTest, ARootCaAndAClientCertificateAreKeptInOwnerOnlyFilesThatReadBack) {
  const auto client = Client("device-7");
  ASSERT_TRUE(store_->InstallRootCa("radius-ca", Pem(ca_.cert)));
  ASSERT_TRUE(store_->InstallClient("device", Pem(client.cert), *client.key.ToPem(), std::nullopt));
  EXPECT_EQ(store_->Identifiers(), (std::vector<std::string>{"device", "radius-ca"}));
  EXPECT_EQ(ModeOf(dir_ / "certstore"), 0700U);
  const auto file = store_->PathOf("device");
  ASSERT_TRUE(file);
  EXPECT_EQ(ModeOf(*file), 0600U);
  EXPECT_EQ(store_->IdentifierOf(*file), "device");
  // The certificate, then its key, for wpa_supplicant to read both from the one file.
  const std::string text = Contents(*file);
  EXPECT_TRUE(text.starts_with("-----BEGIN CERTIFICATE-----")) << text;
  EXPECT_NE(text.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  const auto shown = store_->Show("device");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->subject, "CN=device-7");
  EXPECT_EQ(shown->issuer, "CN=root");
  EXPECT_EQ(shown->not_after - shown->not_before, 12h);
  EXPECT_TRUE(shown->client);
  const auto root = store_->Show("radius-ca");
  ASSERT_TRUE(root);
  EXPECT_FALSE(root->client);
  EXPECT_EQ(Contents(*store_->PathOf("radius-ca")), Pem(ca_.cert));
}

TEST_F(CertStoreTest, AnEncryptedKeyIsKeptOnlyOnceItsPasswordOpensIt) {
  const auto client = Client("device-7");
  const std::string encrypted = testing::EncryptedKeyPem(client.key, "sesame");
  ASSERT_NE(encrypted.find("ENCRYPTED"), std::string::npos);
  for (const auto& wrong :
       {std::optional<std::string_view>("open sesame"), std::optional<std::string_view>()}) {
    const auto refused = store_->InstallClient("device", Pem(client.cert), encrypted, wrong);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), EINVAL);
  }
  EXPECT_TRUE(store_->Identifiers()->empty());
  ASSERT_TRUE(store_->InstallClient("device", Pem(client.cert), encrypted, "sesame"));
  const std::string text = Contents(*store_->PathOf("device"));
  EXPECT_EQ(text.find("ENCRYPTED"), std::string::npos);
  EXPECT_EQ(text, Pem(client.cert) + *client.key.ToPem());
}

TEST_F(CertStoreTest, AKeyWhosePasswordCostsMoreThan10000IterationsIsRefusedUnopened) {
  const auto client = Client("device-7");
  const auto costly = crypto::KeyOfCertificatePem(
      EncryptedWithIterations(client.key, crypto::kMaxKeyDerivationIterations + 1), "sesame",
      *crypto::ForeignCertificate::FromDer(client.cert.Der()));
  ASSERT_FALSE(costly);
  EXPECT_EQ(costly.error().message(),
            "a key whose password is derived with more than 10000 iterations");
  EXPECT_EQ(store_
                ->InstallClient(
                    "device", Pem(client.cert),
                    EncryptedWithIterations(client.key, crypto::kMaxKeyDerivationIterations + 1),
                    "sesame")
                .error(),
            EINVAL);
  EXPECT_TRUE(store_->InstallClient(
      "device", Pem(client.cert),
      EncryptedWithIterations(client.key, crypto::kMaxKeyDerivationIterations), "sesame"));
}

TEST_F(CertStoreTest, AKeyOfAnotherTypeIsRefusedBeforeOpenSslDecodesIt) {
  // DSA's decoder computes with parameters of any size; its type is refused from its identifier,
  // as is this Ed25519 key's.
  EVP_PKEY* ed25519 = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(ed25519, nullptr);
  const std::string pem = PemOf([&](BIO* bio) {
    return PEM_write_bio_PKCS8PrivateKey(bio, ed25519, nullptr, nullptr, 0, nullptr, nullptr);
  });
  EVP_PKEY_free(ed25519);
  const auto client = Client("device-7");
  const auto refused = crypto::KeyOfCertificatePem(
      pem, std::nullopt, *crypto::ForeignCertificate::FromDer(client.cert.Der()));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(), "a key that is neither RSA nor EC");
}

TEST_F(CertStoreTest, ALegacyEncryptedEcKeyIsOpenedWithItsPassword) {
  const auto client = Client("device-7");
  const std::string legacy = PemOf([&](BIO* bio) {
    return PEM_write_bio_PrivateKey_traditional(bio, client.key.native(), EVP_aes_128_cbc(),
                                                reinterpret_cast<const unsigned char*>("sesame"), 6,
                                                nullptr, nullptr);
  });
  ASSERT_NE(legacy.find("BEGIN EC PRIVATE KEY"), std::string::npos) << legacy;
  ASSERT_NE(legacy.find("DEK-Info"), std::string::npos) << legacy;
  EXPECT_EQ(store_->InstallClient("device", Pem(client.cert), legacy, "open sesame").error(),
            EINVAL);
  ASSERT_TRUE(store_->InstallClient("device", Pem(client.cert), legacy, "sesame"));
  EXPECT_EQ(Contents(*store_->PathOf("device")), Pem(client.cert) + *client.key.ToPem());
}

TEST_F(CertStoreTest, ACertificateThatNeverExpiresShowsItsYear9999) {
  // RFC 5280's "no well-defined expiration date", past what a nanosecond clock holds.
  X509* cert = X509_new();
  ASSERT_EQ(X509_set_version(cert, 2), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("forever"), -1, -1, 0);
  X509_set_subject_name(cert, name);
  X509_set_issuer_name(cert, name);
  X509_NAME_free(name);
  ASN1_TIME_set_string(X509_getm_notBefore(cert), "20260101000000Z");
  ASN1_TIME_set_string(X509_getm_notAfter(cert), "99991231235959Z");
  X509_set_pubkey(cert, ca_.key.native());
  ASSERT_GT(X509_sign(cert, ca_.key.native(), EVP_sha256()), 0);
  const std::string pem = PemOf([&](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
  X509_free(cert);
  ASSERT_TRUE(store_->InstallRootCa("forever", pem));
  const auto shown = store_->Show("forever");
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->not_after.time_since_epoch().count(), 253402300799);
  EXPECT_EQ(shown->not_before.time_since_epoch().count(), 1767225600);
  // Read as one of the platform's certificates, its end saturates at the clock's last instant.
  const auto platform = crypto::Certificate::FromPem(pem);
  ASSERT_TRUE(platform) << platform.error().message();
  EXPECT_EQ(platform->NotAfter(), Clock::TimePoint::max());
}

TEST_F(CertStoreTest, AKeyThatIsNotTheCertificatesIsRefused) {
  const auto client = Client("device-7");
  const auto other = Client("device-8");
  const auto refused =
      store_->InstallClient("device", Pem(client.cert), *other.key.ToPem(), std::nullopt);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), EINVAL);
  EXPECT_TRUE(store_->Identifiers()->empty());
}

TEST_F(CertStoreTest, TextThatIsNotOneCertificateIsRefused) {
  const auto client = Client("device-7");
  const std::string two = Pem(ca_.cert) + Pem(client.cert);
  EXPECT_EQ(store_->InstallRootCa("ca", "hello").error(), EINVAL);
  EXPECT_EQ(store_->InstallRootCa("ca", two).error(), EINVAL);
  EXPECT_EQ(store_->InstallRootCa("ca", *client.key.ToPem()).error(), EINVAL);
  EXPECT_EQ(store_->InstallRootCa("ca", "").error(), ERANGE);
  EXPECT_EQ(store_->InstallRootCa("ca", std::string(kMaxCertificateText + 1, 'A')).error(), ERANGE);
  EXPECT_EQ(store_->InstallClient("ca", Pem(client.cert), "", std::nullopt).error(), ERANGE);
  EXPECT_EQ(store_
                ->InstallClient("ca", Pem(client.cert), *client.key.ToPem(),
                                std::string(kMaxKeyPassword + 1, 'p'))
                .error(),
            ERANGE);
  EXPECT_TRUE(store_->Identifiers()->empty());
  // Text around the one certificate is not kept.
  ASSERT_TRUE(store_->InstallRootCa("ca", "issued by us\n" + Pem(ca_.cert) + "# end\n"));
  EXPECT_EQ(Contents(*store_->PathOf("ca")), Pem(ca_.cert));
}

TEST_F(CertStoreTest, IdentifiersOutsideTheirAlphabetNeverNameAFile) {
  for (const std::string bad : {"../ca", "a/b", "", "ca.pem\n", "caf\xc3\xa9", "a b"}) {
    const auto refused = store_->InstallRootCa(bad, Pem(ca_.cert));
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error(), EINVAL) << bad;
    EXPECT_FALSE(store_->PathOf(bad)) << bad;
  }
  EXPECT_EQ(store_->InstallRootCa("seventeen-chars-x", Pem(ca_.cert)).error(), ERANGE);
  EXPECT_TRUE(store_->InstallRootCa("Az09.-_", Pem(ca_.cert)));
  EXPECT_TRUE(store_->InstallRootCa("sixteen-chars-xy", Pem(ca_.cert)));
  EXPECT_FALSE(fs::exists(dir_ / "ca.pem"));
  EXPECT_EQ(store_->IdentifierOf(dir_ / "certstore" / ".." / "Az09.-_.pem"), std::nullopt);
  EXPECT_EQ(store_->IdentifierOf("/etc/ssl/certs/ca.pem"), std::nullopt);
}

TEST_F(CertStoreTest, TheStoreHoldsAt24KiBAndAReplacedCertificateCountsOnce) {
  const std::string pem = Pem(ca_.cert);
  EXPECT_EQ(store_->AvailableSpace(), kCertStoreCapacity);
  ASSERT_TRUE(store_->InstallRootCa("ca", pem));
  ASSERT_TRUE(store_->InstallRootCa("ca", pem));
  EXPECT_EQ(store_->AvailableSpace(), kCertStoreCapacity - pem.size());
  std::size_t installed = 1;
  for (; installed * pem.size() + pem.size() <= kCertStoreCapacity; ++installed) {
    ASSERT_TRUE(store_->InstallRootCa("ca" + std::to_string(installed), pem));
  }
  const auto full = store_->InstallRootCa("one-more", pem);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error(), ENOSPC);
  EXPECT_EQ(store_->Identifiers()->size(), installed);
  EXPECT_TRUE(store_->InstallRootCa("ca", pem));  // a replacement still fits
  ASSERT_TRUE(store_->Delete("ca"));
  EXPECT_TRUE(store_->InstallRootCa("one-more", pem));
}

TEST_F(CertStoreTest, AMoveReplacesItsDestinationAndDeletingWhatIsNotThereIsEnoent) {
  const auto client = Client("device-7");
  ASSERT_TRUE(store_->InstallRootCa("ca", Pem(ca_.cert)));
  ASSERT_TRUE(store_->InstallClient("device", Pem(client.cert), *client.key.ToPem(), std::nullopt));
  ASSERT_TRUE(store_->Move("device", "ca"));
  EXPECT_EQ(store_->Identifiers(), (std::vector<std::string>{"ca"}));
  EXPECT_TRUE(store_->Show("ca")->client);
  EXPECT_TRUE(store_->Move("ca", "ca"));
  EXPECT_EQ(store_->Move("device", "other").error(), ENOENT);
  EXPECT_EQ(store_->Move("ca", "../x").error(), EINVAL);
  EXPECT_EQ(store_->Show("device").error(), ENOENT);
  ASSERT_TRUE(store_->Delete("ca"));
  EXPECT_EQ(store_->Delete("ca").error(), ENOENT);
  EXPECT_TRUE(store_->Identifiers()->empty());
}

TEST_F(CertStoreTest, WhatAWriteCutShortLeftIsRemovedWhenTheStoreOpens) {
  ASSERT_TRUE(store_->InstallRootCa("ca", Pem(ca_.cert)));
  std::ofstream(dir_ / "certstore" / ".ca.pem.tmp-x1y2z3") << "half a certificate";
  std::ofstream(dir_ / "certstore" / "not an identifier.pem") << "?";
  fs::create_directory(dir_ / "certstore" / "dir.pem");
  const auto reopened = CertStore::Open(dir_ / "certstore");
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->Identifiers(), (std::vector<std::string>{"ca"}));
  EXPECT_EQ((*reopened)->AvailableSpace(), kCertStoreCapacity - Pem(ca_.cert).size());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "certstore"), fs::directory_iterator()), 1);
}

TEST_F(CertStoreTest, ACertificateThatFindsTheDiskFullIsEnospcAndLeavesNoPartOfItself) {
  // A file system of one page, filled: the store's own 24 KiB have room, the disk has none.
  const fs::path small = dir_ / "small";
  fs::create_directories(small);
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4k,mode=0700"), 0)
      << std::strerror(errno);
  struct Unmount {
    fs::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  auto store = CertStore::Open(small);
  ASSERT_TRUE(store) << store.error().message();
  std::ofstream(small / "filler") << std::string(4096, 'x');
  const auto full = (*store)->InstallRootCa("radius-ca", Pem(ca_.cert));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error(), ENOSPC);
  EXPECT_EQ((*store)->Identifiers(), std::vector<std::string>{});
  EXPECT_EQ(std::distance(fs::directory_iterator(small), fs::directory_iterator()), 1);
  fs::remove(small / "filler");
  EXPECT_TRUE((*store)->InstallRootCa("radius-ca", Pem(ca_.cert)));
}

}  // namespace
}  // namespace aspis::device::board
