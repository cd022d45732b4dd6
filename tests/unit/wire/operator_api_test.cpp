// The operator API's request types: what the CLI sends is what the service parses, and the
// service refuses anything outside the rules whoever sends it.
#include "wire/operator_api.hpp"

#include <gtest/gtest.h>

namespace aspis::wire::api {
namespace {

TEST(OperatorApi, RequestsRoundTripThroughTheirCodecs) {
  const DeviceGroupFields group{.name = "Field Test",
                                .description = std::nullopt,
                                .os_feed = "retail-eval",
                                .update_policy = "No3rdPartyAppUpdates",
                                .app_updates = false};
  auto parsed = ParseDeviceGroupFields(Serialize(group));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->name, group.name);
  EXPECT_FALSE(parsed->description) << "a field left out stays out";
  EXPECT_EQ(parsed->app_updates, false);
  EXPECT_EQ(ParseDeploymentRequest(Serialize(DeploymentRequest{{"a", "b"}}))->images.size(), 2u);
  EXPECT_EQ(ParseOsReleasePublication(Serialize(OsReleasePublication{"os", "board", "retail"}))
                ->board_image_id,
            "board");
  EXPECT_EQ(ParseDeviceGroupAssignment(Serialize(DeviceGroupAssignment{"g"}))->device_group_id,
            "g");
  EXPECT_EQ(ParseProductFields(Serialize(ProductFields{"Coffee", "beans"}))->description, "beans");
}

TEST(OperatorApi, ARolloutIsStagesOrBatchesWithAThreshold) {
  DeploymentRequest request{{"a"}, Rollout{{10, 50, 100}, 0, 20}};
  auto read = ParseDeploymentRequest(Serialize(request));
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->rollout->stages, request.rollout->stages);
  EXPECT_EQ(read->rollout->failure_threshold, 20);
  read = ParseDeploymentRequest(R"({"images": [], "rollout": {"batch_size": 5}})");
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->rollout->batch_size, 5);
  EXPECT_EQ(read->rollout->failure_threshold, kDefaultFailureThreshold);
  EXPECT_FALSE(ParseDeploymentRequest(R"({"images": []})")->rollout);
  for (const char* bad :
       {R"({"stages": [50, 50, 100]})", R"({"stages": [50]})", R"({"stages": []})",
        R"({"stages": [0, 100]})", R"({"stages": [1,2,3,4,5,6,7,8,9,10,100]})",
        R"({"batch_size": 0})", R"({"stages": [100], "batch_size": 1})", R"({})",
        R"({"stages": [100], "failure_threshold": -1})", R"({"stages": [100.5]})",
        R"({"stages": [100], "then": 1})"}) {
    auto refused = ParseDeploymentRequest(std::string(R"({"images": [], "rollout": )") + bad + "}");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message().find("rollout"), std::string::npos)
        << refused.error().message();
  }
}

TEST(OperatorApi, RequestsOutsideTheRulesAreRefusedNamingTheField) {
  auto refused = [](const Expected<DeviceGroupFields>& r, std::string_view field) {
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().message();
  };
  refused(ParseDeviceGroupFields(R"({"name": "a/b"})"), "\"name\"");
  refused(ParseDeviceGroupFields(R"({"name": "line\nbreak"})"), "\"name\"");
  refused(ParseDeviceGroupFields(R"({"name": ""})"), "\"name\"");
  refused(ParseDeviceGroupFields(R"({"os_feed": "beta"})"), "\"os_feed\"");
  refused(ParseDeviceGroupFields(R"({"update_policy": "Sometimes"})"), "\"update_policy\"");
  refused(ParseDeviceGroupFields(R"({"app_updates": "yes"})"), "\"app_updates\"");
  refused(ParseDeviceGroupFields(R"({"tenant_id": "another"})"), "\"tenant_id\"");
  refused(ParseDeviceGroupFields(R"({"description": ")" + std::string(201, 'x') + "\"}"),
          "\"description\"");
  EXPECT_FALSE(ParseDeviceGroupFields("[]"));
  EXPECT_FALSE(ParseDeploymentRequest(R"({"images": "one"})"));
  EXPECT_FALSE(ParseDeploymentRequest(R"({"images": [1]})"));
  EXPECT_FALSE(ParseDeploymentRequest(R"({"images": [")" + std::string(65, 'a') + "\"]}"));
  std::string many = R"({"images": [)";
  for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + "\"i" + std::to_string(i) + "\"";
  EXPECT_FALSE(ParseDeploymentRequest(many + "]}"));
  EXPECT_FALSE(ParseOsReleasePublication(R"({"image_id": "a", "board_image_id": "b"})"));
  EXPECT_FALSE(
      ParseOsReleasePublication(R"({"image_id": "a", "board_image_id": "b", "feed": "beta"})"));
  EXPECT_FALSE(ParseDeviceGroupAssignment("{}"));
}

TEST(OperatorApi, AnswersRoundTripAndAWrongTypeIsRefused) {
  const Deployment d{"d1",
                     "g1",
                     5,
                     "token-1",
                     {"i1"},
                     true,
                     {{"i1", 1, 2, 3, 4, 5, 6, {{"dev", "why"}}}},
                     Rollout{{25, 100}, 0, 5},
                     "paused",
                     1,
                     "stage 1: 1 of 2 devices failed",
                     {{1, 2, 1, 1}}};
  auto read = DeploymentFrom(ToJson(d));
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->rollout->stages, (std::vector<std::int64_t>{25, 100}));
  EXPECT_EQ(read->rollout->failure_threshold, 5);
  EXPECT_EQ(read->state, "paused");
  EXPECT_EQ(read->stages[0].failed, 1);
  EXPECT_EQ(read->progress[0].failed, 3);
  EXPECT_EQ(read->progress[0].reverted, 6);
  EXPECT_EQ(read->progress[0].failures[0].second, "why");
  EXPECT_TRUE(read->current);
  const OsRelease r{"25.01", "retail-eval", 1, "", "os", "board", {{"os", "aa"}}};
  EXPECT_EQ(OsReleaseFrom(ToJson(r))->components, r.components);
  const Image i{"i", "c", "n", "app", "1", 2, "ab", 10, 3, {"mt3620-sim"}};
  EXPECT_EQ(ImageFrom(ToJson(i))->target_boards, i.target_boards);
  const DeviceGroup g{"g", "p", "Coffee", "Field Test", "", "retail", "UpdateAll", true, 1};
  EXPECT_EQ(DeviceGroupFrom(ToJson(g))->product, "Coffee");
  EXPECT_EQ(ProductFrom(ToJson(Product{"p", "Coffee", "", 1}))->name, "Coffee");
  json::Json wrong = ToJson(d);
  wrong["current"] = "yes";
  auto refused = DeploymentFrom(wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("\"current\""), std::string::npos);
  EXPECT_FALSE(ProductFrom(json::Json::array()));
}

const std::string kDigest(64, 'a');

OsReleaseRegistration Registration() {
  OsReleaseRegistration r{"25.01", "retail", {}};
  for (const auto component : {"os", "aspisd", "board", "trust-bundle"}) {
    r.components.emplace_back(component, kDigest);
  }
  return r;
}

TEST(OperatorApi, TenantTokenDeviceAndPolicyRequestsRoundTrip) {
  EXPECT_EQ(ParseTenantRequest(Serialize(TenantRequest{"Contoso"}))->name, "Contoso");
  auto token = ParseTokenRequest(Serialize(TokenRequest{"Reader", "dashboards"}));
  ASSERT_TRUE(token) << token.error().message();
  EXPECT_EQ(token->role, "Reader");
  EXPECT_EQ(token->description, "dashboards");
  EXPECT_EQ(ParseTokenRequest(R"({"role": "Contributor"})")->description, "");
  EXPECT_EQ(ParseDeviceClaim(Serialize(DeviceClaim{kDigest}))->device_id, kDigest);
  auto policy =
      ParseAttestationPolicyChange(Serialize(AttestationPolicyChange{false, kDigest, false}));
  ASSERT_TRUE(policy) << policy.error().message();
  EXPECT_EQ(policy->allow_software_root_of_trust, false);
  EXPECT_EQ(policy->pin_boot_pcrs_from_device, kDigest);
  EXPECT_TRUE(ParseAttestationPolicyChange(Serialize(AttestationPolicyChange{{}, {}, true}))
                  ->clear_golden_boot_pcrs);
  auto release = ParseOsReleaseRegistration(Serialize(Registration()));
  ASSERT_TRUE(release) << release.error().message();
  EXPECT_EQ(release->components, Registration().components);
  EXPECT_EQ(ParseOsReleaseRetirement(Serialize(OsReleaseRetirement{"CVE-2026-1"}))->reason,
            "CVE-2026-1");
}

template <class T>
void RefusedNaming(const Expected<T>& parsed, std::string_view field) {
  ASSERT_FALSE(parsed) << "accepted";
  EXPECT_NE(parsed.error().message().find(field), std::string::npos) << parsed.error().message();
}

TEST(OperatorApi, TenantTokenDeviceAndPolicyRequestsOutsideTheRulesAreRefused) {
  RefusedNaming(ParseTenantRequest(R"({"name": ""})"), "\"name\"");
  RefusedNaming(ParseTenantRequest(R"({"name": ")" + std::string(101, 'x') + "\"}"), "\"name\"");
  RefusedNaming(ParseTenantRequest(R"({"name": "a", "id": "mine"})"), "\"id\"");
  RefusedNaming(ParseTokenRequest(R"({"role": "Owner"})"), "\"role\"");
  RefusedNaming(ParseTokenRequest(R"({"description": "no role"})"), "\"role\"");
  RefusedNaming(ParseTokenRequest(R"({"role": "Reader", "description": 7})"), "\"description\"");
  RefusedNaming(ParseTokenRequest(R"({"role": "Reader", "tenant": "another"})"), "\"tenant\"");
  RefusedNaming(ParseDeviceClaim(R"({"device_id": ")" + std::string(64, 'A') + "\"}"),
                "\"device_id\"");
  RefusedNaming(ParseDeviceClaim(R"({"device_id": ")" + std::string(63, 'a') + "\"}"),
                "\"device_id\"");
  RefusedNaming(ParseDeviceClaim("{}"), "\"device_id\"");
  RefusedNaming(ParseAttestationPolicyChange(R"({"allow_software_root_of_trust": "yes"})"),
                "\"allow_software_root_of_trust\"");
  RefusedNaming(ParseAttestationPolicyChange(R"({"pin_boot_pcrs_from_device": "../x"})"),
                "\"pin_boot_pcrs_from_device\"");
  RefusedNaming(ParseAttestationPolicyChange(Serialize(AttestationPolicyChange{{}, kDigest, true})),
                "\"clear_golden_boot_pcrs\"");
  RefusedNaming(ParseAttestationPolicyChange("{}"), "changes nothing");
  RefusedNaming(ParseOsReleaseRetirement(R"({"reason": ""})"), "\"reason\"");
}

TEST(OperatorApi, NamesAndDescriptionsHoldNoControlCharactersAndVersionsArePathSafe) {
  RefusedNaming(ParseProductFields(R"({"name": "evil\u202egnp.exe"})"), "\"name\"");
  RefusedNaming(ParseProductFields(R"({"name": " padded"})"), "\"name\"");
  RefusedNaming(ParseProductFields(R"({"description": "\u001b]0;pwned\u0007"})"),
                "\"description\"");
  RefusedNaming(ParseTokenRequest(R"({"role": "Reader", "description": "a\u0000b"})"),
                "\"description\"");
  RefusedNaming(ParseTenantRequest(R"({"name": "gamma\u0000evil"})"), "\"name\"");
  RefusedNaming(ParseTenantRequest(R"({"name": ")" + std::string(65, 'x') + "\"}"), "\"name\"");
  RefusedNaming(ParseTokenRequest(R"({"role": "administrator"})"),
                "must be Administrator, Contributor or Reader");
  RefusedNaming(ParseTokenRequest(R"({"role": "Reader", "role": "Administrator"})"), "twice");
  auto slash = Registration();
  slash.version = "a/b";
  RefusedNaming(ParseOsReleaseRegistration(Serialize(slash)), "\"version\"");
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "\xc3\xa9";
  EXPECT_TRUE(ParseProductFields(Serialize(ProductFields{"Caf\xc3\xa9", accents})))
      << "200 characters of two bytes each fit";
  EXPECT_EQ(ParseTenantRequest(Serialize(TenantRequest{std::string(64, 'x')}))->name.size(), 64u);
}

TEST(OperatorApi, AnOsReleaseRegistrationListsExactlyTheLaunchComponents) {
  auto missing = Registration();
  missing.components.pop_back();
  RefusedNaming(ParseOsReleaseRegistration(Serialize(missing)), "\"components\"");
  auto extra = Registration();
  extra.components.emplace_back("kernel", kDigest);
  RefusedNaming(ParseOsReleaseRegistration(Serialize(extra)), "\"components\"");
  auto renamed = Registration();
  renamed.components.back().first = "kernel";
  RefusedNaming(ParseOsReleaseRegistration(Serialize(renamed)), "\"trust-bundle\"");
  auto upper = Registration();
  upper.components[0].second = std::string(64, 'A');
  RefusedNaming(ParseOsReleaseRegistration(Serialize(upper)), "\"os\"");
  auto feed = Registration();
  feed.feed = "beta";
  RefusedNaming(ParseOsReleaseRegistration(Serialize(feed)), "\"feed\"");
}

TEST(OperatorApi, TenantTokenDeviceAttestationCaAndAuditAnswersRoundTrip) {
  EXPECT_EQ(TenantFrom(ToJson(Tenant{"t", "Contoso", 1}))->name, "Contoso");
  const Token token{"id", "Reader", "d", 2, true, "aspis_secret"};
  EXPECT_EQ(TokenFrom(ToJson(token))->secret, "aspis_secret");
  EXPECT_FALSE(ToJson(Token{"id", "Reader", "d", 2, false, {}}).contains("token"))
      << "a listed token carries no secret";
  Device device{.id = "dev", .verdict = "trusted", .attested_at = 3, .board = "mt3620-sim"};
  EXPECT_FALSE(ToJson(device).contains("publisher_root"));
  device.publisher_root = PublisherPin{"aa", "bb", "DIFFERS"};
  device.images = {{"img", "failed", "no space", 4}};
  auto read = DeviceFrom(ToJson(device));
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->verdict, "trusted");
  EXPECT_EQ(read->attested_at, 3);
  EXPECT_EQ(read->publisher_root->status, "DIFFERS");
  EXPECT_EQ(read->images[0].reason, "no space");
  const Attestation a{"dev",
                      "untrusted",
                      "why",
                      5,
                      "tpm",
                      "25.01",
                      {{"0", "ab"}, {"7", "cd"}},
                      {{6, "trusted", "", true}}};
  auto attested = AttestationFrom(ToJson(a));
  ASSERT_TRUE(attested) << attested.error().message();
  EXPECT_EQ(attested->boot_pcrs, a.boot_pcrs);
  EXPECT_TRUE(attested->attempts[0].proven);
  EXPECT_EQ(AttestationPolicyFrom(ToJson(AttestationPolicy{true, {{"0", "ab"}}}))->golden_boot_pcrs,
            (BootPcrs{{"0", "ab"}}));
  EXPECT_EQ(CaCertificateFrom(ToJson(CaCertificate{2, "th", "s", 1, 9, 3, "Active"}))->not_after,
            9);
  EXPECT_EQ(AuditEntryFrom(ToJson(AuditEntry{7, "tok", "device.claim", "dev", 8}))->sequence, 7);
  EXPECT_EQ(DeletionFrom(ToJson(Deletion{"p"}))->id, "p");
  EXPECT_EQ(UploadFrom(ToJson(Upload{"u", 10}))->received, 10);
}

TEST(OperatorApi, AnAnswerWithAFieldOfTheWrongShapeIsRefused) {
  json::Json device = ToJson(Device{.id = "dev"});
  device["attestation"]["certificate_expiry"] = "tomorrow";
  RefusedNaming(DeviceFrom(device), "\"certificate_expiry\"");
  json::Json attestation = ToJson(Attestation{});
  attestation["boot_pcrs"] = json::Json{{"0", 5}};
  EXPECT_FALSE(AttestationFrom(attestation));
  json::Json token = ToJson(Token{"id", "Reader", "", 1, false, {}});
  token.erase("revoked");
  RefusedNaming(TokenFrom(token), "\"revoked\"");
  EXPECT_FALSE(DeletionFrom(json::Json{{"id", "p"}, {"deleted", false}}));
}

}  // namespace
}  // namespace aspis::wire::api
