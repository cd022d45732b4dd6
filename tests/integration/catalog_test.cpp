// The image catalog against a running aspis-service: publisher key sets, images added in parts and
// verified, read back in ranges; the attacks an upload must not get past; tenant isolation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli/cli.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/encoding.hpp"
#include "crypto/tls.hpp"
#include "integration/catalog_fixture.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"
#include "service/service.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"

namespace aspis::service {
namespace {

namespace fs = std::filesystem;
using catalog_test::Catalog;
using catalog_test::kComponent;
using catalog_test::ManifestOf;
using json::Json;
using testing::TempDir;

TEST_F(Catalog, TenantAddsAnAppItsPublisherSignedAndReadsItBackInRanges) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  // Over 1 MiB, so it travels in several parts, and over 4 MiB, so it comes back in ranges.
  const Bytes package = Package(package::Kind::kApp, publisher_, std::size_t{9} << 20);
  auto added = Upload(a_admin_, A(), package);
  ASSERT_EQ(added.status, 201) << added.body;
  const Json image = *json::Parse(added.body);
  EXPECT_EQ(image.value("sha256", ""), crypto::ToHex(*crypto::Sha256Of(package)));
  const std::string id = image.value("id", "");

  auto listed = json::Parse(Call(a_reader_, "GET", A() + "/images").body);
  ASSERT_TRUE(listed && listed->size() == 1) << listed->dump();
  Bytes read;
  while (read.size() < package.size()) {
    auto range = Call(a_reader_, "GET", A() + "/images/" + id + "/content", {},
                      {{"Range", "bytes=" + std::to_string(read.size()) + "-"}});
    ASSERT_EQ(range.status, 206) << range.body;
    ASSERT_LE(range.body.size(), std::size_t{4} << 20);
    read.insert(read.end(), range.body.begin(), range.body.end());
  }
  EXPECT_EQ(read, package);
  auto whole = Call(a_reader_, "GET", A() + "/images/" + id + "/content");
  EXPECT_EQ(whole.status, 400) << "larger than one range";
  auto beyond = Call(a_reader_, "GET", A() + "/images/" + id + "/content", {},
                     {{"Range", "bytes=" + std::to_string(package.size()) + "-"}});
  EXPECT_EQ(beyond.status, 416);
  auto audit = Call(a_admin_, "GET", A() + "/audit");
  EXPECT_NE(audit.body.find("image.add"), std::string::npos);
  EXPECT_NE(audit.body.find("publisher-key-set.update"), std::string::npos);
}

TEST_F(Catalog, ArbitrarySoftwareAttackAppSignedByAnotherTenantsPublisherIsRefused) {
  const auto b_publisher = *crypto::PrivateKey::GenerateP256();
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  ASSERT_EQ(
      PutKeySet(b_admin_, tenant_b_, KeySet(tenant_b_, 1, {&root_}, b_publisher, {&root_})).status,
      200);
  auto refused = Upload(a_admin_, A(), Package(package::Kind::kApp, b_publisher));
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("not signed by one of the tenant's app publisher keys"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_)).status, 201);
  EXPECT_EQ(json::Parse(Call(a_admin_, "GET", A() + "/images").body)->size(), 1u);
}

TEST_F(Catalog, AppWithoutAPublisherKeySetIsRefusedSayingHowToUploadOne) {
  auto refused = Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("publisher-key-set update"), std::string::npos) << refused.body;
}

TEST_F(Catalog, PublisherKeySetNotSignedByTheCurrentRootIsRefused) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  const auto usurper = *crypto::PrivateKey::GenerateP256();
  auto refused =
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 2, {&usurper}, usurper, {&usurper}));
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("not signed by the pinned root"), std::string::npos) << refused.body;
  auto for_b = PutKeySet(b_admin_, tenant_b_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_}));
  EXPECT_EQ(for_b.status, 422) << "a set names its tenant";
  // A rotation both roots sign is accepted.
  auto rotated =
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 2, {&usurper}, usurper, {&usurper, &root_}));
  EXPECT_EQ(rotated.status, 200) << rotated.body;
  EXPECT_EQ(
      json::Parse(Call(a_reader_, "GET", A() + "/publisher-key-set").body)->value("version", 0), 2);
}

TEST_F(Catalog, PlatformAddsOsAndBoardImagesSignedByAnOsPublisherOnly) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  EXPECT_EQ(Upload(admin_, "/v1", Package(package::Kind::kOs, os_key_)).status, 201);
  EXPECT_EQ(Upload(admin_, "/v1", Package(package::Kind::kBoard, os_key_)).status, 201);
  auto by_tenant_key = Upload(admin_, "/v1", Package(package::Kind::kOs, publisher_));
  EXPECT_EQ(by_tenant_key.status, 422);
  EXPECT_NE(by_tenant_key.body.find("platform's OS publisher keys"), std::string::npos);
  auto os_from_tenant = Upload(a_admin_, A(), Package(package::Kind::kOs, os_key_));
  EXPECT_EQ(os_from_tenant.status, 422);
  EXPECT_EQ(Call(a_admin_, "POST", "/v1/image-uploads").status, 403);
  EXPECT_EQ(json::Parse(Call(admin_, "GET", "/v1/images").body)->size(), 2u);
}

TEST_F(Catalog, TenantIsolationAnotherTenantsImagesAndUploadsAreOutOfReach) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  auto added = Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  const std::string id = json::Parse(added.body).value_or(Json::object()).value("id", "");
  const std::string b = "/v1/tenants/" + tenant_b_;
  for (const auto& target : {A() + "/images", A() + "/images/" + id, A() + "/publisher-key-set"}) {
    EXPECT_EQ(Call(b_admin_, "GET", target).status, 403) << target;
  }
  EXPECT_EQ(Call(b_admin_, "GET", b + "/images/" + id).status, 404);
  EXPECT_EQ(Call(b_admin_, "GET", b + "/images/" + id + "/content").status, 404);
  auto started = Call(a_admin_, "POST", A() + "/image-uploads");
  const std::string upload = json::Parse(started.body).value_or(Json::object()).value("id", "");
  EXPECT_EQ(Call(b_admin_, "POST", b + "/image-uploads/" + upload + "/parts", "x",
                 {{"Upload-Offset", "0"}})
                .status,
            404);
  EXPECT_EQ(Call(b_admin_, "POST", b + "/image-uploads/" + upload + "/complete").status, 404);
  EXPECT_EQ(Call(a_reader_, "POST", A() + "/image-uploads").status, 403) << "Readers read";
}

TEST_F(Catalog, ImagesAreImmutableTheSameImageIdTwiceIsAConflict) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  const Bytes package = Package(package::Kind::kApp, publisher_);
  EXPECT_EQ(Upload(a_admin_, A(), package).status, 201);
  EXPECT_EQ(Upload(a_admin_, A(), package).status, 409);
}

TEST_F(Catalog, MixAndMatchAttackPartChangedInTransitIsRefusedOnCompletion) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  Bytes package = Package(package::Kind::kApp, publisher_);
  auto started = Call(a_admin_, "POST", A() + "/image-uploads");
  const std::string upload =
      A() + "/image-uploads/" + json::Parse(started.body).value_or(Json::object()).value("id", "");
  auto wrong_offset = Call(a_admin_, "POST", upload + "/parts", "x", {{"Upload-Offset", "5"}});
  EXPECT_EQ(wrong_offset.status, 409);
  package[package.size() - 10] ^= 0x01;
  ASSERT_EQ(Call(a_admin_, "POST", upload + "/parts", std::string(AsString(package)),
                 {{"Upload-Offset", "0"}})
                .status,
            200);
  auto refused = Call(a_admin_, "POST", upload + "/complete");
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("SHA-256"), std::string::npos) << refused.body;
  EXPECT_EQ(Call(a_admin_, "POST", upload + "/complete").status, 404) << "the upload is gone";
  EXPECT_TRUE(json::Parse(Call(a_admin_, "GET", A() + "/images").body)->empty());
}

TEST_F(Catalog, DeploymentsPutTenantAppImagesOnAGroupEachComponentOnce) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  auto id_of = [](const wire::HttpResponse& r) {
    return json::Parse(r.body).value_or(Json::object()).value("id", "");
  };
  const std::string v1 = id_of(Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_)));
  const std::string v2 = id_of(Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_)));
  ASSERT_EQ(Call(a_admin_, "POST", A() + "/products", Json{{"name", "Kiosk"}}.dump()).status, 201);
  std::string group;
  const Json groups =
      *json::Parse(Call(a_admin_, "GET", A() + "/products/Kiosk/device-groups").body);
  for (const auto& g : groups) {
    if (g.value("name", "") == "Field Test") group = g.value("id", "");
  }

  const std::string deployments = A() + "/device-groups/" + group + "/deployments";
  auto deploy = [&](const std::string& token, const std::vector<std::string>& images) {
    return Call(token, "POST", deployments, Json{{"images", images}}.dump());
  };
  EXPECT_EQ(deploy(a_reader_, {v1}).status, 403);
  EXPECT_EQ(deploy(a_admin_, {v1, v2}).status, 409) << "one component twice";
  ASSERT_EQ(deploy(a_admin_, {v1}).status, 201);
  ASSERT_EQ(deploy(a_admin_, {v2}).status, 201);
  const Json history = *json::Parse(Call(a_reader_, "GET", deployments).body);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_TRUE(history[0].value("current", false));
  EXPECT_EQ(history[0]["images"][0], v2);
  EXPECT_FALSE(history[1].value("current", true));

  // Another tenant's image, or another tenant's group, cannot be used.
  const auto b_publisher = *crypto::PrivateKey::GenerateP256();
  ASSERT_EQ(
      PutKeySet(b_admin_, tenant_b_, KeySet(tenant_b_, 1, {&root_}, b_publisher, {&root_})).status,
      200);
  const std::string b_image = id_of(
      Upload(b_admin_, "/v1/tenants/" + tenant_b_, Package(package::Kind::kApp, b_publisher)));
  EXPECT_EQ(deploy(a_admin_, {b_image}).status, 404);
  EXPECT_EQ(Call(b_admin_, "POST",
                 "/v1/tenants/" + tenant_b_ + "/device-groups/" + group + "/deployments",
                 Json{{"images", {b_image}}}.dump())
                .status,
            404);
  EXPECT_EQ(json::Parse(Call(a_reader_, "GET", deployments).body)->size(), 2u);
}

// A service whose clock the test moves.
class CatalogUploads : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service = Service::Start(testing::ServiceConfig(dir_.path()), clock_);
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
    admin_ = service_->new_admin_token();
  }

  TempDir dir_;
  FakeClock clock_{std::chrono::system_clock::now()};
  std::unique_ptr<Service> service_;
  std::string admin_;
};

TEST_F(CatalogUploads, UploadsNotCompletedWithinADayAreDroppedByTheScheduledWork) {
  auto started = testing::CallService(*service_, admin_, "POST", "/v1/image-uploads");
  ASSERT_EQ(started.status, 201) << started.body;
  const std::string id = json::Parse(started.body)->value("id", "");
  ASSERT_TRUE(fs::exists(dir_ / "data" / "uploads" / id));
  clock_.Set(clock_.Now() + std::chrono::hours(23));
  ASSERT_TRUE(service_->RunMaintenance());
  EXPECT_TRUE(fs::exists(dir_ / "data" / "uploads" / id)) << "younger than a day";
  clock_.Set(clock_.Now() + std::chrono::hours(2));
  ASSERT_TRUE(service_->RunMaintenance());
  EXPECT_FALSE(fs::exists(dir_ / "data" / "uploads" / id));
  EXPECT_EQ(testing::CallService(*service_, admin_, "POST", "/v1/image-uploads/" + id + "/complete")
                .status,
            404);
}

TEST_F(Catalog, ConcurrentCompletionsStoreOneImageAndLatePartsAreRefused) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  const Bytes package = Package(package::Kind::kApp, publisher_, std::size_t{3} << 20);
  const std::string upload = SendParts(a_admin_, A(), package);
  std::vector<int> statuses(3);
  {
    std::vector<std::jthread> completing;
    for (int& status : statuses) {
      completing.emplace_back(
          [&] { status = Call(a_admin_, "POST", upload + "/complete").status; });
    }
  }
  std::sort(statuses.begin(), statuses.end());
  EXPECT_EQ(statuses, (std::vector<int>{201, 404, 404}));
  auto late = Call(a_admin_, "POST", upload + "/parts", "EVILBYTES",
                   {{"Upload-Offset", std::to_string(package.size())}});
  EXPECT_EQ(late.status, 404);
  const std::string id =
      json::Parse(Call(a_reader_, "GET", A() + "/images").body)->at(0).value("id", "");
  Bytes stored;
  while (stored.size() < package.size() + 1) {
    auto range = Call(a_reader_, "GET", A() + "/images/" + id + "/content", {},
                      {{"Range", "bytes=" + std::to_string(stored.size()) + "-"}});
    if (range.status != 206) break;
    stored.insert(stored.end(), range.body.begin(), range.body.end());
  }
  EXPECT_EQ(stored, package) << "exactly the verified bytes";
}

TEST_F(Catalog, ImageIdsAreScopedToTheirTenantSoNoneCanBeProbedOrTaken) {
  ASSERT_EQ(
      PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
      200);
  const auto b_publisher = *crypto::PrivateKey::GenerateP256();
  ASSERT_EQ(
      PutKeySet(b_admin_, tenant_b_, KeySet(tenant_b_, 1, {&root_}, b_publisher, {&root_})).status,
      200);
  const Bytes a_package = Package(package::Kind::kApp, publisher_);
  ASSERT_EQ(Upload(a_admin_, A(), a_package).status, 201);
  // Tenant B re-signs A's manifest (same image ID) with its own key.
  auto manifest = ManifestOf(a_package);
  ASSERT_TRUE(file::WriteDurably(dir_ / "b.payload", *crypto::RandomBytes(100), 0644));
  ASSERT_TRUE(
      package::Write(manifest, dir_ / "b.payload", std::span(&b_publisher, 1), dir_ / "b.aspkg"));
  const std::string b = "/v1/tenants/" + tenant_b_;
  EXPECT_EQ(Upload(b_admin_, b, *file::Read(dir_ / "b.aspkg")).status, 201)
      << "another tenant's image ID is neither revealed nor blocked";
  EXPECT_EQ(Upload(a_admin_, A(), a_package).status, 409)
      << "within a tenant, images are immutable";
}

TEST_F(Catalog, ProductFieldsOfTheWrongTypeAreABadRequest) {
  for (const char* body : {R"({"name":5})", R"({"name":"x","description":7})"}) {
    EXPECT_EQ(Call(a_admin_, "POST", A() + "/products", body).status, 400) << body;
  }
  ASSERT_EQ(Call(a_admin_, "POST", A() + "/products", R"({"name":"Kiosk"})").status, 201);
  EXPECT_EQ(Call(a_admin_, "PATCH", A() + "/products/Kiosk", R"({"name":[1]})").status, 400);
}

TEST_F(CatalogUploads, AppsAreRefusedOnceTheTenantsPublisherKeySetHasExpired) {
  auto call = [&](const std::string& method, const std::string& target, const std::string& body,
                  std::vector<std::pair<std::string, std::string>> headers = {}) {
    const std::vector<crypto::Certificate> roots{service_->root_ca()};
    wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
    headers.emplace_back("Authorization", "Bearer " + admin_);
    return client.Send(method, target, body, headers).value_or(wire::HttpResponse{});
  };
  const std::string tenant =
      json::Parse(call("POST", "/v1/tenants", R"({"name":"Contoso"})").body)->value("id", "");
  const auto root = *crypto::PrivateKey::GenerateP256();
  const auto publisher = *crypto::PrivateKey::GenerateP256();
  package::PublisherKeySet set;
  set.tenant = tenant;
  set.expires = UnixSeconds(clock_.Now() + std::chrono::hours(24));
  set.root.keys = {root.Public()};
  set.publishers.keys = {publisher.Public()};
  ASSERT_EQ(call("PUT", "/v1/tenants/" + tenant + "/publisher-key-set",
                 crypto::dsse::Serialize(*package::SignKeySet(set, std::span(&root, 1))))
                .status,
            200);
  package::Manifest m;
  m.image_id = *crypto::RandomUuid();
  m.component_id = kComponent;
  m.name = "app";
  m.version = "1";
  m.payload.compression = package::Compression::kNone;
  m.app_manifest = std::string(R"({"ComponentId":")") + kComponent + "\"}";
  ASSERT_TRUE(file::WriteDurably(dir_ / "payload", Bytes(10, 1), 0644));
  ASSERT_TRUE(package::Write(m, dir_ / "payload", std::span(&publisher, 1), dir_ / "p.aspkg"));
  const std::string bytes(AsString(*file::Read(dir_ / "p.aspkg")));
  auto upload = [&] {
    const std::string base =
        "/v1/tenants/" + tenant + "/image-uploads/" +
        json::Parse(call("POST", "/v1/tenants/" + tenant + "/image-uploads", "").body)
            ->value("id", "");
    call("POST", base + "/parts", bytes, {{"Upload-Offset", "0"}});
    return call("POST", base + "/complete", "");
  };
  clock_.Set(clock_.Now() + std::chrono::hours(25));
  auto refused = upload();
  EXPECT_EQ(refused.status, 422);
  EXPECT_NE(refused.body.find("has expired"), std::string::npos) << refused.body;
  clock_.Set(clock_.Now() - std::chrono::hours(2));
  EXPECT_EQ(upload().status, 201);
}

// The CLI's verbs over the same routes: a key set made offline and uploaded, an app packed,
// added in parts and downloaded in ranges.
TEST_F(Catalog, PublisherWorkflowThroughTheCli) {
  ::setenv("ASPIS_CONFIG", (dir_ / "cli.json").c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  auto run = [](std::vector<std::string> args) {
    std::ostringstream out, err;
    const int code = cli::Main(args, out, err);
    EXPECT_EQ(code, 0) << err.str();
    return out.str();
  };
  run({"login", "--url", "https://127.0.0.1:" + std::to_string(service_->port()), "--token",
       a_admin_, "--root-ca", (dir_ / "data/root-ca.pem").string(), "--tenant", tenant_a_});
  const auto path = [&](const char* name) { return (dir_ / name).string(); };
  run({"key", "generate", "--destination", path("root.pem")});
  run({"key", "generate", "--destination", path("publisher.pem")});
  run({"publisher-key-set", "create", "--tenant", tenant_a_, "--root-key", path("root.pem.pub"),
       "--publisher-key", path("publisher.pem.pub"), "--sign-with", path("root.pem"),
       "--set-version", "1", "--destination", path("keys.json")});
  run({"publisher-key-set", "update", "--file", path("keys.json")});
  fs::create_directories(dir_ / "app" / "bin");
  std::ofstream(dir_ / "app" / "app_manifest.json")
      << R"({"Name": "blink", "ComponentId": ")" << kComponent << R"(", "EntryPoint": "/bin/app"})";
  ASSERT_TRUE(
      file::WriteDurably(dir_ / "app" / "bin" / "app", *crypto::RandomBytes(5 << 20), 0755));
  run({"image-package", "pack-application", "--package-directory", path("app"), "--destination",
       path("blink.aspkg"), "--key", path("publisher.pem")});
  const Json added =
      *json::Parse(run({"image", "add", "--image", path("blink.aspkg"), "--output", "json"}));
  const std::string id = added.value("id", "");
  EXPECT_NE(run({"image", "list"}).find(id), std::string::npos);
  run({"image", "download", "--image", id, "--destination", path("copy.aspkg")});
  EXPECT_EQ(*file::Read(dir_ / "copy.aspkg", 16 << 20),
            *file::Read(dir_ / "blink.aspkg", 16 << 20));
}

}  // namespace
}  // namespace aspis::service
