// What devices are told to fetch and may fetch: targets by device group, OS feed and update policy;
// downloads over mutual TLS limited to a device's own targets; OS releases published from
// packages. Against a running aspis-service, with simulated devices that attest.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "core/file.hpp"
#include "crypto/dsse.hpp"
#include "integration/attestation_fixture.hpp"
#include "integration/catalog_fixture.hpp"
#include "package/archive.hpp"
#include "package/measure.hpp"
#include "service/store/database.hpp"
#include "wire/check_in.hpp"
#include "wire/device_api.hpp"
#include "wire/operator_api.hpp"

namespace aspis::service {
namespace {

using attestation_test::OsReleaseBody;
using attestation_test::SimDevice;
using json::Json;

class DeviceTargets : public catalog_test::Catalog {
 protected:
  void SetUp() override {
    Catalog::SetUp();
    ASSERT_EQ(Call(admin_, "POST", "/v1/os-releases", OsReleaseBody("24.10")).status, 201);
    for (const auto& tenant : {tenant_a_, tenant_b_}) {
      ASSERT_EQ(Call(admin_, "POST", "/v1/tenants/" + tenant + "/attestation-policy",
                     R"({"allow_software_root_of_trust": true})")
                    .status,
                200);
    }
    ASSERT_EQ(
        PutKeySet(a_admin_, tenant_a_, KeySet(tenant_a_, 1, {&root_}, publisher_, {&root_})).status,
        200);
    auto product = Call(a_admin_, "POST", A() + "/products", R"({"name": "Coffee"})");
    ASSERT_EQ(product.status, 201) << product.body;
    const Json groups = *json::Parse(Call(a_admin_, "GET", A() + "/device-groups").body);
    for (const auto& g : groups) {
      groups_[g.value("name", "")] = g.value("id", "");
    }
    ASSERT_EQ(groups_.size(), 5u);
  }

  // Claims `device` for `tenant`, attests it, and returns a client presenting its runtime
  // certificate (or its app certificate).
  wire::HttpsClient Attested(SimDevice& device, const std::string& tenant, bool app = false) {
    EXPECT_EQ(Call(admin_, "POST", "/v1/tenants/" + tenant + "/devices",
                   Json{{"device_id", device.Id()}}.dump())
                  .status,
              201);
    auto challenge = wire::ParseChallenge(Call("", "POST", wire::kChallengePath).body);
    auto answer = Call("", "POST", wire::kAttestationPath,
                       wire::Serialize(device.Evidence(challenge->nonce)));
    EXPECT_EQ(answer.status, 200) << answer.body;
    auto result = wire::ParseAttestationResult(answer.body);
    auto chain = *crypto::Certificate::ChainFromPem(
        (app ? result->app_certificate_pem : result->runtime_certificate_pem) +
        result->ca_chain_pem);
    const std::vector<crypto::Certificate> roots{service_->root_ca()};
    return {{"127.0.0.1", service_->port()},
            *crypto::tls::ClientContext(roots, chain, app ? &device.app_key : &device.runtime_key)};
  }

  // A check-in's update manifest (its signature is the device's to check, elsewhere).
  static wire::UpdateManifest CheckIn(const wire::HttpsClient& client, const SimDevice& device,
                                      const std::string& board = "mt3620-virtual") {
    const wire::CheckIn report{.device_id = device.Id(),
                               .os_version = "24.10",
                               .runtime_version = "0.1.0",
                               .board = board};
    auto response = client.Send("POST", wire::kCheckInPath, wire::Serialize(report));
    EXPECT_TRUE(response && response->status == 200) << (response ? response->body : "");
    auto parsed = wire::ParseCheckInResponse(response->body);
    auto envelope = crypto::dsse::Parse(parsed->manifest_envelope);
    return *wire::ParseUpdateManifest(AsString(envelope->payload));
  }

  static std::vector<std::string> Ids(const wire::UpdateManifest& manifest) {
    std::vector<std::string> ids;
    for (const auto& t : manifest.targets) ids.push_back(t.image_id);
    return ids;
  }

  std::string AddImage(const std::string& token, const std::string& base, const Bytes& package) {
    auto added = Upload(token, base, package);
    EXPECT_EQ(added.status, 201) << added.body;
    return json::Parse(added.body).value_or(Json::object()).value("id", "");
  }

  void Move(const SimDevice& device, const std::string& group) {
    ASSERT_EQ(Call(a_admin_, "POST", A() + "/devices/" + device.Id() + "/device-group",
                   Json{{"device_group_id", groups_.at(group)}}.dump())
                  .status,
              200);
  }

  void Deploy(const std::string& group, const std::vector<std::string>& images) {
    ASSERT_EQ(Call(a_admin_, "POST", A() + "/device-groups/" + groups_.at(group) + "/deployments",
                   Json{{"images", images}}.dump())
                  .status,
              201);
  }

  void SetGroup(const std::string& group, const Json& fields) {
    ASSERT_EQ(
        Call(a_admin_, "PATCH", A() + "/device-groups/" + groups_.at(group), fields.dump()).status,
        200);
  }

  // An OS and a board image for boards_, published on `feed`.
  std::pair<std::string, std::string> PublishRelease(const std::string& feed) {
    const std::string os = AddImage(admin_, "/v1", Package(package::Kind::kOs, os_key_));
    const std::string board = AddImage(admin_, "/v1", Package(package::Kind::kBoard, os_key_));
    auto published = Call(admin_, "POST", "/v1/os-releases/publish",
                          Json{{"image_id", os}, {"board_image_id", board}, {"feed", feed}}.dump());
    EXPECT_EQ(published.status, 201) << published.body;
    return {os, board};
  }

  std::map<std::string, std::string> groups_;
};

TEST_F(DeviceTargets, GroupsFeedAndUpdatePolicyDecideTheTargets) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  const std::string app = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  Deploy("Field Test", {app});
  Deploy("Development", {app});
  EXPECT_TRUE(CheckIn(client, device).targets.empty()) << "a device in no group gets no app";
  EXPECT_FALSE(CheckIn(client, device).apps_complete) << "nor is it told to remove any";

  Move(device, "Field Test");
  auto manifest = CheckIn(client, device);
  ASSERT_EQ(Ids(manifest), std::vector<std::string>{app});
  EXPECT_TRUE(manifest.apps_complete) << "the deployment's apps are all the device should run";
  EXPECT_EQ(manifest.targets[0].url, wire::DeviceImagePath(app));
  EXPECT_EQ(manifest.targets[0].kind, "app");
  EXPECT_EQ(manifest.os_feed, "retail");
  const Json listed = *json::Parse(
      Call(a_reader_, "GET", A() + "/devices/" + device.Id() + "/targeted-images").body);
  ASSERT_EQ(listed.size(), 1u) << "what the operator sees is what the device is told";
  EXPECT_EQ(listed[0].value("id", ""), app);
  EXPECT_EQ(Call(b_admin_, "GET",
                 "/v1/tenants/" + tenant_b_ + "/devices/" + device.Id() + "/targeted-images")
                .status,
            404);

  // An OS release in Retail Evaluation reaches the evaluation groups first, Retail on promotion.
  const auto [os, board] = PublishRelease("retail-eval");
  EXPECT_EQ(Ids(CheckIn(client, device)), std::vector<std::string>{app});
  Move(device, "Field Test OS Evaluation");
  EXPECT_EQ(Ids(CheckIn(client, device)), (std::vector<std::string>{os, board}));
  ASSERT_EQ(Call(admin_, "POST", "/v1/os-releases/1.0/promote").status, 200);
  Move(device, "Field Test");
  EXPECT_EQ(Ids(CheckIn(client, device)), (std::vector<std::string>{os, board, app}));

  SetGroup("Field Test", {{"update_policy", "No3rdPartyAppUpdates"}});
  manifest = CheckIn(client, device);
  EXPECT_EQ(Ids(manifest), (std::vector<std::string>{os, board}));
  EXPECT_FALSE(manifest.apps_complete) << "a group that takes no app updates keeps its apps";
  SetGroup("Field Test", {{"update_policy", "NoUpdates"}});
  EXPECT_TRUE(CheckIn(client, device).targets.empty());
  Move(device, "Development");
  EXPECT_EQ(Ids(CheckIn(client, device)), (std::vector<std::string>{os, board}))
      << "Development takes the OS but no cloud app updates";
  ASSERT_EQ(Call(admin_, "POST", "/v1/os-releases/1.0/retire", R"({"reason": "CVE-1"})").status,
            200);
  EXPECT_TRUE(CheckIn(client, device).targets.empty()) << "a retired release is offered no more";
}

TEST_F(DeviceTargets, DatabaseOutageIsAFailureToRetryNotARefusal) {
  // A refusal (403) makes a device drop its certificates and attest again; a fleet would do so
  // together while the database is down. The devices table vanishes under the service, then
  // comes back.
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  auto db = store::OpenDatabase("sqlite:" + (dir_ / "data" / "aspis.db").string());
  ASSERT_TRUE(db) << db.error().message();
  const auto check_in = [&] {
    const wire::CheckIn report{
        .device_id = device.Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
    return client.Send("POST", wire::kCheckInPath, wire::Serialize(report))->status;
  };
  ASSERT_TRUE((*db)->Query("ALTER TABLE devices RENAME TO devices_away", {}));
  EXPECT_EQ(check_in(), 500);
  ASSERT_TRUE((*db)->Query("ALTER TABLE devices_away RENAME TO devices", {}));
  EXPECT_EQ(check_in(), 200);
}

TEST_F(DeviceTargets, OsReleasesAreOfferedForTheBoardTheDeviceReports) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  Move(device, "Field Test");
  const auto [os, board] = PublishRelease("retail");
  boards_ = {"rpi4"};
  version_ = "2.0";
  const auto [other_os, other_board] = PublishRelease("retail");
  EXPECT_EQ(Ids(CheckIn(client, device)), (std::vector<std::string>{os, board}))
      << "a newer release for another board does not displace this board's";
  EXPECT_EQ(Ids(CheckIn(client, device, "rpi4")),
            (std::vector<std::string>{other_os, other_board}));
  const Json shown = *json::Parse(Call(a_reader_, "GET", A() + "/devices/" + device.Id()).body);
  EXPECT_EQ(shown.value("board", ""), "rpi4");
}

TEST_F(DeviceTargets, DeviceFetchesOnlyItsOwnTargetsAndAnyOtherImageIsTheSame404) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  Move(device, "Field Test");
  const Bytes deployed_package = Package(package::Kind::kApp, publisher_, 3 << 20);
  const std::string deployed = AddImage(a_admin_, A(), deployed_package);
  const std::string undeployed = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  const auto b_publisher = *crypto::PrivateKey::GenerateP256();
  ASSERT_EQ(
      PutKeySet(b_admin_, tenant_b_, KeySet(tenant_b_, 1, {&root_}, b_publisher, {&root_})).status,
      200);
  const std::string foreign =
      AddImage(b_admin_, "/v1/tenants/" + tenant_b_, Package(package::Kind::kApp, b_publisher));
  Deploy("Field Test", {deployed});
  Deploy("Production", {undeployed});

  auto range = client.Send("GET", wire::DeviceImagePath(deployed), {}, {{"Range", "bytes=5-9"}});
  ASSERT_TRUE(range);
  EXPECT_EQ(range->status, 206);
  EXPECT_EQ(range->body, std::string(AsString(ByteView(deployed_package).subspan(5, 5))));

  std::vector<std::string> refusals;
  for (const auto& other : {undeployed, foreign, std::string("no-such-image")}) {
    auto refused = client.Send("GET", wire::DeviceImagePath(other), {}, {{"Range", "bytes=0-9"}});
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 404) << other;
    refusals.push_back(refused->body);
  }
  EXPECT_EQ(refusals[0], refusals[2]) << "another group's image looks like no image at all";
  EXPECT_EQ(refusals[1], refusals[2]) << "another tenant's image looks like no image at all";

  // The same routes with the app certificate, or without a certificate, are refused.
  SimDevice other;
  const auto app_client = Attested(other, tenant_a_, /*app=*/true);
  Move(other, "Field Test");
  auto by_app =
      app_client.Send("GET", wire::DeviceImagePath(deployed), {}, {{"Range", "bytes=0-9"}});
  EXPECT_EQ(by_app->status, 403);
  EXPECT_EQ(Call("", "GET", wire::DeviceImagePath(deployed)).status, 403);
}

TEST_F(DeviceTargets, ImageIdCollisionAttackTenantImageTakingAPlatformImagesIdIsRefused) {
  // Every device sees the platform's image IDs in its manifest; a tenant reusing one would put
  // two images under one ID in its devices' targets.
  const std::string os = AddImage(admin_, "/v1", Package(package::Kind::kOs, os_key_));
  auto taken = Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_, 1000, os));
  EXPECT_EQ(taken.status, 409) << taken.body;
  EXPECT_EQ(Upload(a_admin_, A(), Package(package::Kind::kApp, publisher_)).status, 201);
  // Nor may the platform take an ID a tenant holds.
  const std::string app = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  EXPECT_EQ(Upload(admin_, "/v1", Package(package::Kind::kOs, os_key_, 1000, app)).status, 409);
}

TEST_F(DeviceTargets, OsReleasesArePublishedOnlyFromPlatformOsAndBoardImages) {
  const std::string os = AddImage(admin_, "/v1", Package(package::Kind::kOs, os_key_));
  const std::string board = AddImage(admin_, "/v1", Package(package::Kind::kBoard, os_key_));
  const std::string app = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  auto publish = [&](const std::string& token, const std::string& os_id,
                     const std::string& board_id) {
    return Call(token, "POST", "/v1/os-releases/publish",
                Json{{"image_id", os_id}, {"board_image_id", board_id}, {"feed", "retail"}}.dump());
  };
  EXPECT_EQ(publish(a_admin_, os, board).status, 403) << "a tenant publishes no OS";
  auto swapped = publish(admin_, board, os);
  EXPECT_EQ(swapped.status, 400);
  EXPECT_NE(swapped.body.find("is board, not os"), std::string::npos) << swapped.body;
  boards_ = {"rpi4"};
  const std::string other_board = AddImage(admin_, "/v1", Package(package::Kind::kBoard, os_key_));
  auto mismatched = publish(admin_, os, other_board);
  EXPECT_EQ(mismatched.status, 400);
  EXPECT_NE(mismatched.body.find("for none of the OS image's boards"), std::string::npos)
      << mismatched.body;
  auto tenant_app = publish(admin_, app, board);
  EXPECT_EQ(tenant_app.status, 400) << "a tenant's app is not a platform image";
  auto published = publish(admin_, os, board);
  ASSERT_EQ(published.status, 201) << published.body;
  const Json release = *json::Parse(published.body);
  EXPECT_EQ(release.value("image_id", ""), os);
  EXPECT_EQ(release["components"].size(), 4u) << "os, aspisd and trust-bundle, and the board";
  EXPECT_EQ(Call(a_admin_, "POST", "/v1/os-releases/1.0/promote").status, 403);
  EXPECT_EQ(Call(admin_, "POST", "/v1/os-releases/1.0/promote").status, 404)
      << "published to Retail, there is nothing to promote";
}

TEST_F(DeviceTargets, TenantIsolationDeviceStatusAndDeploymentsAreTheTenantsOwn) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  Move(device, "Field Test");
  const std::string app = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
  Deploy("Field Test", {app});
  wire::CheckIn report{.device_id = device.Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
  report.targets = {{app, std::string(wire::kFailed), "refused: the test says so"}};
  ASSERT_EQ(client.Send("POST", wire::kCheckInPath, wire::Serialize(report))->status, 200);
  const Json deployments = *json::Parse(
      Call(a_admin_, "GET", A() + "/device-groups/" + groups_["Field Test"] + "/deployments").body);
  const std::string deployment = deployments[0].value("id", "");
  const auto progress = [&] {
    return *wire::api::DeploymentFrom(
        *json::Parse(Call(a_reader_, "GET", A() + "/deployments/" + deployment).body));
  };
  const wire::api::Deployment shown = progress();
  ASSERT_EQ(shown.progress.size(), 1u);
  EXPECT_EQ(shown.progress[0].failed, 1);
  ASSERT_EQ(shown.progress[0].failures.size(), 1u);
  EXPECT_EQ(shown.progress[0].failures[0].second, "refused: the test says so");
  const Json device_view =
      *json::Parse(Call(a_reader_, "GET", A() + "/devices/" + device.Id()).body);
  EXPECT_EQ(device_view["images"][0].value("state", ""), "failed");
  EXPECT_EQ(device_view["publisher_root"].value("status", ""), "none pinned yet");
  // A device reports on its own targets only, once each: one in another group cannot write into
  // this deployment's progress.
  SimDevice elsewhere;
  const auto other_client = Attested(elsewhere, tenant_a_);
  Move(elsewhere, "Production");
  wire::CheckIn forged{
      .device_id = elsewhere.Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
  forged.targets = {{app, std::string(wire::kDownloaded), ""}};
  ASSERT_EQ(other_client.Send("POST", wire::kCheckInPath, wire::Serialize(forged))->status, 200);
  report.targets.push_back(report.targets.front());
  ASSERT_EQ(client.Send("POST", wire::kCheckInPath, wire::Serialize(report))->status, 200)
      << "a status sent twice is kept once";
  const wire::api::Deployment after = progress();
  EXPECT_EQ(after.progress[0].downloaded, 0);
  EXPECT_EQ(after.progress[0].failed, 1);
  EXPECT_TRUE(json::Parse(Call(a_reader_, "GET", A() + "/devices/" + elsewhere.Id()).body)
                  ->at("images")
                  .empty());
  // Tenant B reaches neither, through its own path or A's.
  const std::string b = "/v1/tenants/" + tenant_b_;
  EXPECT_EQ(Call(b_admin_, "GET", b + "/deployments/" + deployment).status, 404);
  EXPECT_EQ(Call(b_admin_, "GET", A() + "/deployments/" + deployment).status, 403);
  EXPECT_EQ(Call(b_admin_, "GET", b + "/devices/" + device.Id()).status, 404);
}

// Two versions of one app as real tar payloads, one byte of their data apart; their image IDs.
class DeviceDeltas : public DeviceTargets {
 protected:
  // Checks in with `report` (pacing itself as a device must) until the first target, among
  // `targets`, is offered with a delta; the offer, or nullopt after 30 s.
  std::optional<wire::DeltaOffer> WaitForDelta(const wire::HttpsClient& client,
                                               const wire::CheckIn& report,
                                               const std::vector<std::string>& targets) {
    for (int i = 0; i < 300; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto answer = client.Send("POST", wire::kCheckInPath, wire::Serialize(report));
      if (!answer || answer->status == 429) continue;  // checking in faster than a device may
      EXPECT_EQ(answer->status, 200) << answer->body;
      auto envelope =
          crypto::dsse::Parse(wire::ParseCheckInResponse(answer->body)->manifest_envelope);
      auto manifest = wire::ParseUpdateManifest(AsString(envelope->payload));
      EXPECT_EQ(Ids(*manifest), targets);
      if (manifest->targets.empty()) return std::nullopt;
      if (manifest->targets[0].delta) return manifest->targets[0].delta;
    }
    return std::nullopt;
  }

  std::pair<std::string, std::string> AddTwoVersions() {
    return AddTwoVersionsOf(a_admin_, A(), dir_.path(), publisher_);
  }
  std::pair<std::string, std::string> AddTwoVersionsOf(const std::string& token,
                                                       const std::string& base,
                                                       const std::filesystem::path& dir,
                                                       const crypto::PrivateKey& publisher) {
    namespace fs = std::filesystem;
    std::vector<std::string> ids;
    Bytes data = *crypto::RandomBytes(std::size_t{512} << 10);
    for (const std::string version : {"1.0", "1.1"}) {
      const fs::path tree = dir / ("tree-" + version);
      fs::create_directories(tree);
      data[7] = static_cast<std::uint8_t>(version.back());
      EXPECT_TRUE(file::WriteDurably(tree / "data.bin", data, 0644));
      auto packed = package::PackDirectory(tree, dir / "payload");
      package::Manifest m;
      m.image_id = *crypto::RandomUuid();
      m.component_id = catalog_test::kComponent;
      m.name = "blink";
      m.kind = package::Kind::kApp;
      m.version = version;
      m.payload.compression = package::Compression::kZstd;
      m.payload.unpacked_size = packed->unpacked_size;
      m.app_manifest =
          std::string(R"({"Name":"app","ComponentId":")") + catalog_test::kComponent + "\"}";
      EXPECT_TRUE(
          package::Write(m, dir / "payload", std::span(&publisher, 1), dir / (version + ".aspkg")));
      ids.push_back(
          AddImage(token, base, *file::Read(dir / (version + ".aspkg"), std::size_t{64} << 20)));
    }
    return {ids[0], ids[1]};
  }
};

TEST_F(DeviceDeltas, ADeltaIsOfferedFromTheVersionTheDeviceRunsAndServedForItsOwnTargetsOnly) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  Move(device, "Field Test");
  const auto [v1, v2] = AddTwoVersions();
  Deploy("Field Test", {v1});
  Deploy("Field Test", {v2});  // the service starts making the delta from v1 now
  wire::CheckIn report{.device_id = device.Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
  report.images = {{v1, catalog_test::kComponent, "1.0"}};
  const auto offer = WaitForDelta(client, report, {v2});
  ASSERT_TRUE(offer) << "the delta was never offered";
  EXPECT_EQ(offer->base_image_id, v1);
  auto delta = client.Send("GET", offer->url, "");
  ASSERT_TRUE(delta && delta->status == 200) << (delta ? delta->body : "");
  EXPECT_EQ(delta->body.size(), offer->size);
  EXPECT_EQ(crypto::ToHex(*crypto::Sha256Of(AsBytes(delta->body))), offer->sha256);

  // Nothing else is served: a delta to an image that is not the device's target, from an image
  // the tenant does not hold, or to another tenant's device.
  EXPECT_EQ(client.Send("GET", wire::DeviceDeltaPath(v1, v2), "")->status, 404);
  EXPECT_EQ(client.Send("GET", wire::DeviceDeltaPath(v2, *crypto::RandomUuid()), "")->status, 404);
  SimDevice other;
  const auto other_client = Attested(other, tenant_b_);
  EXPECT_EQ(other_client.Send("GET", offer->url, "")->status, 404);
  // A device reporting a base it does not run gets nothing it could misuse: the offer names the
  // base, and the result is checked against the target's signed digest.
  report.images = {{v2, catalog_test::kComponent, "1.1"}};
  auto answer = client.Send("POST", wire::kCheckInPath, wire::Serialize(report));
  auto envelope = crypto::dsse::Parse(wire::ParseCheckInResponse(answer->body)->manifest_envelope);
  EXPECT_FALSE(wire::ParseUpdateManifest(AsString(envelope->payload))->targets[0].delta)
      << "no delta from the target to itself";
}

TEST_F(DeviceDeltas, AnOsReleaseTravelsAsADeltaFromTheReleaseTheDeviceRuns) {
  namespace fs = std::filesystem;
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  const std::string board = AddImage(admin_, "/v1", Package(package::Kind::kBoard, os_key_));
  std::vector<std::string> os;
  Bytes library = *crypto::RandomBytes(std::size_t{256} << 10);  // does not compress
  for (const std::string version : {"25.01", "25.02"}) {
    const fs::path tree = dir_ / ("os-" + version);
    fs::create_directories(tree / "usr/sbin");
    fs::create_directories(tree / "etc/aspis");
    std::ofstream(tree / "usr/sbin/aspisd") << "aspisd " << version;
    std::ofstream(tree / "etc/aspis/trust-bundle.pem") << "roots";
    library[9] = static_cast<std::uint8_t>(version.back());
    ASSERT_TRUE(file::WriteDurably(tree / "usr/lib.so", library, 0644));
    auto packed = package::PackDirectory(tree, dir_ / "os-payload", {.symlinks = true});
    ASSERT_TRUE(packed);
    package::Manifest m;
    m.image_id = *crypto::RandomUuid();
    m.component_id = "0f0e0d0c-0b0a-4908-8706-050403020100";
    m.name = "Aspis OS";
    m.kind = package::Kind::kOs;
    m.version = version;
    m.security_version = 1;
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = packed->unpacked_size;
    m.target_boards = boards_;
    m.measurements = *package::MeasureOsTree(tree);
    ASSERT_TRUE(package::Write(m, dir_ / "os-payload", std::span(&os_key_, 1),
                               dir_ / (version + ".aspkg")));
    os.push_back(AddImage(admin_, "/v1", *file::Read(dir_ / (version + ".aspkg"), 64 << 20)));
    ASSERT_EQ(
        Call(admin_, "POST", "/v1/os-releases/publish",
             Json{{"image_id", os.back()}, {"board_image_id", board}, {"feed", "retail"}}.dump())
            .status,
        201);
  }
  // The device runs 25.01 (its component named wrongly: the catalog's is what counts).
  wire::CheckIn report{.device_id = device.Id(),
                       .os_version = "25.01",
                       .runtime_version = "0.1.0",
                       .board = "mt3620-virtual"};
  report.images = {{os[0], "", "25.01"}};
  const auto offer = WaitForDelta(client, report, {os[1], board});
  ASSERT_TRUE(offer) << "the OS delta was never offered";
  EXPECT_EQ(offer->base_image_id, os[0]);
  auto delta = client.Send("GET", offer->url, "");
  ASSERT_TRUE(delta && delta->status == 200);
  EXPECT_EQ(crypto::ToHex(*crypto::Sha256Of(AsBytes(delta->body))), offer->sha256);
}

TEST_F(DeviceDeltas, ADeviceCannotHaveADeltaMadeFromAVersionItNeverRan) {
  SimDevice device;
  const auto client = Attested(device, tenant_a_);
  Move(device, "Field Test");
  const auto [v1, v2] = AddTwoVersions();
  Deploy("Field Test", {v2});  // v1 was never deployed to the device's group
  wire::CheckIn report{.device_id = device.Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
  report.images = {{v1, catalog_test::kComponent, "1.0"}};
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto answer = client.Send("POST", wire::kCheckInPath, wire::Serialize(report));
    ASSERT_TRUE(answer);
    if (answer->status == 429) continue;  // checking in faster than a device may
    auto envelope =
        crypto::dsse::Parse(wire::ParseCheckInResponse(answer->body)->manifest_envelope);
    EXPECT_FALSE(wire::ParseUpdateManifest(AsString(envelope->payload))->targets[0].delta);
  }
  int status = 429;
  for (int i = 0; i < 50 && status == 429; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    status = client.Send("GET", wire::DeviceDeltaPath(v2, v1), "")->status;
  }
  EXPECT_EQ(status, 404);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data/deltas") &&
               !std::filesystem::is_empty(dir_ / "data/deltas"))
      << "no delta was made from it";
}

// --- Staged rollouts ---

class StagedRollout : public DeviceTargets {
 protected:
  void SetUp() override {
    DeviceTargets::SetUp();
    old_app_ = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
    Deploy("Field Test", {old_app_});
    // The new version: another image of the same component.
    new_app_ = AddImage(a_admin_, A(), Package(package::Kind::kApp, publisher_));
    for (int i = 0; i < 4; ++i) {
      devices_.push_back(std::make_unique<SimDevice>());
      clients_.push_back(
          std::make_unique<wire::HttpsClient>(Attested(*devices_.back(), tenant_a_)));
      Move(*devices_.back(), "Field Test");
    }
  }

  // Deploys new_app_ to Field Test with `rollout`; returns the deployment's ID.
  std::string Roll(const Json& rollout) {
    auto made =
        Call(a_admin_, "POST", A() + "/device-groups/" + groups_.at("Field Test") + "/deployments",
             Json{{"images", {new_app_}}, {"rollout", rollout}}.dump());
    EXPECT_EQ(made.status, 201) << made.body;
    return json::Parse(made.body).value_or(Json::object()).value("id", "");
  }

  // Device `i` checks in reporting `state` for new_app_ (nothing when empty); its new targets.
  std::vector<std::string> Report(std::size_t i, std::string_view state,
                                  const std::string& reason = "") {
    wire::CheckIn report{
        .device_id = devices_[i]->Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
    if (!state.empty()) report.targets.push_back({new_app_, std::string(state), reason});
    auto response = clients_[i]->Send("POST", wire::kCheckInPath, wire::Serialize(report));
    EXPECT_TRUE(response && response->status == 200);
    auto envelope =
        crypto::dsse::Parse(wire::ParseCheckInResponse(response->body)->manifest_envelope);
    return Ids(*wire::ParseUpdateManifest(AsString(envelope->payload)));
  }

  // The devices whose targets hold new_app_ now.
  std::vector<std::size_t> Taking() {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      if (Report(i, "") == std::vector<std::string>{new_app_}) out.push_back(i);
    }
    return out;
  }

  wire::api::Deployment Show(const std::string& id) {
    return wire::api::DeploymentFrom(
               *json::Parse(Call(a_reader_, "GET", A() + "/deployments/" + id).body))
        .value_or(wire::api::Deployment{});
  }

  std::string old_app_, new_app_;
  std::vector<std::unique_ptr<SimDevice>> devices_;
  std::vector<std::unique_ptr<wire::HttpsClient>> clients_;
};

TEST_F(StagedRollout, EachStageOpensOnceEveryDeviceOfTheOneBeforeInstalled) {
  const std::string id = Roll({{"stages", {25, 100}}, {"failure_threshold", 0}});
  const auto first = Taking();
  ASSERT_EQ(first.size(), 1u) << "25 % of 4 devices";
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (i != first[0]) {
      EXPECT_EQ(Report(i, ""), std::vector<std::string>{old_app_});
    }
  }
  EXPECT_EQ(Show(id).state, "rolling");
  Report(first[0], wire::kDownloaded);
  EXPECT_EQ(Taking().size(), 1u) << "the stage waits for its device's install";
  Report(first[0], wire::kInstalled);
  EXPECT_EQ(Taking().size(), 4u) << "the last stage takes the rest";
  for (std::size_t i = 0; i < devices_.size(); ++i) Report(i, wire::kInstalled);
  const auto shown = Show(id);
  EXPECT_EQ(shown.state, "complete");
  ASSERT_EQ(shown.stages.size(), 2u);
  EXPECT_EQ(shown.stages[0].devices, 1);
  EXPECT_EQ(shown.stages[1].devices, 3);
  EXPECT_EQ(shown.stages[1].succeeded, 3);
}

TEST_F(StagedRollout, FailuresPastTheThresholdPauseTheRolloutSayingWhyAndResumeAcceptsTheStage) {
  const std::string id = Roll({{"stages", {50, 100}}, {"failure_threshold", 0}});
  const auto first = Taking();
  ASSERT_EQ(first.size(), 2u);
  Report(first[0], wire::kReverted, "the app is built for ELF machine 183");
  auto shown = Show(id);
  EXPECT_EQ(shown.state, "paused");
  EXPECT_NE(shown.reason.find("1 of 2 devices failed"), std::string::npos) << shown.reason;
  EXPECT_NE(shown.reason.find("ELF machine 183"), std::string::npos) << shown.reason;
  Report(first[1], wire::kInstalled);
  EXPECT_EQ(Taking().size(), 2u) << "a paused rollout opens no stage";
  EXPECT_EQ(Call(a_reader_, "POST", A() + "/deployments/" + id + "/resume", "").status, 403);
  ASSERT_EQ(Call(a_admin_, "POST", A() + "/deployments/" + id + "/resume", "").status, 200);
  EXPECT_EQ(Taking().size(), 4u) << "resuming accepts the failed stage";
  EXPECT_EQ(Show(id).state, "rolling");
}

TEST_F(StagedRollout, FailuresWithinTheThresholdDoNotPause) {
  const std::string id = Roll({{"stages", {50, 100}}, {"failure_threshold", 50}});
  const auto first = Taking();
  ASSERT_EQ(first.size(), 2u);
  Report(first[0], wire::kFailed, "download refused");
  Report(first[1], wire::kInstalled);
  EXPECT_EQ(Show(id).state, "rolling");
  EXPECT_EQ(Taking().size(), 4u);
}

TEST_F(StagedRollout, RolloutPoisoningAttackADeviceOutsideTheStageCannotPauseIt) {
  const std::string id = Roll({{"stages", {25, 100}}, {"failure_threshold", 0}});
  const auto first = Taking();
  ASSERT_EQ(first.size(), 1u);
  const std::size_t outsider = first[0] == 0 ? 1 : 0;
  wire::CheckIn forged{
      .device_id = devices_[outsider]->Id(), .os_version = "24.10", .runtime_version = "0.1.0"};
  forged.targets = {{new_app_, std::string(wire::kReverted), "forged"}};
  ASSERT_EQ(clients_[outsider]->Send("POST", wire::kCheckInPath, wire::Serialize(forged))->status,
            200);
  EXPECT_EQ(Show(id).state, "rolling") << "only the stage's own devices' reports count";
  forged.device_id = devices_[first[0]]->Id();
  ASSERT_EQ(clients_[first[0]]->Send("POST", wire::kCheckInPath, wire::Serialize(forged))->status,
            200);
  EXPECT_EQ(Show(id).state, "paused");
}

TEST_F(StagedRollout, StoppingSendsItsDevicesBackToTheDeploymentBefore) {
  const std::string id = Roll({{"batch_size", 1}});
  const auto first = Taking();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(Call(a_admin_, "POST", A() + "/deployments/" + id + "/pause", "").status, 200);
  EXPECT_EQ(Call(a_admin_, "POST", A() + "/deployments/" + id + "/pause", "").status, 409)
      << "only a rolling deployment pauses";
  Report(first[0], wire::kInstalled);
  EXPECT_EQ(Taking().size(), 1u);
  ASSERT_EQ(Call(a_admin_, "POST", A() + "/deployments/" + id + "/stop", "").status, 200);
  EXPECT_TRUE(Taking().empty());
  EXPECT_EQ(Report(first[0], ""), std::vector<std::string>{old_app_});
  const auto shown = Show(id);
  EXPECT_EQ(shown.state, "stopped");
  EXPECT_EQ(Call(a_admin_, "POST", A() + "/deployments/" + id + "/resume", "").status, 409);
}

TEST_F(StagedRollout, BatchesAdmitSoManyDevicesAtATimeUntilNoneIsLeft) {
  const std::string id = Roll({{"batch_size", 3}});
  auto taking = Taking();
  ASSERT_EQ(taking.size(), 3u);
  for (const auto i : taking) Report(i, wire::kInstalled);
  taking = Taking();
  ASSERT_EQ(taking.size(), 4u);
  for (const auto i : taking) Report(i, wire::kInstalled);
  EXPECT_EQ(Show(id).state, "complete");
  EXPECT_EQ(Show(id).stages.size(), 2u);
}

TEST_F(StagedRollout, ANewDeploymentSupersedesAnUnfinishedRollout) {
  const std::string id = Roll({{"stages", {25, 100}}});
  Deploy("Field Test", {old_app_});
  const auto shown = Show(id);
  EXPECT_EQ(shown.state, "stopped");
  EXPECT_NE(shown.reason.find("superseded"), std::string::npos);
  EXPECT_TRUE(Taking().empty());
}

TEST_F(StagedRollout, RolloutsThatMakeNoSenseAreABadRequest) {
  const std::string path = A() + "/device-groups/" + groups_.at("Field Test") + "/deployments";
  for (const Json& rollout :
       {Json{{"stages", {50, 40, 100}}}, Json{{"stages", {50}}}, Json{{"stages", {0, 100}}},
        Json{{"batch_size", 0}}, Json{{"stages", {100}}, {"batch_size", 2}},
        Json{{"stages", {100}}, {"failure_threshold", 101}}, Json{{"stages", {100}}, {"wait", 1}},
        Json::array()}) {
    EXPECT_EQ(
        Call(a_admin_, "POST", path, Json{{"images", {new_app_}}, {"rollout", rollout}}.dump())
            .status,
        400)
        << rollout.dump();
  }
}

}  // namespace
}  // namespace aspis::service
