#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "crypto/tls.hpp"

namespace aspis::wire {

struct Endpoint {
  std::string host;  // a DNS name or an IP address; the server certificate must name it
  std::uint16_t port = 443;
};

// Accepts "https://host[:port][/]" only: Aspis never talks to the service in clear text.
Expected<Endpoint> ParseHttpsUrl(std::string_view url);

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  // The Retry-After header when it held delta-seconds (see ParseRetryAfter); read it through
  // RetryAfter, which knows which statuses give it meaning.
  std::optional<std::chrono::seconds> retry_after;
};

// What a person should read about a failed response: the "detail" of an
// application/problem+json body, else the body itself.
std::string ProblemDetail(const HttpResponse& response);

// A Retry-After value in its delta-seconds form ("120"), saturating at kMaxRetryAfter; nullopt
// for anything else (the HTTP-date form, which the service never sends, included).
inline constexpr std::chrono::seconds kMaxRetryAfter = std::chrono::hours(24);
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value);

// How long the service asked the client to wait before trying again: the Retry-After of a 429 (Too
// Many Requests) or 503 (Unavailable) answer; nullopt for other statuses or without the header.
std::optional<std::chrono::seconds> RetryAfter(const HttpResponse& response);

class HttpsClient;

// One TLS connection to a server, for several requests in turn (keep-alive): a device's
// attestation fetches the challenge and posts the evidence on one connection. Blocking; not
// thread-safe. Closed (TLS close_notify, bounded wait) on destruction.
class HttpsConnection {
 public:
  HttpsConnection(HttpsConnection&&) noexcept;
  HttpsConnection& operator=(HttpsConnection&&) noexcept;
  ~HttpsConnection();

  // Errors (WireErrc): kTls, kTimeout, kProtocol, kUnavailable (the server closed the
  // connection). Any HTTP status is a response.
  Expected<HttpResponse> Send(std::string_view method, std::string_view target,
                              std::string_view body = {},
                              const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  friend class HttpsClient;
  struct State;
  explicit HttpsConnection(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A blocking HTTPS/1.1 client. The server must present a certificate that chains to the
// context's pinned roots and names `endpoint.host`. Thread-safe (calls share nothing).
class HttpsClient {
 public:
  HttpsClient(Endpoint endpoint, crypto::tls::Context tls,
              std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : endpoint_(std::move(endpoint)), tls_(std::move(tls)), timeout_(timeout) {}

  // Connects and completes the TLS handshake; `timeout` bounds each step and each request.
  // Errors (WireErrc): kUnavailable, kTls, kTimeout, kProtocol.
  Expected<HttpsConnection> Connect() const;

  // One request on a new connection.
  Expected<HttpResponse> Send(
      std::string_view method, std::string_view target, std::string_view body = {},
      const std::vector<std::pair<std::string, std::string>>& headers = {}) const;

 private:
  Endpoint endpoint_;
  crypto::tls::Context tls_;
  std::chrono::milliseconds timeout_;
};

}  // namespace aspis::wire
