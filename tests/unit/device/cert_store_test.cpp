#include "device/board/cert_store.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/clock.hpp"
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

}  // namespace
}  // namespace aspis::device::board
