#pragma once

#include <chrono>
#include <cstdint>
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
};

// A blocking HTTPS/1.1 client. Each Send opens a new TLS connection, as devices do for each
// attestation. The server must present a certificate that chains to the context's pinned roots
// and names `endpoint.host`. Thread-safe (calls share nothing).
class HttpsClient {
 public:
  HttpsClient(Endpoint endpoint, crypto::tls::Context tls,
              std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : endpoint_(std::move(endpoint)), tls_(std::move(tls)), timeout_(timeout) {}

  // Errors (WireErrc): kUnavailable, kTls, kTimeout, kProtocol. Any HTTP status is a response.
  Expected<HttpResponse> Send(
      std::string_view method, std::string_view target, std::string_view body = {},
      const std::vector<std::pair<std::string, std::string>>& headers = {}) const;

 private:
  Endpoint endpoint_;
  crypto::tls::Context tls_;
  std::chrono::milliseconds timeout_;
};

}  // namespace aspis::wire
