// The HTTPS server and client against each other over real TLS on 127.0.0.1.
#include <gtest/gtest.h>

// Boost 1.74's Asio uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <openssl/ssl.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/json.hpp"
#include "crypto/tpm_key.hpp"
#include "device/attest/attester.hpp"
#include "rot/root_of_trust.hpp"
#include "service/http/server.hpp"
#include "support/tabrmd.hpp"
#include "support/temp_dir.hpp"
#include "wire/attestation.hpp"
#include "wire/errors.hpp"
#include "wire/https_client.hpp"

namespace aspis {
namespace {

using namespace std::chrono_literals;
using service::http::Observer;
using service::http::RateLimit;
using service::http::Request;
using service::http::Response;
using service::http::Router;
using service::http::Server;
using service::http::ServerConfig;

const auto kNow = std::chrono::system_clock::now();

struct Ca {
  // A root CA.
  explicit Ca(std::string name)
      : key(*crypto::PrivateKey::GenerateP256()),
        cert(*crypto::CreateSelfSigned(key, {.common_name = std::move(name),
                                             .not_before = kNow - 1h,
                                             .lifetime = 24h * 30,
                                             .is_ca = true})) {}
  // A CA under `parent`, as a tenant CA is under the platform root.
  Ca(std::string name, const Ca& parent)
      : key(*crypto::PrivateKey::GenerateP256()),
        cert(*crypto::Issue(parent.cert, parent.key, key.Public(),
                            {.common_name = std::move(name),
                             .not_before = kNow - 1h,
                             .lifetime = 24h * 29,
                             .is_ca = true,
                             .path_length = 0})) {}

  crypto::Certificate Leaf(const crypto::PrivateKey& subject, crypto::CertificateProfile p) const {
    p.not_before = kNow - 1h;
    p.lifetime = 24h;
    return *crypto::Issue(cert, key, subject.Public(), p);
  }

  crypto::PrivateKey key;
  crypto::Certificate cert;
};

class HttpsServer : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(std::function<void(ServerConfig&)> adjust) {
    Router router;
    router.Add("GET", "/hello", [](const Request&) { return Response::Json(200, "\"hi\""); });
    router.Add("POST", "/echo", [](const Request& r) { return Response::Json(200, r.body); });
    router.Add("GET", "/whoami", [](const Request& r) {
      return Response::Text(
          200, r.client_certificate ? r.client_certificate->SubjectCommonName() : "anonymous");
    });
    router.Add("GET", "/slow", [this](const Request&) {
      slow_started_ = true;
      std::this_thread::sleep_for(300ms);
      return Response::Text(200, "done");
    });
    // Routes the default rate limits cover: an unauthenticated one and a device one.
    router.Add("POST", "/v1/attestation/challenge",
               [](const Request&) { return Response::Json(200, "{}"); });
    router.Add("GET", "/v1/device/whoami", [](const Request& r) {
      return Response::Text(
          200, r.client_certificate ? r.client_certificate->SubjectCommonName() : "anonymous");
    });
    const std::vector<crypto::Certificate> chain{server_cert_};
    // As aspis-service: any client certificate chaining to the platform root passes the
    // handshake; which tenant's device routes it opens is the routes' decision.
    const std::vector<crypto::Certificate> client_roots{platform_ca_.cert};
    ServerConfig config{.tls = *crypto::tls::ServerContext(chain, server_key_, client_roots),
                        .threads = 2,
                        .max_body_bytes = 1024};
    config.limits.clock = &clock_;
    if (adjust) adjust(config);
    auto server = Server::Start(std::move(config), std::move(router), observer_);
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
  }

  wire::HttpsClient Client(const crypto::PrivateKey* key = nullptr,
                           std::vector<crypto::Certificate> chain = {},
                           std::string host = "127.0.0.1") const {
    const std::vector<crypto::Certificate> roots{platform_ca_.cert};
    return wire::HttpsClient({host, server_->port()},
                             *crypto::tls::ClientContext(roots, chain, key), 5s);
  }

  Ca platform_ca_{"Platform Root"};
  Ca tenant_ca_{"Tenant CA", platform_ca_};
  Ca rogue_ca_{"Rogue CA"};  // outside the platform root
  crypto::PrivateKey server_key_ = *crypto::PrivateKey::GenerateP256();
  crypto::Certificate server_cert_ = platform_ca_.Leaf(server_key_, {.common_name = "aspis-service",
                                                                     .server_auth = true,
                                                                     .san_dns = {"localhost"},
                                                                     .san_ips = {"127.0.0.1"}});
  // The rate limiters' time: it moves only when a test says so.
  FakeClock clock_{kNow};
  // What observer_ saw; declared before server_, so that they outlive its threads.
  std::atomic<int> refused_{0};
  std::mutex seen_mutex_;
  std::vector<std::pair<std::string, std::string>> seen_;  // method and route labels
  Observer observer_;                                      // set before StartServer
  std::unique_ptr<Server> server_;
  std::atomic<bool> slow_started_{false};
};

TEST_F(HttpsServer, ServesRoutesOverTls) {
  auto response = Client().Send("GET", "/hello");
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "\"hi\"");
  EXPECT_EQ(response->content_type, "application/json");
  auto echo = Client().Send("POST", "/echo", "{\"a\":1}");
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->body, "{\"a\":1}");
}

TEST_F(HttpsServer, OneConnectionCarriesSeveralRequests) {
  auto connection = Client().Connect();
  ASSERT_TRUE(connection) << connection.error().message();
  for (const char* body : {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"}) {
    auto echo = connection->Send("POST", "/echo", body);
    ASSERT_TRUE(echo) << echo.error().message();
    EXPECT_EQ(echo->body, body);
  }
}

TEST_F(HttpsServer, UnknownRouteIsAProblemDocument) {
  auto response = Client().Send("GET", "/nope");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->content_type, "application/problem+json");
}

TEST_F(HttpsServer, ClientCertificateFromTrustedCaReachesHandler) {
  const auto device_key = *crypto::PrivateKey::GenerateP256();
  const auto device = tenant_ca_.Leaf(device_key, {.common_name = "device-1", .client_auth = true});
  auto response = Client(&device_key, {device, tenant_ca_.cert}).Send("GET", "/whoami");
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->body, "device-1");
  auto anonymous = Client().Send("GET", "/whoami");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->body, "anonymous");
}

TEST_F(HttpsServer, ClientCertificateWithTpmHeldKeyReachesHandler) {
  testing::Tabrmd tpm;
  auto store = crypto::TpmKeyStore::Open(tpm.Tcti());
  ASSERT_TRUE(store) << store.error().message();
  auto device_key = store->Generate();
  ASSERT_TRUE(device_key) << device_key.error().message();
  const auto device =
      tenant_ca_.Leaf(*device_key, {.common_name = "device-tpm", .client_auth = true});
  auto connection = Client(&*device_key, {device, tenant_ca_.cert}).Connect();
  ASSERT_TRUE(connection) << connection.error().message();
  for (int i = 0; i < 2; ++i) {
    auto response = connection->Send("GET", "/whoami");
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->body, "device-tpm");
  }
}

TEST_F(HttpsServer, ClientCertificateOutsideThePlatformRootIsRefusedAtHandshake) {
  const auto key = *crypto::PrivateKey::GenerateP256();
  const auto foreign = rogue_ca_.Leaf(key, {.common_name = "intruder", .client_auth = true});
  auto response = Client(&key, {foreign, rogue_ca_.cert}).Send("GET", "/whoami");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), wire::WireErrc::kTls) << response.error().message();
  // The positive twin: a tenant CA's certificate, under the platform root, is let through.
  const auto device = tenant_ca_.Leaf(key, {.common_name = "device-1", .client_auth = true});
  auto admitted = Client(&key, {device, tenant_ca_.cert}).Send("GET", "/whoami");
  ASSERT_TRUE(admitted) << admitted.error().message();
  EXPECT_EQ(admitted->body, "device-1");
}

TEST_F(HttpsServer, ClientRefusesServerOutsideItsPinnedRoots) {
  const std::vector<crypto::Certificate> wrong_roots{rogue_ca_.cert};
  wire::HttpsClient client({"127.0.0.1", server_->port()}, *crypto::tls::ClientContext(wrong_roots),
                           5s);
  auto response = client.Send("GET", "/hello");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), wire::WireErrc::kTls);
}

TEST_F(HttpsServer, ClientRefusesCertificateForAnotherName) {
  // "localhost" resolves here, but connecting by a name the certificate lacks must fail.
  EXPECT_TRUE(Client(nullptr, {}, "localhost").Send("GET", "/hello"));
  const std::vector<crypto::Certificate> roots{platform_ca_.cert};
  const auto other_key = *crypto::PrivateKey::GenerateP256();
  server_.reset();
  server_cert_ = platform_ca_.Leaf(
      other_key,
      {.common_name = "elsewhere", .server_auth = true, .san_dns = {"elsewhere.example"}});
  server_key_ = other_key;
  StartServer({});
  auto response = Client().Send("GET", "/hello");
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error(), wire::WireErrc::kTls) << response.error().message();
}

TEST_F(HttpsServer, OversizedBodyIsA413AndTheServerKeepsServing) {
  auto response = Client().Send("POST", "/echo", std::string(4096, 'x'));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->content_type, "application/problem+json");
  EXPECT_EQ(Client().Send("GET", "/hello")->status, 200);
}

// Sends raw bytes over TLS and returns what comes back until the server closes.
std::string RawExchange(std::uint16_t port, const crypto::Certificate& root, std::string bytes) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  const std::vector<crypto::Certificate> roots{root};
  auto tls = *crypto::tls::ClientContext(roots);
  SSL_CTX_up_ref(tls.native());
  asio::ssl::context ctx(tls.native());
  asio::ssl::stream<asio::ip::tcp::socket> stream(ioc, ctx);
  stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
  stream.handshake(asio::ssl::stream_base::client);
  asio::write(stream, asio::buffer(bytes));
  std::string reply;
  boost::system::error_code ec;
  asio::read(stream, asio::dynamic_buffer(reply), ec);
  return reply;
}

TEST_F(HttpsServer, MalformedRequestIsA400AndTheServerKeepsServing) {
  const std::string reply =
      RawExchange(server_->port(), platform_ca_.cert, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(reply.find("400"), std::string::npos) << reply;
  EXPECT_EQ(Client().Send("GET", "/hello")->status, 200);
}

// Paths that are not UTF-8 are echoed in the problem document's detail; the answer must still be
// JSON (a throwing serializer once closed the connection with no answer).
TEST_F(HttpsServer, PathThatIsNotUtf8GetsAProblemDocument) {
  const std::string reply =
      RawExchange(server_->port(), platform_ca_.cert,
                  "GET /nope\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_NE(reply.find("404"), std::string::npos) << reply;
  const auto body = json::Parse(reply.substr(reply.find("\r\n\r\n") + 4));
  ASSERT_TRUE(body) << reply;
  EXPECT_NE(body->value("detail", "").find("/nope\xef\xbf\xbd"), std::string::npos)
      << "the byte is replaced by U+FFFD";
  EXPECT_EQ(Client().Send("GET", "/hello")->status, 200);
}

TEST_F(HttpsServer, NonTlsBytesAreDroppedAndTheServerKeepsServing) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket socket(ioc);
  socket.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
  std::string reply;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(reply), ec);
  EXPECT_EQ(reply.find("200"), std::string::npos);
  EXPECT_EQ(Client().Send("GET", "/hello")->status, 200);
}

TEST_F(HttpsServer, SlowClientIsCutOffAtTheRequestTimeout) {
  server_.reset();
  StartServer([](ServerConfig& c) { c.request_timeout = 200ms; });
  // Headers that never end: the server must close the connection, not wait forever.
  const std::string reply =
      RawExchange(server_->port(), platform_ca_.cert, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(reply.find("200 OK"), std::string::npos);
  EXPECT_EQ(Client().Send("GET", "/hello")->status, 200);
}

TEST_F(HttpsServer, StopLetsTheRequestInProgressFinish) {
  std::optional<Expected<wire::HttpResponse>> slow;
  std::thread caller([&] { slow = Client().Send("GET", "/slow"); });
  while (!slow_started_) std::this_thread::yield();
  server_->Stop();
  caller.join();
  ASSERT_TRUE(slow && *slow) << (slow ? slow->error().message() : "no result");
  EXPECT_EQ((*slow)->body, "done");
  EXPECT_FALSE(Client().Send("GET", "/hello"));  // no longer accepting
}

// The default limit on unauthenticated routes: 20 at once per client address, 10 more a second.
TEST_F(HttpsServer, ChallengeFloodFromOneAddressGets429WithRetryAfterUntilTheBucketRefills) {
  auto connection = Client().Connect();
  ASSERT_TRUE(connection) << connection.error().message();
  for (int i = 0; i < 20; ++i) {
    auto response = connection->Send("POST", "/v1/attestation/challenge");
    ASSERT_TRUE(response) << response.error().message();
    ASSERT_EQ(response->status, 200) << "request " << i << " is within the burst";
  }
  auto limited = connection->Send("POST", "/v1/attestation/challenge");
  ASSERT_TRUE(limited) << limited.error().message();
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->content_type, "application/problem+json");
  EXPECT_EQ(limited->retry_after, 1s);
  EXPECT_EQ(wire::RetryAfter(*limited), 1s);
  EXPECT_NE(wire::ProblemDetail(*limited).find("retry after 1 s"), std::string::npos)
      << limited->body;
  // A new connection from the same address shares the bucket; routes outside the limits do not.
  EXPECT_EQ(Client().Send("POST", "/v1/attestation/challenge")->status, 429);
  EXPECT_EQ(connection->Send("GET", "/hello")->status, 200);

  clock_.Advance(1s);
  auto refilled = Client().Send("POST", "/v1/attestation/challenge");
  ASSERT_TRUE(refilled) << refilled.error().message();
  EXPECT_EQ(refilled->status, 200);
  EXPECT_FALSE(refilled->retry_after);
}

// The limited answer reaches the device's attester as a value, not as words in an error message.
TEST_F(HttpsServer, AttesterReportsTheRetryAfterOfALimitedChallenge) {
  testing::TempDir dir;
  auto rot = rot::Initialize({.backend = "software", .state_dir = dir / "rot"});
  ASSERT_TRUE(rot) << rot.error().message();
  const auto runtime_key = *crypto::PrivateKey::GenerateP256();
  const auto app_key = *crypto::PrivateKey::GenerateP256();
  auto attest = [&](std::optional<std::chrono::seconds>* retry_after) {
    return device::attest::Attest(Client(), **rot, {}, runtime_key, app_key, {platform_ca_.cert},
                                  kNow, retry_after);
  };
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(Client().Send("POST", "/v1/attestation/challenge")->status, 200);

  std::optional<std::chrono::seconds> retry_after;
  auto limited = attest(&retry_after);
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error(), wire::WireErrc::kUnavailable) << limited.error().message();
  EXPECT_EQ(retry_after, 1s);

  // The twin: past the limit, this server's challenge ("{}") is malformed, with no wait asked.
  clock_.Advance(1s);
  auto malformed = attest(&retry_after);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error(), wire::WireErrc::kProtocol) << malformed.error().message();
  EXPECT_FALSE(retry_after);
}

// The default limit on device routes: 10 at once per device, 2 more a second, keyed by the device
// its certificate names, not by address (all of these come from 127.0.0.1).
TEST_F(HttpsServer, DeviceRouteFloodIsLimitedPerDevice) {
  const auto key_a = *crypto::PrivateKey::GenerateP256();
  const auto key_b = *crypto::PrivateKey::GenerateP256();
  auto device = [&](const crypto::PrivateKey& key, const std::string& id) {
    return tenant_ca_.Leaf(
        key,
        {.common_name = id, .client_auth = true, .san_uris = {"urn:aspis:tenant:t1:device:" + id}});
  };
  auto a = Client(&key_a, {device(key_a, "device-a"), tenant_ca_.cert}).Connect();
  ASSERT_TRUE(a) << a.error().message();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(a->Send("GET", "/v1/device/whoami")->status, 200) << i;
  auto limited = a->Send("GET", "/v1/device/whoami");
  ASSERT_TRUE(limited) << limited.error().message();
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->retry_after, 1s);

  auto b =
      Client(&key_b, {device(key_b, "device-b"), tenant_ca_.cert}).Send("GET", "/v1/device/whoami");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->status, 200) << "another device is not limited by device-a's flood";
  EXPECT_EQ(b->body, "device-b");
  auto anonymous = Client().Send("GET", "/v1/device/whoami");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 200) << "without a certificate, the address's own bucket counts";
  // A fresh certificate (and key) for the same device does not buy a fresh bucket.
  const auto renewed_key = *crypto::PrivateKey::GenerateP256();
  EXPECT_EQ(Client(&renewed_key, {device(renewed_key, "device-a"), tenant_ca_.cert})
                .Send("GET", "/v1/device/whoami")
                ->status,
            429);

  clock_.Advance(1s);
  EXPECT_EQ(a->Send("GET", "/v1/device/whoami")->status, 200);
}

TEST_F(HttpsServer, AppCertificateFloodDoesNotLimitItsDevicesRuntimeCertificate) {
  auto certificate = [&](const crypto::PrivateKey& key, const char* policy) {
    return tenant_ca_.Leaf(key, {.common_name = "device-a",
                                 .client_auth = true,
                                 .san_uris = {"urn:aspis:tenant:t1:device:device-a"},
                                 .policy_oids = {policy}});
  };
  const auto app_key = *crypto::PrivateKey::GenerateP256();
  const auto runtime_key = *crypto::PrivateKey::GenerateP256();
  auto app = Client(&app_key, {certificate(app_key, wire::kAppCertificatePolicy), tenant_ca_.cert})
                 .Connect();
  ASSERT_TRUE(app) << app.error().message();
  for (int i = 0; i < 10; ++i) ASSERT_EQ(app->Send("GET", "/v1/device/whoami")->status, 200) << i;
  EXPECT_EQ(app->Send("GET", "/v1/device/whoami")->status, 429);

  auto runtime = Client(&runtime_key, {certificate(runtime_key, wire::kRuntimeCertificatePolicy),
                                       tenant_ca_.cert})
                     .Send("GET", "/v1/device/whoami");
  ASSERT_TRUE(runtime) << runtime.error().message();
  EXPECT_EQ(runtime->status, 200) << "the device's runtime has a bucket of its own";
  // The app's next certificate (same device, same policy) shares the app's bucket.
  const auto renewed_key = *crypto::PrivateKey::GenerateP256();
  EXPECT_EQ(
      Client(&renewed_key, {certificate(renewed_key, wire::kAppCertificatePolicy), tenant_ca_.cert})
          .Send("GET", "/v1/device/whoami")
          ->status,
      429);
}

TEST_F(HttpsServer, RoutesWithoutALimitAreNeverLimited) {
  server_.reset();
  StartServer(
      [](ServerConfig& c) { c.limits.per_client = RateLimit{.per_second = 1, .burst = 1}; });
  auto connection = Client().Connect();
  ASSERT_TRUE(connection);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(connection->Send("GET", "/hello")->status, 200) << i;
  EXPECT_EQ(connection->Send("POST", "/v1/attestation/challenge")->status, 200);
  EXPECT_EQ(connection->Send("POST", "/v1/attestation/challenge")->status, 429);
}

TEST_F(HttpsServer, ConnectionsBeyondTheCapAreClosedAndCounted) {
  server_.reset();
  observer_.connection_refused = [this] { ++refused_; };
  StartServer([](ServerConfig& c) { c.max_connections = 3; });
  std::vector<wire::HttpsConnection> held;
  for (int i = 0; i < 3; ++i) {
    auto connection = Client().Connect();
    ASSERT_TRUE(connection) << connection.error().message();
    held.push_back(std::move(*connection));
  }
  EXPECT_EQ(server_->open_connections(), 3u);
  {
    auto fourth = Client().Connect();
    EXPECT_FALSE(fourth) << "a fourth connection is closed while three are open";
    EXPECT_EQ(refused_, 1);
  }
  for (auto& connection : held) EXPECT_EQ(connection.Send("GET", "/hello")->status, 200);

  held.pop_back();  // closes it (close_notify)
  // The server counts the connection out when its coroutine ends; wait for that, not for a time.
  while (server_->open_connections() > 2) std::this_thread::yield();
  auto replacement = Client().Connect();
  ASSERT_TRUE(replacement) << replacement.error().message();
  EXPECT_EQ(replacement->Send("GET", "/hello")->status, 200);
  EXPECT_EQ(refused_, 1);
}

TEST_F(HttpsServer, ConnectionsFromOneAddressBeyondItsCapAreClosedWhileOthersAreServed) {
  server_.reset();
  observer_.connection_refused = [this] { ++refused_; };
  StartServer([](ServerConfig& c) { c.max_connections_per_client = 2; });
  std::vector<wire::HttpsConnection> held;
  for (int i = 0; i < 2; ++i) {
    auto connection = Client().Connect();
    ASSERT_TRUE(connection) << connection.error().message();
    held.push_back(std::move(*connection));
  }
  EXPECT_FALSE(Client().Connect()) << "a third connection from 127.0.0.1 is closed";
  EXPECT_EQ(refused_, 1);
  // Another address (all of 127/8 is loopback) is admitted.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket other(io);
  other.open(boost::asio::ip::tcp::v4());
  other.bind({boost::asio::ip::make_address("127.0.0.2"), 0});
  other.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  while (server_->open_connections() < 3 && refused_ == 1) std::this_thread::yield();
  EXPECT_EQ(server_->open_connections(), 3u) << "a connection from 127.0.0.2 is served";
  EXPECT_EQ(refused_, 1);
  other.close();

  held.pop_back();
  while (server_->open_connections() > 1) std::this_thread::yield();
  auto replacement = Client().Send("GET", "/hello");
  ASSERT_TRUE(replacement) << replacement.error().message();
  EXPECT_EQ(replacement->status, 200);
  EXPECT_EQ(refused_, 1);
}

TEST_F(HttpsServer, ObservedLabelsComeFromFixedSets) {
  using Labels = std::pair<std::string, std::string>;
  server_.reset();
  observer_.request = [this](std::string_view method, std::string_view route, int,
                             std::chrono::nanoseconds) {
    const std::lock_guard lock(seen_mutex_);
    seen_.emplace_back(method, route);
  };
  StartServer({});
  auto connection = Client().Connect();
  ASSERT_TRUE(connection);
  EXPECT_EQ(connection->Send("BREW", "/hello")->status, 405);
  EXPECT_EQ(connection->Send("GET", "/no/such/path/4711")->status, 404);
  EXPECT_EQ(connection->Send("POST", "/echo", "{}")->status, 200);
  // The server observes a request before reading the next one on its connection, so once this
  // answer is in, the three above have been observed.
  EXPECT_EQ(connection->Send("GET", "/hello")->status, 200);
  const std::lock_guard lock(seen_mutex_);
  ASSERT_GE(seen_.size(), 3u);
  EXPECT_EQ(seen_[0], Labels("other", "other")) << "method BREW";
  EXPECT_EQ(seen_[1], Labels("GET", "other")) << "an unknown path";
  EXPECT_EQ(seen_[2], Labels("POST", "/echo"));
}

TEST(HttpsUrl, ParsesHostAndPortAndRefusesPlainHttp) {
  auto endpoint = wire::ParseHttpsUrl("https://127.0.0.1:8443");
  ASSERT_TRUE(endpoint);
  EXPECT_EQ(endpoint->host, "127.0.0.1");
  EXPECT_EQ(endpoint->port, 8443);
  EXPECT_EQ(wire::ParseHttpsUrl("https://aspis.example/")->port, 443);
  EXPECT_EQ(wire::ParseHttpsUrl("https://[::1]:9")->host, "::1");
  EXPECT_FALSE(wire::ParseHttpsUrl("http://aspis.example"));
  EXPECT_FALSE(wire::ParseHttpsUrl("https://host:99999"));
  EXPECT_FALSE(wire::ParseHttpsUrl("https://host/path"));
}

}  // namespace
}  // namespace aspis
