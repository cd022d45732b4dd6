#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/tls.hpp"
#include "service/http/rate_limiter.hpp"
#include "service/http/router.hpp"

namespace aspis::service::http {

// Per-client request limits. A refused request gets 429 Too Many Requests (a problem document)
// with Retry-After in seconds; the handler does not run. Defaults are far above what a device or
// an operator's tooling sends, and only floods meet them.
struct RateLimits {
  // Routes that anyone may call, limited per client address (IPv4 address, or IPv6 /64 prefix).
  // nullopt: not limited.
  std::optional<RateLimit> per_client = RateLimit{.per_second = 10, .burst = 20};
  std::vector<std::string> client_routes = {"/healthz", "/metrics", "/v1/attestation/challenge",
                                            "/v1/attestation"};
  // Routes whose pattern starts with `device_route_prefix`, limited per client certificate: its one
  // SAN URI, which names the device, with its policy OIDs, which tell the device's runtime from its
  // apps (so a flood from an app does not silence the device); else its SHA-256 fingerprint.
  // Requests without a certificate count against the client address's `per_client` bucket.
  std::optional<RateLimit> per_device = RateLimit{.per_second = 2, .burst = 10};
  std::string device_route_prefix = "/v1/device/";
  // Buckets each limiter keeps at most (see RateLimiter for what happens when full).
  std::size_t max_tracked_keys = 65536;
  // Time for the buckets; null: SystemClock. Must outlive the server.
  const Clock* clock = nullptr;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: the system picks a free port (see Server::port)
  crypto::tls::Context tls;
  unsigned threads = 0;  // 0: one per core
  std::size_t max_body_bytes = std::size_t{1} << 20;
  std::size_t max_header_bytes = std::size_t{16} << 10;
  // A whole request (headers and body) must arrive within this, and so must the first byte of
  // the next request on a kept-alive connection.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  // On Stop, requests in progress get this long to finish.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(10)};
  // Connections open at once, handshakes included; further ones are closed as soon as accepted.
  std::size_t max_connections = 1024;
  // The same, per client address (as RateLimits counts addresses), so that one client cannot take
  // them all.
  std::size_t max_connections_per_client = 256;
  RateLimits limits;
};

// The method as a metrics label: one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, or "other"
// (clients choose methods, and labels must come from a fixed set).
std::string_view MethodLabel(std::string_view method);
// The route label for requests that matched no route.
inline constexpr std::string_view kOtherRoute = "other";

// Hooks for metrics. Each must be thread-safe and quick (they run on the I/O threads); empty ones
// are skipped.
struct Observer {
  // After each request: its MethodLabel, the matched route pattern or kOtherRoute, the status and
  // the time from the end of reading to the end of writing. Every argument comes from a bounded
  // set, so they can be metrics labels.
  std::function<void(std::string_view method, std::string_view route, int status,
                     std::chrono::nanoseconds latency)>
      request;
  // A connection was closed unserved because max_connections (or max_connections_per_client
  // from its address) were open.
  std::function<void()> connection_refused;
};

// An HTTPS/1.1 server: TLS 1.2+ (see crypto::tls::ServerContext), keep-alive, limits on header and
// body size, on time, on open connections and on requests per client (RateLimits), one io_context
// thread per core, C++20 coroutines. Thread-safe.
class Server {
 public:
  // Binds and starts serving; fails if the address cannot be bound.
  static Expected<std::unique_ptr<Server>> Start(ServerConfig config, Router router,
                                                 Observer observer = {});
  virtual ~Server() = default;

  virtual std::uint16_t port() const = 0;
  // Connections open now (counted against max_connections).
  virtual std::size_t open_connections() const = 0;
  // Stops accepting, closes idle connections, lets requests in progress finish (up to
  // shutdown_grace), and joins the threads. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace aspis::service::http
