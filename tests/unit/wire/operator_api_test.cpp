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
  const Deployment d{"d1", "g1", 5, "token-1", {"i1"}, true, {{"i1", 1, 2, 3, {{"dev", "why"}}}}};
  auto read = DeploymentFrom(ToJson(d));
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->progress[0].failed, 3);
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

}  // namespace
}  // namespace aspis::wire::api
