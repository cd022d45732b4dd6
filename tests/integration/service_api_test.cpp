// aspis-service end to end over HTTPS: tenants, tokens and roles, devices, audit, CA download.
#include <gtest/gtest.h>

#include <fstream>

#include "core/json.hpp"
#include "crypto/tls.hpp"
#include "service/service.hpp"
#include "support/process.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace aspis::service {
namespace {

using json::Json;
using testing::TempDir;

class ServiceApi : public ::testing::Test {
 protected:
  void SetUp() override {
    Start();
    admin_ = service_->new_admin_token();
    ASSERT_FALSE(admin_.empty());
    tenant_a_ = CreateTenant("Contoso");
    tenant_b_ = CreateTenant("Fabrikam");
    a_admin_ = CreateToken(tenant_a_, "Administrator");
    b_admin_ = CreateToken(tenant_b_, "Administrator");
  }

  void Start() {
    auto service = Service::Start(testing::ServiceConfig(dir_.path()), SystemClock::Instance());
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
  }

  wire::HttpResponse Call(const std::string& token, const std::string& method,
                          const std::string& target, const std::string& body = {}) const {
    return testing::CallService(*service_, token, method, target, body);
  }

  Json CallJson(const std::string& token, std::string method, std::string target,
                std::string body = {}) const {
    auto response = Call(token, std::move(method), std::move(target), std::move(body));
    auto doc = json::Parse(response.body);
    return doc ? *doc : Json();
  }

  std::string CreateTenant(const std::string& name) {
    auto response = Call(admin_, "POST", "/v1/tenants", Json{{"name", name}}.dump());
    EXPECT_EQ(response.status, 201) << response.body;
    return json::Parse(response.body).value_or(Json::object()).value("id", "");
  }

  std::string CreateToken(const std::string& tenant, const std::string& role,
                          const std::string& as = {}) {
    auto response = Call(as.empty() ? admin_ : as, "POST", "/v1/tenants/" + tenant + "/tokens",
                         Json{{"role", role}}.dump());
    EXPECT_EQ(response.status, 201) << response.body;
    return json::Parse(response.body).value_or(Json::object()).value("token", "");
  }

  TempDir dir_;
  std::unique_ptr<Service> service_;
  std::string admin_, tenant_a_, tenant_b_, a_admin_, b_admin_;
};

const std::string kDevice(64, 'e');

TEST_F(ServiceApi, FirstStartCreatesTheDataDirectoryWithNoSecretInTheClear) {
  for (const char* name :
       {"root-ca.pem", "root-ca.key.sealed", "server.pem", "server.key.sealed", "aspis.db"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ / "data" / name)) << name;
  }
  // The master key, the admin token and the server's private key are not in the directory.
  for (const char* name : {"master.key", "admin-token", "server.key"}) {
    EXPECT_FALSE(std::filesystem::exists(dir_ / "data" / name)) << name;
  }
  EXPECT_FALSE(admin_.empty());
  EXPECT_EQ(std::filesystem::status(dir_ / "master.key").permissions() &
                (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  EXPECT_EQ(std::filesystem::status(dir_ / "data/aspis.db").permissions() &
                std::filesystem::perms::others_all,
            std::filesystem::perms::none);
}

TEST_F(ServiceApi, RestartKeepsDataAndMakesNoSecondAdminToken) {
  service_.reset();
  Start();
  EXPECT_TRUE(service_->new_admin_token().empty());
  EXPECT_EQ(Call(admin_, "GET", "/v1/tenants/" + tenant_a_).status, 200);
}

TEST_F(ServiceApi, WrongMasterKeyIsRefusedWithAClearError) {
  service_.reset();
  std::ofstream(dir_ / "other.key", std::ios::binary) << std::string(32, 'k');
  std::filesystem::permissions(dir_ / "other.key", std::filesystem::perms::owner_read);
  auto started = Service::Start(
      {.data_dir = dir_ / "data", .listen = "127.0.0.1:0", .master_key_file = dir_ / "other.key"},
      SystemClock::Instance());
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("wrong master key"), std::string::npos)
      << started.error().message();
}

TEST_F(ServiceApi, MissingOrRevokedTokenIsUnauthorized) {
  EXPECT_EQ(Call("", "GET", "/v1/tenants").status, 401);
  EXPECT_EQ(Call("aspis_forged", "GET", "/v1/tenants").status, 401);
  const std::string reader = CreateToken(tenant_a_, "Reader");
  EXPECT_EQ(Call(reader, "GET", "/v1/tenants").status, 200);
  auto tokens = CallJson(a_admin_, "GET", "/v1/tenants/" + tenant_a_ + "/tokens");
  std::string reader_id;
  for (const auto& t : tokens) {
    if (t["role"] == "Reader") reader_id = t["id"];
  }
  ASSERT_FALSE(reader_id.empty());
  EXPECT_EQ(Call(a_admin_, "DELETE", "/v1/tenants/" + tenant_a_ + "/tokens/" + reader_id).status,
            200);
  auto refused = Call(reader, "GET", "/v1/tenants");
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(refused.content_type, "application/problem+json");
}

TEST_F(ServiceApi, TenantIsolationTokenOfTenantAIsRefusedOnEveryTenantBRoute) {
  ASSERT_EQ(Call(b_admin_, "POST", "/v1/tenants/" + tenant_b_ + "/devices",
                 Json{{"device_id", kDevice}}.dump())
                .status,
            201);
  const std::string b = "/v1/tenants/" + tenant_b_;
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", b},
      {"GET", b + "/tokens"},
      {"POST", b + "/tokens"},
      {"DELETE", b + "/tokens/x"},
      {"GET", b + "/devices"},
      {"POST", b + "/devices"},
      {"GET", b + "/devices/" + kDevice},
      {"POST", b + "/devices/" + kDevice + "/revoke"},
      {"POST", b + "/devices/" + kDevice + "/restore"},
      {"GET", b + "/ca-certificate"},
      {"GET", b + "/ca-certificates"},
      {"GET", b + "/ca-certificates/1"},
      {"GET", b + "/audit"},
  };
  for (const auto& [method, path] : routes) {
    const auto response = Call(a_admin_, method, path, R"({"role":"Reader"})");
    EXPECT_EQ(response.status, 403) << method << " " << path << ": " << response.body;
  }
  const auto listed = CallJson(a_admin_, "GET", "/v1/tenants");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], tenant_a_);
  EXPECT_FALSE(CallJson(b_admin_, "GET", b + "/devices/" + kDevice)["revoked"]);
}

TEST_F(ServiceApi, ReaderCannotWriteAndContributorCannotRevoke) {
  const std::string reader = CreateToken(tenant_a_, "Reader");
  const std::string contributor = CreateToken(tenant_a_, "Contributor");
  const std::string a = "/v1/tenants/" + tenant_a_;
  const std::string claim = Json{{"device_id", kDevice}}.dump();
  EXPECT_EQ(Call(reader, "POST", a + "/devices", claim).status, 403);
  EXPECT_EQ(Call(reader, "POST", a + "/tokens", R"({"role":"Reader"})").status, 403);
  EXPECT_EQ(Call(contributor, "POST", a + "/devices", claim).status, 201);
  EXPECT_EQ(Call(contributor, "POST", a + "/devices/" + kDevice + "/revoke").status, 403);
  EXPECT_EQ(Call(contributor, "POST", a + "/tokens", R"({"role":"Administrator"})").status, 403);
  EXPECT_EQ(Call(reader, "GET", a + "/devices/" + kDevice).status, 200);
  EXPECT_EQ(Call(a_admin_, "POST", a + "/devices/" + kDevice + "/revoke").status, 200);
  EXPECT_TRUE(CallJson(reader, "GET", a + "/devices/" + kDevice)["revoked"]);
}

TEST_F(ServiceApi, DuplicateKeyAttackARequestNamingAFieldTwiceIsRefused) {
  const std::string tokens = "/v1/tenants/" + tenant_a_ + "/tokens";
  // A proxy or an audit tool reading the first key would see a Reader token asked for.
  const auto refused =
      Call(a_admin_, "POST", tokens, R"({"role":"Reader","role":"Administrator"})");
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("names a key twice"), std::string::npos) << refused.body;
  EXPECT_EQ(Call(a_admin_, "POST", tokens, R"({"role":"Administrator"})").status, 201);
}

TEST_F(ServiceApi, TextWithControlCharactersIsRefusedWhereOperatorsWriteIt) {
  const std::string a = "/v1/tenants/" + tenant_a_;
  for (const char* description : {R"(\u001b[2J)", R"(evil\u202egnp.exe)", R"(x\u0085)"}) {
    SCOPED_TRACE(description);
    const std::string body =
        std::string(R"({"role":"Reader","description":")") + description + "\"}";
    const auto refused = Call(a_admin_, "POST", a + "/tokens", body);
    EXPECT_EQ(refused.status, 400);
    EXPECT_NE(refused.body.find("control characters"), std::string::npos) << refused.body;
  }
  EXPECT_EQ(Call(a_admin_, "POST", a + "/tokens", R"({"role":"Reader","description":"dashboards"})")
                .status,
            201);
  // 64 characters fit a CA's organisation name; 65 do not.
  EXPECT_EQ(Call(admin_, "POST", "/v1/tenants", Json{{"name", std::string(65, 'x')}}.dump()).status,
            400);
}

TEST_F(ServiceApi, ClaimIsOnceAndDoesNotRevealTheOwningTenant) {
  const std::string claim = Json{{"device_id", kDevice}}.dump();
  ASSERT_EQ(Call(a_admin_, "POST", "/v1/tenants/" + tenant_a_ + "/devices", claim).status, 201);
  const auto again = Call(b_admin_, "POST", "/v1/tenants/" + tenant_b_ + "/devices", claim);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body.find(tenant_a_), std::string::npos);
  EXPECT_EQ(again.body.find("Contoso"), std::string::npos);
  EXPECT_EQ(Call(b_admin_, "GET", "/v1/tenants/" + tenant_b_ + "/devices/" + kDevice).status, 404);
}

TEST_F(ServiceApi, MalformedAndOversizedBodiesAreRejectedAndTheServiceKeepsServing) {
  const std::string devices = "/v1/tenants/" + tenant_a_ + "/devices";
  EXPECT_EQ(Call(a_admin_, "POST", devices, "{not json").status, 400);
  EXPECT_EQ(Call(a_admin_, "POST", devices, "[1,2]").status, 400);
  EXPECT_EQ(Call(a_admin_, "POST", devices, R"({"device_id":"UPPER"})").status, 400);
  {
    // The service answers 413 and closes; a client still sending may see the reset instead.
    const std::vector<crypto::Certificate> roots{service_->root_ca()};
    wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
    auto oversized = client.Send("POST", devices, std::string(2 << 20, ' '),
                                 {{"Authorization", "Bearer " + a_admin_}});
    if (oversized) {
      EXPECT_EQ(oversized->status, 413);
    }
  }
  EXPECT_TRUE(CallJson(a_admin_, "GET", devices).empty());
  EXPECT_EQ(Call("", "GET", "/healthz").status, 200);
}

TEST_F(ServiceApi, EveryChangeIsInTheAuditLog) {
  const std::string a = "/v1/tenants/" + tenant_a_;
  ASSERT_EQ(Call(a_admin_, "POST", a + "/devices", Json{{"device_id", kDevice}}.dump()).status,
            201);
  ASSERT_EQ(Call(a_admin_, "POST", a + "/devices/" + kDevice + "/revoke").status, 200);
  const auto audit = CallJson(a_admin_, "GET", a + "/audit");
  ASSERT_GE(audit.size(), 4u);
  EXPECT_EQ(audit[0]["action"], "device.revoke");
  EXPECT_EQ(audit[0]["target"], kDevice);
  EXPECT_EQ(audit[1]["action"], "device.claim");
  EXPECT_EQ(audit.back()["action"], "tenant.create");
  bool token_named = false;
  for (const auto& entry : audit) {
    if (entry["action"] == "token.create")
      token_named = !entry["target"].get<std::string>().empty();
  }
  EXPECT_TRUE(token_named) << audit.dump();
}

TEST_F(ServiceApi, DownloadedTenantCaChainVerifiesWithOpenssl) {
  auto chain = Call(a_admin_, "GET", "/v1/tenants/" + tenant_a_ + "/ca-certificate");
  ASSERT_EQ(chain.status, 200);
  auto certs = crypto::Certificate::ChainFromPem(chain.body);
  ASSERT_TRUE(certs);
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_TRUE((*certs)[0].IsCa());
  std::ofstream(dir_ / "root.pem") << *service_->root_ca().ToPem();
  std::ofstream(dir_ / "tenant.pem") << *(*certs)[0].ToPem();
  auto verified = testing::RunProcess({"openssl", "verify", "-CAfile", (dir_ / "root.pem").string(),
                                       (dir_ / "tenant.pem").string()});
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
}

TEST_F(ServiceApi, HealthAndMetricsAreServed) {
  EXPECT_EQ(Call("", "GET", "/healthz").status, 200);
  Call("", "GET", "/v1/tenants");
  const auto metrics = Call("", "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("aspis_http_requests_total{method=\"GET\",route=\"/v1/tenants\","
                              "status=\"401\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("aspis_http_request_duration_seconds_bucket"), std::string::npos);
}

}  // namespace
}  // namespace aspis::service
