// Products and device groups against a running aspis-service, through the API and the CLI.
#include <gtest/gtest.h>

#include <sstream>

#include "cli/cli.hpp"
#include "core/json.hpp"
#include "integration/catalog_fixture.hpp"
#include "service/service.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"

namespace aspis::service {
namespace {

using json::Json;

const std::string kDevice(64, 'd');

// The catalog's service and tenants, with JSON bodies and a Contributor of tenant A.
class Products : public catalog_test::Catalog {
 protected:
  void SetUp() override {
    Catalog::SetUp();
    a_ = tenant_a_;
    b_ = tenant_b_;
    a_contributor_ = Token(a_, "Contributor");
  }

  wire::HttpResponse Call(const std::string& token, const std::string& method,
                          const std::string& target, const Json& body = nullptr) const {
    return Catalog::Call(token, method, target, body.is_null() ? "" : body.dump());
  }
  Json CallJson(const std::string& token, const std::string& method, const std::string& target,
                const Json& body = nullptr) const {
    return json::Parse(Call(token, method, target, body).body).value_or(Json());
  }
  std::string T(const std::string& tenant) const { return "/v1/tenants/" + tenant; }
  // The ID of the named group of the product.
  std::string Group(const std::string& tenant, const std::string& product,
                    const std::string& name) const {
    for (const auto& g :
         CallJson(admin_, "GET", T(tenant) + "/products/" + product + "/device-groups")) {
      if (g.value("name", "") == name) return g.value("id", "");
    }
    return "";
  }

  std::string a_, b_, a_contributor_;
};

TEST_F(Products, ProductCreateMakesTheFiveDefaultDeviceGroups) {
  auto created = Call(a_contributor_, "POST", T(a_) + "/products", {{"name", "Coffee Maker"}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string product = json::Parse(created.body)->value("id", "");
  const Json groups = CallJson(a_reader_, "GET", T(a_) + "/products/" + product + "/device-groups");
  ASSERT_EQ(groups.size(), 5u) << groups.dump();
  std::map<std::string, std::pair<std::string, bool>> seen;
  for (const auto& g : groups) {
    seen[g.value("name", "")] = {g.value("os_feed", ""), g.value("app_updates", true)};
    EXPECT_EQ(g.value("update_policy", ""), "UpdateAll");
  }
  const std::map<std::string, std::pair<std::string, bool>> expected = {
      {"Development", {"retail", false}},
      {"Field Test", {"retail", true}},
      {"Production", {"retail", true}},
      {"Production OS Evaluation", {"retail-eval", true}},
      {"Field Test OS Evaluation", {"retail-eval", true}}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(Call(a_contributor_, "POST", T(a_) + "/products", {{"name", "Coffee Maker"}}).status,
            409);
}

TEST_F(Products, GroupsAreManagedByRoleAndDevicesMoveBetweenThem) {
  ASSERT_EQ(Call(a_admin_, "POST", T(a_) + "/products", {{"name", "Kiosk"}}).status, 201);
  EXPECT_EQ(
      Call(a_reader_, "POST", T(a_) + "/products/Kiosk/device-groups", {{"name", "Lab"}}).status,
      403);
  auto lab = Call(a_contributor_, "POST", T(a_) + "/products/Kiosk/device-groups",
                  {{"name", "Lab"}, {"os_feed", "retail-eval"}, {"update_policy", "NoUpdates"}});
  ASSERT_EQ(lab.status, 201) << lab.body;
  const std::string lab_id = json::Parse(lab.body)->value("id", "");
  EXPECT_EQ(Call(a_contributor_, "POST", T(a_) + "/products/Kiosk/device-groups",
                 {{"name", "Lab2"}, {"update_policy", "Sometimes"}})
                .status,
            400);
  EXPECT_EQ(
      Call(a_contributor_, "PATCH", T(a_) + "/device-groups/" + lab_id, {{"app_updates", false}})
          .status,
      200);
  EXPECT_FALSE(
      CallJson(a_reader_, "GET", T(a_) + "/device-groups/" + lab_id).value("app_updates", true));

  ASSERT_EQ(Call(a_admin_, "POST", T(a_) + "/devices", {{"device_id", kDevice}}).status, 201);
  auto moved = Call(a_contributor_, "POST", T(a_) + "/devices/" + kDevice + "/device-group",
                    {{"device_group_id", lab_id}});
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(json::Parse(moved.body)->value("device_group_id", ""), lab_id);
  EXPECT_EQ(Call(a_contributor_, "DELETE", T(a_) + "/device-groups/" + lab_id).status, 403)
      << "Contributors do not delete";
  EXPECT_EQ(Call(a_admin_, "DELETE", T(a_) + "/device-groups/" + lab_id).status, 409)
      << "the group holds a device";
  EXPECT_EQ(Call(a_admin_, "DELETE", T(a_) + "/products/Kiosk").status, 409);
  const std::string field_test = Group(a_, "Kiosk", "Field Test");
  ASSERT_EQ(Call(a_contributor_, "POST", T(a_) + "/devices/" + kDevice + "/device-group",
                 {{"device_group_id", field_test}})
                .status,
            200);
  EXPECT_EQ(Call(a_admin_, "DELETE", T(a_) + "/device-groups/" + lab_id).status, 200);
  const std::string audit = Call(a_admin_, "GET", T(a_) + "/audit").body;
  for (const char* action : {"product.create", "device-group.create", "device-group.update",
                             "device.update", "device-group.delete"}) {
    EXPECT_NE(audit.find(action), std::string::npos) << action;
  }
}

TEST_F(Products, TenantIsolationAnotherTenantsProductsAndGroupsAreOutOfReach) {
  ASSERT_EQ(Call(a_admin_, "POST", T(a_) + "/products", {{"name", "Kiosk"}}).status, 201);
  const std::string group = Group(a_, "Kiosk", "Production");
  for (const auto& target :
       {T(a_) + "/products", T(a_) + "/products/Kiosk", T(a_) + "/device-groups/" + group}) {
    EXPECT_EQ(Call(b_admin_, "GET", target).status, 403) << target;
  }
  EXPECT_EQ(Call(b_admin_, "GET", T(b_) + "/products/Kiosk").status, 404);
  EXPECT_EQ(Call(b_admin_, "GET", T(b_) + "/device-groups/" + group).status, 404);
  EXPECT_EQ(Call(b_admin_, "PATCH", T(b_) + "/device-groups/" + group, {{"name", "Mine"}}).status,
            404);
  ASSERT_EQ(Call(b_admin_, "POST", T(b_) + "/devices", {{"device_id", kDevice}}).status, 201);
  EXPECT_EQ(Call(b_admin_, "POST", T(b_) + "/devices/" + kDevice + "/device-group",
                 {{"device_group_id", group}})
                .status,
            404)
      << "a device cannot join another tenant's group";
}

TEST_F(Products, CliUsesProductAndGroupNamesAsAzsphereDoes) {
  ::setenv("ASPIS_CONFIG", (dir_ / "cli.json").c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  auto run = [](std::vector<std::string> args) {
    std::ostringstream out, err;
    EXPECT_EQ(cli::Main(args, out, err), 0) << err.str();
    return out.str();
  };
  run({"login", "--url", "https://127.0.0.1:" + std::to_string(service_->port()), "--token",
       a_admin_, "--root-ca", (dir_ / "data/root-ca.pem").string(), "--tenant", a_});
  run({"product", "create", "--name", "Lobby Kiosk", "--description", "By the door"});
  EXPECT_NE(
      run({"device-group", "list", "--product", "Lobby Kiosk"}).find("Field Test OS Evaluation"),
      std::string::npos);
  run({"device-group", "update", "--device-group", "Lobby Kiosk/Production", "--update-policy",
       "No3rdPartyAppUpdates"});
  EXPECT_NE(run({"device-group", "show", "--device-group", "Lobby Kiosk/Production"})
                .find("No3rdPartyAppUpdates"),
            std::string::npos);
  run({"device", "claim", "--device", kDevice});
  run({"device", "update", "--device", kDevice, "--device-group", "Lobby Kiosk/Field Test"});
  EXPECT_EQ(
      CallJson(a_admin_, "GET", T(a_) + "/devices/" + kDevice).value("device_group_id", ""),
      Group(a_, CallJson(a_admin_, "GET", T(a_) + "/products")[0].value("id", ""), "Field Test"));
}

}  // namespace
}  // namespace aspis::service
