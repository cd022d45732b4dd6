// A tenant's publisher key set: verified on its own, and as the successor of a pinned one.
#include <gtest/gtest.h>

#include <chrono>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/key.hpp"
#include "package/errors.hpp"
#include "package/publisher_keys.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::package {
namespace {

using namespace std::chrono_literals;

const Clock::TimePoint kNow = std::chrono::system_clock::now();

crypto::PrivateKey NewKey() { return *crypto::PrivateKey::GenerateP256(); }

class PublisherKeys : public ::testing::Test {
 protected:
  PublisherKeySet Set(std::uint64_t version, const std::vector<crypto::PrivateKey>& roots,
                      std::size_t threshold = 1) {
    PublisherKeySet set;
    set.tenant = "t1";
    set.version = version;
    set.expires = UnixSeconds(kNow + 24h * 365);
    for (const auto& root : roots) set.root.keys.push_back(root.Public());
    set.root.threshold = threshold;
    set.publishers.keys = {publisher_.Public()};
    return set;
  }

  crypto::dsse::Envelope Signed(const PublisherKeySet& set,
                                const std::vector<crypto::PrivateKey>& by) {
    // Signed directly, so that a test can sign with keys the set does not list.
    return *crypto::dsse::Sign(kPublisherKeysType, AsBytes(SerializeKeySet(set)), by);
  }

  crypto::PrivateKey root_ = NewKey();
  crypto::PrivateKey publisher_ = NewKey();
};

TEST_F(PublisherKeys, SetSignedByItsRootVerifiesAndRoundTrips) {
  const auto set = Set(1, {root_});
  auto envelope = SignKeySet(set, std::vector{root_});
  ASSERT_TRUE(envelope) << envelope.error().message();
  auto verified = VerifyKeySet(*envelope, "t1", kNow);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_EQ(verified->RootFingerprint(), set.RootFingerprint());
  EXPECT_EQ(verified->publishers.keys.front(), publisher_.Public());
}

TEST_F(PublisherKeys, SetNotSignedByItsOwnRootIsRefused) {
  auto refused = VerifyKeySet(Signed(Set(1, {root_}), {NewKey()}), "t1", kNow);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUntrusted);
  EXPECT_NE(refused.error().message().find("not signed by its own root"), std::string::npos);
}

TEST_F(PublisherKeys, SetForAnotherTenantIsRefused) {
  auto refused = VerifyKeySet(Signed(Set(1, {root_}), {root_}), "t2", kNow);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("for tenant t1, not t2"), std::string::npos);
}

TEST_F(PublisherKeys, FreezeAttackExpiredSetIsRefused) {
  auto set = Set(1, {root_});
  set.expires = UnixSeconds(kNow - 1s);
  auto refused = VerifyKeySet(Signed(set, {root_}), "t1", kNow);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("expired"), std::string::npos);
}

TEST_F(PublisherKeys, RootThresholdNeedsThatManyRootSignatures) {
  const auto second = NewKey();
  const auto set = Set(1, {root_, second}, 2);
  EXPECT_FALSE(SignKeySet(set, std::vector{root_}));
  auto one = VerifyKeySet(Signed(set, {root_}), "t1", kNow);
  ASSERT_FALSE(one);
  EXPECT_NE(one.error().message().find("2 required"), std::string::npos) << one.error().message();
  EXPECT_TRUE(VerifyKeySet(Signed(set, {root_, second}), "t1", kNow));
}

TEST_F(PublisherKeys, PublisherKeySetNotSignedByThePinnedRootIsRefused) {
  const auto pinned = Set(1, {root_});
  // A compromised service (or anyone) makes a set with a root of its own and signs it with that.
  const auto usurper = NewKey();
  auto refused = Successor(pinned, Signed(Set(2, {usurper}), {usurper}), kNow);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), PackageErrc::kUntrusted);
  EXPECT_NE(refused.error().message().find("not signed by the pinned root"), std::string::npos)
      << refused.error().message();
  // The genuine rotation is signed by the old root and the new one.
  auto rotated = Successor(pinned, Signed(Set(2, {usurper}), {usurper, root_}), kNow);
  ASSERT_TRUE(rotated) << rotated.error().message();
  EXPECT_NE(rotated->RootFingerprint(), pinned.RootFingerprint());
}

TEST_F(PublisherKeys, RollbackAttackOlderOrSameVersionIsRefused) {
  const auto pinned = Set(3, {root_});
  for (std::uint64_t version : {2u, 3u}) {
    auto refused = Successor(pinned, Signed(Set(version, {root_}), {root_}), kNow);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("does not follow the trusted version 3"),
              std::string::npos);
  }
  EXPECT_TRUE(Successor(pinned, Signed(Set(4, {root_}), {root_}), kNow));
}

TEST_F(PublisherKeys, MalformedSetsAreRefused) {
  auto set = Set(1, {root_});
  set.publishers.threshold = 2;
  EXPECT_FALSE(SignKeySet(set, std::vector{root_}));
  set = Set(1, {root_});
  set.publishers.keys.push_back(publisher_.Public());
  EXPECT_FALSE(SignKeySet(set, std::vector{root_}));
  EXPECT_FALSE(ParseKeySet(R"({"tenant":"t1","version":1,"expires":1,"root":{},"x":1})"));
}

// The same key as a compressed point has another encoding and so another key ID: listed twice it
// would count twice toward a threshold. Only the canonical encoding is accepted.
TEST_F(PublisherKeys, KeyListedTwiceInAnotherEncodingIsRefused) {
  testing::TempDir dir;
  ASSERT_TRUE(file::WriteDurably(dir / "root.pem", AsBytes(*root_.Public().ToPem()), 0644));
  const auto compressed =
      testing::RunProcess({"openssl", "ec", "-pubin", "-in", (dir / "root.pem").string(),
                           "-conv_form", "compressed", "-pubout"});
  ASSERT_EQ(compressed.exit_code, 0) << compressed.output;
  const std::string pem = compressed.output.substr(compressed.output.find("-----BEGIN"));
  auto doc = *json::Parse(SerializeKeySet(Set(1, {root_}, 1)));
  doc["root"]["keys"].push_back(pem);
  doc["root"]["threshold"] = 2;
  auto refused = ParseKeySet(doc.dump());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("uncompressed point"), std::string::npos)
      << refused.error().message();
  doc["root"]["keys"].erase(1);
  doc["root"]["threshold"] = 1;
  EXPECT_TRUE(ParseKeySet(doc.dump()));
}

}  // namespace
}  // namespace aspis::package
