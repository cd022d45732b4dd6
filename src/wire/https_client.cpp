#include "wire/https_client.hpp"

// Boost 1.74's Asio uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <charconv>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/json.hpp"
#include "core/log.hpp"
#include "wire/errors.hpp"

namespace aspis::wire {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::redirect_error;
using asio::use_awaitable;

Error Timeout(std::string_view what, const Endpoint& endpoint) {
  return Error(WireErrc::kTimeout, std::string(what) + " " + endpoint.host + ":" +
                                       std::to_string(endpoint.port) + " timed out");
}

}  // namespace

std::string ProblemDetail(const HttpResponse& response) {
  auto problem = json::Parse(response.body);
  if (!problem || !problem->is_object()) return response.body;
  auto detail = json::GetString(*problem, "detail");
  return detail ? *detail : response.body;
}

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc::result_out_of_range || seconds > kMaxRetryAfter.count()) {
    return kMaxRetryAfter;
  }
  if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return std::chrono::seconds(seconds);
}

std::optional<std::chrono::seconds> RetryAfter(const HttpResponse& response) {
  if (response.status != 429 && response.status != 503) return std::nullopt;
  return response.retry_after;
}

Expected<Endpoint> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) {
    return Fail(WireErrc::kProtocol,
                "URL \"" + std::string(url) + "\" does not start with https://");
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos) {
    return Fail(WireErrc::kProtocol,
                "URL \"" + std::string(url) + "\" must be https://host[:port]");
  }
  Endpoint endpoint;
  const std::size_t colon = rest.rfind(':');
  const bool bracketed_without_port = rest.front() == '[' && rest.find(']') > colon;
  if (colon == std::string_view::npos || bracketed_without_port) {
    endpoint.host = std::string(rest);
  } else {
    endpoint.host = std::string(rest.substr(0, colon));
    const std::string_view port = rest.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), endpoint.port);
    if (ec != std::errc() || end != port.data() + port.size() || endpoint.port == 0) {
      return Fail(WireErrc::kProtocol, "URL \"" + std::string(url) + "\" has a bad port");
    }
  }
  if (endpoint.host.size() > 2 && endpoint.host.front() == '[' && endpoint.host.back() == ']') {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  }
  return endpoint;
}

struct HttpsConnection::State {
  State(const crypto::tls::Context& context, Endpoint where, std::chrono::milliseconds limit)
      // Asio takes ownership of one reference; up_ref cannot fail (it only counts).
      : tls(context),
        ssl((static_cast<void>(SSL_CTX_up_ref(context.native())), context.native())),
        stream(ioc, ssl),
        endpoint(std::move(where)),
        timeout(limit) {}

  // Runs `task` to completion on this connection's io_context.
  void Run(asio::awaitable<void> task) {
    ioc.restart();
    asio::co_spawn(ioc, std::move(task), asio::detached);
    ioc.run();
  }

  Error Failure(const beast::error_code& error, std::string_view what) const {
    if (error == beast::error::timeout) return Timeout(what, endpoint);
    // TLS 1.3 servers judge the client certificate after the client's handshake completes, so
    // a refusal arrives as an alert on the first read.
    if (error.category() == asio::error::get_ssl_category()) {
      return Error(WireErrc::kTls,
                   std::string(what) + " " + endpoint.host + " failed: " + error.message());
    }
    const bool closed = error == bhttp::error::end_of_stream || error == asio::error::eof ||
                        error == asio::error::connection_reset;
    return Error(closed ? WireErrc::kUnavailable : WireErrc::kProtocol,
                 std::string(what) + " " + endpoint.host + " failed: " + error.message());
  }

  crypto::tls::Context tls;  // outlives `ssl`, which shares its SSL_CTX
  asio::io_context ioc;
  asio::ssl::context ssl;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  Endpoint endpoint;
  std::chrono::milliseconds timeout;
  bool open = false;
};

HttpsConnection::HttpsConnection(std::unique_ptr<State> state) : state_(std::move(state)) {}
HttpsConnection::HttpsConnection(HttpsConnection&&) noexcept = default;
HttpsConnection& HttpsConnection::operator=(HttpsConnection&&) noexcept = default;

HttpsConnection::~HttpsConnection() {
  if (!state_ || !state_->open) return;
  State& s = *state_;
  // A close_notify is a courtesy: failing to send one must not escape a destructor.
  try {
    s.Run([&s]() -> asio::awaitable<void> {
      beast::error_code ignored;
      beast::get_lowest_layer(s.stream).expires_after(std::chrono::seconds(2));
      co_await s.stream.async_shutdown(redirect_error(use_awaitable, ignored));
    }());
  } catch (const std::exception& e) {
    log::Debug("closing a TLS connection: {}", e.what());
  }
}

Expected<HttpResponse> HttpsConnection::Send(
    std::string_view method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (!state_ || !state_->open) {
    return Fail(WireErrc::kUnavailable, "the connection is closed");
  }
  State& s = *state_;
  bhttp::request<bhttp::string_body> request;
  request.version(11);
  // Beast knows the standard methods by enum only; others go by their text.
  request.method_string({method.data(), method.size()});
  request.target({target.data(), target.size()});
  request.set(bhttp::field::host, s.endpoint.host);
  request.set(bhttp::field::user_agent, "aspis");
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = std::string(body);
  request.prepare_payload();

  Expected<HttpResponse> result = Fail(WireErrc::kUnavailable, "request did not run");
  s.Run([&]() -> asio::awaitable<void> {
    beast::error_code error;
    beast::get_lowest_layer(s.stream).expires_after(s.timeout);
    co_await bhttp::async_write(s.stream, request, redirect_error(use_awaitable, error));
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::size_t{16} << 20);
    if (!error) {
      co_await bhttp::async_read(s.stream, s.buffer, parser, redirect_error(use_awaitable, error));
    }
    if (error) {
      s.open = false;
      result = std::unexpected(s.Failure(error, "request to"));
      co_return;
    }
    auto& response = parser.get();
    if (!response.keep_alive()) s.open = false;
    const auto content_type = response[bhttp::field::content_type];
    const auto retry_after = response[bhttp::field::retry_after];
    result = HttpResponse{static_cast<int>(response.result_int()),
                          std::string(content_type.data(), content_type.size()),
                          std::move(response.body()),
                          ParseRetryAfter({retry_after.data(), retry_after.size()})};
  }());
  return result;
}

Expected<HttpsConnection> HttpsClient::Connect() const {
  auto state = std::make_unique<HttpsConnection::State>(tls_, endpoint_, timeout_);
  // Name checks: SNI, and the certificate must name the host (as a DNS name or an IP address).
  SSL* handle = state->stream.native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(handle);
  beast::error_code ec;
  asio::ip::make_address(endpoint_.host, ec);
  const bool is_ip = !ec;
  if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str()) != 1
            : (SSL_set_tlsext_host_name(handle, endpoint_.host.c_str()) != 1 ||
               X509_VERIFY_PARAM_set1_host(param, endpoint_.host.c_str(), 0) != 1)) {
    return Fail(WireErrc::kProtocol, "cannot use \"" + endpoint_.host + "\" as a TLS peer name");
  }

  Expected<void> result;
  HttpsConnection::State& s = *state;
  s.Run([&]() -> asio::awaitable<void> {
    auto& tcp_stream = beast::get_lowest_layer(s.stream);
    beast::error_code error;
    tcp::resolver resolver(s.ioc);
    tcp_stream.expires_after(timeout_);
    const auto endpoints = co_await resolver.async_resolve(
        endpoint_.host, std::to_string(endpoint_.port), redirect_error(use_awaitable, error));
    if (!error) co_await tcp_stream.async_connect(endpoints, redirect_error(use_awaitable, error));
    if (error) {
      result = error == beast::error::timeout
                   ? std::unexpected(Timeout("connecting to", endpoint_))
                   : Fail(WireErrc::kUnavailable, "cannot connect to " + endpoint_.host + ":" +
                                                      std::to_string(endpoint_.port) + ": " +
                                                      error.message());
      co_return;
    }
    co_await s.stream.async_handshake(asio::ssl::stream_base::client,
                                      redirect_error(use_awaitable, error));
    if (error) {
      const long verify = SSL_get_verify_result(handle);
      result = Fail(WireErrc::kTls, "TLS handshake with " + endpoint_.host + " failed: " +
                                        (verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                                             : error.message()));
    }
  }());
  if (!result) return std::unexpected(result.error());
  state->open = true;
  return HttpsConnection(std::move(state));
}

Expected<HttpResponse> HttpsClient::Send(
    std::string_view method, std::string_view target, std::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers) const {
  auto connection = Connect();
  if (!connection) return std::unexpected(connection.error());
  return connection->Send(method, target, body, headers);
}

}  // namespace aspis::wire
