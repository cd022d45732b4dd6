// The service's own secrets: the master key lives outside the data directory, and the platform
// administrator token is never kept in plaintext there; it can be rotated or revoked beside a
// running service. The attacker here holds a copy of the data directory (a backup, a snapshot).
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <regex>

#include "core/file.hpp"
#include "crypto/tls.hpp"
#include "service/api/api.hpp"
#include "service/service.hpp"
#include "service/store/store.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace aspis::service {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr auto kOwnerOnly = fs::perms::owner_read | fs::perms::owner_write;

std::string ReadText(const fs::path& path) {
  auto bytes = file::Read(path);
  return bytes ? std::string(AsString(*bytes)) : std::string();
}

// Every platform administrator token (as api::CreateToken makes them) in `text`, in order.
std::vector<std::string> TokensIn(const std::string& text) {
  static const std::regex kToken("aspis_[0-9a-f]{64}");
  std::vector<std::string> tokens;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kToken);
       it != std::sregex_iterator(); ++it) {
    tokens.push_back(it->str());
  }
  return tokens;
}

Expected<std::unique_ptr<Service>> StartWith(const fs::path& data, const fs::path& master_key,
                                             const fs::path& admin_token_file = {}) {
  return Service::Start({.data_dir = data,
                         .listen = "127.0.0.1:0",
                         .master_key_file = master_key,
                         .threads = 1,
                         .admin_token_file = admin_token_file},
                        SystemClock::Instance());
}

// --- The master key ---

// Ways to name a master key file that is really inside the data directory.
class MasterKeyInsideTheDataDirectory : public ::testing::TestWithParam<std::string> {};

TEST_P(MasterKeyInsideTheDataDirectory, IsRefusedAndNothingIsCreated) {
  TempDir dir;
  const fs::path data = dir / "data";
  fs::create_directories(data / "keys");
  fs::path key;
  if (GetParam() == "Direct") {
    key = data / "keys/master.key";
  } else if (GetParam() == "DotDot") {
    key = data / "../data/keys/master.key";
  } else if (GetParam() == "DirectorySymlink") {
    fs::create_directory_symlink(data / "keys", dir / "keys");
    key = dir / "keys/master.key";
  } else {  // a symlink outside to a key file inside
    ASSERT_TRUE(file::WriteDurably(data / "keys/master.key", Bytes(32, 7), 0600));
    fs::create_symlink(data / "keys/master.key", dir / "master.key");
    key = dir / "master.key";
  }
  const bool key_existed = fs::exists(key);

  auto started = StartWith(data, key);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error(), CoreErrc::kInvalidArgument);
  EXPECT_NE(started.error().message().find("is inside the data directory"), std::string::npos)
      << started.error().message();
  EXPECT_EQ(fs::exists(key), key_existed);
  EXPECT_FALSE(fs::exists(data / "root-ca.pem"));
}

INSTANTIATE_TEST_SUITE_P(Paths, MasterKeyInsideTheDataDirectory,
                         ::testing::Values("Direct", "DotDot", "DirectorySymlink", "FileSymlink"),
                         [](const auto& param_info) { return param_info.param; });

TEST(MasterKey, OutsideTheDataDirectoryIsCreatedOwnerOnlyAndReusedOnRestart) {
  TempDir dir;
  const fs::path data = dir / "data";
  // A sibling whose name starts like the data directory's is still outside it.
  const fs::path key = dir / "data-keys/master.key";
  fs::create_directories(key.parent_path());

  auto first = StartWith(data, key);
  ASSERT_TRUE(first) << first.error().message();
  first->reset();
  const std::string created = ReadText(key);
  EXPECT_EQ(created.size(), 32U);
  EXPECT_EQ(fs::status(key).permissions(), kOwnerOnly);
  for (const auto& entry : fs::recursive_directory_iterator(data)) {
    EXPECT_NE(entry.path().filename(), "master.key") << entry.path();
  }

  // The restart opens the root CA key sealed on the first start: the same key, reused.
  auto second = StartWith(data, key);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(ReadText(key), created);
}

TEST(MasterKey, NoneNamedIsRefusedBeforeTheDataDirectoryIsCreated) {
  TempDir dir;
  auto started = StartWith(dir / "data", {});
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("no master key file"), std::string::npos)
      << started.error().message();
  EXPECT_FALSE(fs::exists(dir / "data"));
}

TEST(MasterKey, LegacyKeyInTheDataDirectoryIsRefusedUntilMovedOut) {
  TempDir dir;
  const fs::path data = dir / "data";
  const fs::path key = dir / "master.key";
  ASSERT_TRUE(StartWith(data, key));
  // The layout an older version left: DATA/master.key.
  fs::rename(key, data / "master.key");

  for (const fs::path& named : {key, fs::path()}) {
    auto refused = StartWith(data, named);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("move it out"), std::string::npos)
        << refused.error().message();
    EXPECT_NE(refused.error().message().find((data / "master.key").string()), std::string::npos)
        << refused.error().message();
  }
  EXPECT_FALSE(fs::exists(key)) << "a refused start made a new key";

  fs::rename(data / "master.key", key);
  auto moved = StartWith(data, key);
  EXPECT_TRUE(moved) << moved.error().message();
}

TEST(AdminTokenFile, InsideTheDataDirectoryIsRefusedBeforeAnythingIsCreated) {
  TempDir dir;
  const fs::path data = dir / "data";
  fs::create_directories(data);
  auto started = StartWith(data, dir / "master.key", data / "../data/admin-token");
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("the admin token file"), std::string::npos)
      << started.error().message();
  EXPECT_NE(started.error().message().find("is inside the data directory"), std::string::npos)
      << started.error().message();
  EXPECT_FALSE(fs::exists(data / "admin-token"));
  EXPECT_FALSE(fs::exists(dir / "master.key"));
}

// --- The aspis-service binary ---

// aspis-service processes on one data directory (outside it: the master key and the admin token
// file), on SQLite or PostgreSQL.
class ServiceSecretsBinary : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      postgres_ = std::make_unique<testing::PostgresServer>();
      db_args_ = {"--db", postgres_->Url()};
    }
  }

  std::vector<std::string> ServiceArgv() const {
    std::vector<std::string> argv{ASPIS_SERVICE_BINARY,
                                  "--data",
                                  data_.string(),
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(port_),
                                  "--threads",
                                  "1",
                                  "--master-key",
                                  (dir_ / "master.key").string(),
                                  "--admin-token-file",
                                  (dir_ / "admin.token").string()};
    argv.insert(argv.end(), db_args_.begin(), db_args_.end());
    return argv;
  }

  // Starts the service, its output appended to `log`, and waits until it serves.
  void Start(const std::string& log) {
    service_ = std::make_unique<testing::BackgroundProcess>(ServiceArgv(), std::nullopt, SIGTERM,
                                                            (dir_ / log).string());
    ASSERT_TRUE(testing::WaitForPort(port_)) << ReadText(dir_ / log);
  }

  // `aspis-service admin-token ARGS --data DATA [--db URL]`.
  testing::ProcessResult AdminToken(std::vector<std::string> args) const {
    args.insert(args.begin(), {ASPIS_SERVICE_BINARY, "admin-token"});
    args.insert(args.end(), {"--data", data_.string()});
    args.insert(args.end(), db_args_.begin(), db_args_.end());
    return testing::RunProcess(args);
  }

  // The status of GET /v1/tenants with `token`.
  int ListTenants(const std::string& token) const {
    auto root = crypto::Certificate::FromPem(ReadText(data_ / "root-ca.pem"));
    if (!root) return 0;
    wire::HttpsClient client({"127.0.0.1", static_cast<std::uint16_t>(port_)},
                             *crypto::tls::ClientContext(std::vector{*root}));
    auto response = client.Send("GET", "/v1/tenants", {}, {{"Authorization", "Bearer " + token}});
    EXPECT_TRUE(response) << response.error().message();
    return response ? response->status : 0;
  }

  // The service's store, opened beside the running service.
  std::unique_ptr<store::Store> OpenStore() const {
    auto database = store::OpenDatabase(
        postgres_ ? postgres_->Url() : "sqlite:" + (data_ / "aspis.db").string(), 1);
    if (!database) return nullptr;
    auto opened = store::Store::Open(std::move(*database));
    return opened ? std::move(*opened) : nullptr;
  }

  std::string FirstToken() const { return TokensIn(ReadText(dir_ / "admin.token")).at(0); }

  TempDir dir_;
  fs::path data_ = dir_ / "data";
  int port_ = testing::FreePort();
  std::unique_ptr<testing::PostgresServer> postgres_;  // outlives the service
  std::vector<std::string> db_args_;
  std::unique_ptr<testing::BackgroundProcess> service_;
};

TEST_P(ServiceSecretsBinary, FirstStartPrintsTheTokenOnceAndLeavesNoCopyInTheDataDirectory) {
  Start("first.log");
  const std::string token = FirstToken();
  EXPECT_EQ(ListTenants(token), 200);
  ASSERT_EQ(service_->Stop(), 0);

  EXPECT_EQ(TokensIn(ReadText(dir_ / "first.log")), std::vector{token});
  EXPECT_EQ(ReadText(dir_ / "admin.token"), token + "\n");
  EXPECT_EQ(fs::status(dir_ / "admin.token").permissions(), kOwnerOnly);
  // Not in any file of the data directory (the SQLite database and its WAL included), not even
  // the secret without its prefix.
  const std::string secret = token.substr(token.find('_') + 1);
  for (const auto& entry : fs::recursive_directory_iterator(data_)) {
    if (!entry.is_regular_file()) continue;
    EXPECT_EQ(ReadText(entry.path()).find(secret), std::string::npos) << entry.path();
  }

  Start("second.log");
  EXPECT_EQ(ListTenants(token), 200);
  ASSERT_EQ(service_->Stop(), 0);
  EXPECT_TRUE(TokensIn(ReadText(dir_ / "second.log")).empty()) << ReadText(dir_ / "second.log");
  EXPECT_NE(ReadText(dir_ / "second.log").find("listening"), std::string::npos);
  EXPECT_EQ(ReadText(dir_ / "admin.token"), token + "\n");
}

TEST_P(ServiceSecretsBinary, RotateWhileRunningLocksOutTheOldTokenAtOnce) {
  Start("service.log");
  const std::string old_token = FirstToken();
  ASSERT_EQ(ListTenants(old_token), 200);

  auto rotated = AdminToken({"rotate", "--admin-token-file", (dir_ / "rotated.token").string()});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  const auto printed = TokensIn(rotated.output);
  ASSERT_EQ(printed.size(), 1U) << rotated.output;
  const std::string& new_token = printed[0];
  EXPECT_NE(new_token, old_token);
  EXPECT_EQ(ReadText(dir_ / "rotated.token"), new_token + "\n");
  EXPECT_EQ(fs::status(dir_ / "rotated.token").permissions(), kOwnerOnly);

  EXPECT_EQ(ListTenants(old_token), 401);
  EXPECT_EQ(ListTenants(new_token), 200);

  auto store = OpenStore();
  ASSERT_TRUE(store);
  auto old_record = store->FindTokenByHash(api::HashSecret(old_token));
  auto new_record = store->FindTokenByHash(api::HashSecret(new_token));
  ASSERT_TRUE(old_record && new_record);
  EXPECT_TRUE(old_record->revoked);
  EXPECT_FALSE(new_record->revoked);
  EXPECT_TRUE(new_record->tenant_id.empty());
  EXPECT_EQ(new_record->role, store::Role::kAdministrator);
  auto audit = store->ListAudit("", 10);
  ASSERT_TRUE(audit);
  auto logged = [&](const std::string& action, const std::string& target) {
    return std::ranges::any_of(*audit, [&](const store::AuditEntry& e) {
      return e.actor == "platform-admin:rotate" && e.action == action && e.target == target;
    });
  };
  EXPECT_TRUE(logged("token.revoke", old_record->id));
  EXPECT_TRUE(logged("token.create", new_record->id));
}

TEST_P(ServiceSecretsBinary, RevokeLocksOutEveryPlatformTokenAndARestartMakesNoNewOne) {
  Start("service.log");
  const std::string token = FirstToken();
  ASSERT_EQ(ListTenants(token), 200);

  auto revoked = AdminToken({"revoke"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_TRUE(TokensIn(revoked.output).empty()) << revoked.output;
  EXPECT_EQ(ListTenants(token), 401);

  ASSERT_EQ(service_->Stop(), 0);
  Start("restart.log");
  EXPECT_EQ(ListTenants(token), 401);
  // The way back in is a rotation, by whoever can run commands on the data.
  auto rotated = AdminToken({"rotate"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  ASSERT_EQ(TokensIn(rotated.output).size(), 1U) << rotated.output;
  EXPECT_EQ(ListTenants(TokensIn(rotated.output)[0]), 200);
  ASSERT_EQ(service_->Stop(), 0);
  EXPECT_TRUE(TokensIn(ReadText(dir_ / "restart.log")).empty());
}

TEST_P(ServiceSecretsBinary, RotateRefusesATokenFileInsideTheDataDirectory) {
  Start("service.log");
  const std::string token = FirstToken();

  auto refused =
      AdminToken({"rotate", "--admin-token-file", (data_ / "../data/new.token").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.output.find("is inside the data directory"), std::string::npos)
      << refused.output;
  EXPECT_TRUE(TokensIn(refused.output).empty()) << refused.output;
  EXPECT_FALSE(fs::exists(data_ / "new.token"));
  EXPECT_EQ(ListTenants(token), 200) << "a refused rotation revoked the token";
}

TEST_P(ServiceSecretsBinary, LegacyAdminTokenFileIsRefusedUntilRotated) {
  Start("service.log");
  const std::string token = FirstToken();
  ASSERT_EQ(service_->Stop(), 0);
  // The plaintext copy an older version kept.
  ASSERT_TRUE(file::WriteDurably(data_ / "admin-token", AsBytes(token + "\n"), 0600));

  auto refused = testing::RunProcess(ServiceArgv());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("admin-token rotate"), std::string::npos) << refused.output;

  auto rotated = AdminToken({"rotate"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  EXPECT_FALSE(fs::exists(data_ / "admin-token"));
  Start("restarted.log");
  EXPECT_EQ(ListTenants(token), 401);
  EXPECT_EQ(ListTenants(TokensIn(rotated.output).at(0)), 200);
}

INSTANTIATE_TEST_SUITE_P(Engines, ServiceSecretsBinary, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(MasterKey, FromTheEnvironmentInsideTheDataDirectoryIsRefusedByTheBinary) {
  TempDir dir;
  auto refused = testing::RunProcess(
      {ASPIS_SERVICE_BINARY, "--data", (dir / "data").string(), "--listen", "127.0.0.1:0"},
      {{"ASPIS_MASTER_KEY_FILE", (dir / "data/../data/master.key").string()}});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.output.find("is inside the data directory"), std::string::npos)
      << refused.output;
  EXPECT_FALSE(fs::exists(dir / "data"));
}

}  // namespace
}  // namespace aspis::service
