#pragma once

// The image catalog tests' fixture: aspis-service in this process with an OS publisher key, two
// tenants with tokens, and packages made and uploaded in parts as publishers and operators do.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/file.hpp"
#include "core/json.hpp"
#include "crypto/encoding.hpp"
#include "crypto/tls.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"
#include "package/publisher_keys.hpp"
#include "service/service.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"

namespace aspis::service::catalog_test {

namespace fs = std::filesystem;
using json::Json;
using testing::TempDir;

inline constexpr char kComponent[] = "2ab3e8d1-7c1f-4f8e-9d3a-0c5b6e7f8a9b";

// The manifest of a package held in memory.
inline package::Manifest ManifestOf(const Bytes& bytes) {
  package::MemorySource source(bytes);
  return package::Reader::Inspect(source)->manifest();
}

class Catalog : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "os-publishers.pem") << *os_key_.Public().ToPem();
    ServiceConfig config = testing::ServiceConfig(dir_.path());
    config.os_publisher_keys = dir_ / "os-publishers.pem";
    auto service = Service::Start(config, SystemClock::Instance());
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
    admin_ = service_->new_admin_token();
    tenant_a_ = CreateTenant("Contoso");
    tenant_b_ = CreateTenant("Fabrikam");
    a_admin_ = Token(tenant_a_, "Administrator");
    a_reader_ = Token(tenant_a_, "Reader");
    b_admin_ = Token(tenant_b_, "Administrator");
  }

  wire::HttpResponse Call(const std::string& token, const std::string& method,
                          const std::string& target, const std::string& body = {},
                          std::vector<std::pair<std::string, std::string>> headers = {}) const {
    const std::vector<crypto::Certificate> roots{service_->root_ca()};
    wire::HttpsClient client({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
    headers.emplace_back("Authorization", "Bearer " + token);
    auto response = client.Send(method, target, body, headers);
    EXPECT_TRUE(response) << response.error().message();
    return response ? *response : wire::HttpResponse{};
  }

  std::string CreateTenant(const std::string& name) {
    auto response = Call(admin_, "POST", "/v1/tenants", Json{{"name", name}}.dump());
    return json::Parse(response.body).value_or(Json::object()).value("id", "");
  }

  std::string Token(const std::string& tenant, const std::string& role) {
    auto response =
        Call(admin_, "POST", "/v1/tenants/" + tenant + "/tokens", Json{{"role", role}}.dump());
    return json::Parse(response.body).value_or(Json::object()).value("token", "");
  }

  // A key set for `tenant` whose root is `root` and whose one publisher is `publisher`.
  std::string KeySet(const std::string& tenant, std::uint64_t version,
                     const std::vector<const crypto::PrivateKey*>& roots,
                     const crypto::PrivateKey& publisher,
                     const std::vector<const crypto::PrivateKey*>& signers) {
    package::PublisherKeySet set;
    set.tenant = tenant;
    set.version = version;
    set.expires = UnixSeconds(std::chrono::system_clock::now() + std::chrono::hours(24 * 30));
    for (const auto* root : roots) set.root.keys.push_back(root->Public());
    set.publishers.keys = {publisher.Public()};
    std::vector<crypto::PrivateKey> keys;
    for (const auto* signer : signers) keys.push_back(*signer);
    return crypto::dsse::Serialize(*crypto::dsse::Sign(
        package::kPublisherKeysType, AsBytes(package::SerializeKeySet(set)), keys));
  }

  wire::HttpResponse PutKeySet(const std::string& token, const std::string& tenant,
                               const std::string& envelope) {
    return Call(token, "PUT", "/v1/tenants/" + tenant + "/publisher-key-set", envelope);
  }

  // A package of `kind` with `payload_bytes` random bytes, signed by `key`; returns its bytes.
  // `image_id` empty: a new one.
  Bytes Package(package::Kind kind, const crypto::PrivateKey& key, std::size_t payload_bytes = 1000,
                const std::string& image_id = {}) {
    const std::string name = "p" + std::to_string(packages_++);
    EXPECT_TRUE(
        file::WriteDurably(dir_ / (name + ".payload"), *crypto::RandomBytes(payload_bytes), 0644));
    package::Manifest m;
    m.image_id = image_id.empty() ? *crypto::RandomUuid() : image_id;
    m.name = name;
    m.kind = kind;
    m.version = version_;
    m.payload.compression = package::Compression::kNone;
    if (package::IsApp(kind)) {
      m.component_id = kComponent;
      m.app_manifest = std::string(R"({"Name":"app","ComponentId":")") + kComponent + "\"}";
    } else {
      m.component_id = "0f0e0d0c-0b0a-4908-8706-050403020100";
      m.target_boards = boards_;
      if (kind == package::Kind::kOs) {
        for (const char* c : {"os", "aspisd", "trust-bundle"}) m.measurements[c] = {};
      } else {
        m.measurements["board"] = {};
      }
    }
    auto written =
        package::Write(m, dir_ / (name + ".payload"), std::span(&key, 1), dir_ / (name + ".aspkg"));
    EXPECT_TRUE(written) << written.error().message();
    return *file::Read(dir_ / (name + ".aspkg"), std::size_t{64} << 20);
  }

  // Starts an upload under `base` ("/v1" or "/v1/tenants/T") and sends `bytes` in parts of at
  // most 1 MiB; returns the upload's path, for its completion.
  std::string SendParts(const std::string& token, const std::string& base, const Bytes& bytes) {
    auto started = Call(token, "POST", base + "/image-uploads");
    EXPECT_EQ(started.status, 201) << started.body;
    const std::string upload = base + "/image-uploads/" +
                               json::Parse(started.body).value_or(Json::object()).value("id", "");
    for (std::size_t offset = 0; offset < bytes.size(); offset += std::size_t{1} << 20) {
      const std::size_t n = std::min(bytes.size() - offset, std::size_t{1} << 20);
      auto part = Call(token, "POST", upload + "/parts",
                       std::string(AsString(ByteView(bytes).subspan(offset, n))),
                       {{"Upload-Offset", std::to_string(offset)}});
      EXPECT_EQ(part.status, 200) << part.body;
    }
    return upload;
  }

  // SendParts, then the completion's answer.
  wire::HttpResponse Upload(const std::string& token, const std::string& base, const Bytes& bytes) {
    const std::string upload = SendParts(token, base, bytes);
    return Call(token, "POST", upload + "/complete");
  }

  std::string A() const { return "/v1/tenants/" + tenant_a_; }

  TempDir dir_;
  crypto::PrivateKey os_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey root_ = *crypto::PrivateKey::GenerateP256();
  crypto::PrivateKey publisher_ = *crypto::PrivateKey::GenerateP256();
  std::unique_ptr<Service> service_;
  std::string admin_, tenant_a_, tenant_b_, a_admin_, a_reader_, b_admin_;
  int packages_ = 0;
  std::vector<std::string> boards_ = {"mt3620-virtual"};  // of the OS and board packages made
  std::string version_ = "1.0";                           // of the packages made
};

}  // namespace aspis::service::catalog_test
