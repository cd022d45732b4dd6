#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "crypto/tls.hpp"
#include "service/http/router.hpp"

namespace aspis::service::http {

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
};

// Called after each request with the matched route pattern ("" when none), the status and the
// time from the end of reading to the end of writing. Must be thread-safe.
using RequestObserver = std::function<void(std::string_view method, std::string_view route,
                                           int status, std::chrono::nanoseconds latency)>;

// An HTTPS/1.1 server: TLS 1.2+ (see crypto::tls::ServerContext), keep-alive, limits on header and
// body size and on time, one io_context thread per core, C++20 coroutines. Thread-safe.
class Server {
 public:
  // Binds and starts serving; fails if the address cannot be bound.
  static Expected<std::unique_ptr<Server>> Start(ServerConfig config, Router router,
                                                 RequestObserver observer = {});
  virtual ~Server() = default;

  virtual std::uint16_t port() const = 0;
  // Stops accepting, closes idle connections, lets requests in progress finish (up to
  // shutdown_grace), and joins the threads. Idempotent; the destructor calls it.
  virtual void Stop() = 0;
};

}  // namespace aspis::service::http
