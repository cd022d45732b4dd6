#include "service/http/server.hpp"

// Boost 1.74's Asio uses std::exchange without including <utility>.
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <openssl/ssl.h>

#include "core/log.hpp"
#include "crypto/sha256.hpp"

namespace aspis::service::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::redirect_error;
using asio::use_awaitable;
using Stream = beast::ssl_stream<beast::tcp_stream>;

Error ServerError(std::string message) {
  return Error(std::make_error_code(std::errc::io_error), std::move(message));
}

// Beast 1.74 has its own string_view type.
std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Request ToRequest(const bhttp::request<bhttp::string_body>& in,
                  const std::optional<crypto::Certificate>& peer) {
  Request out;
  out.method = std::string(View(in.method_string()));
  const std::string_view target = View(in.target());
  const std::size_t question = target.find('?');
  out.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) out.query = std::string(target.substr(question + 1));
  for (const auto& field : in) {
    out.headers[Lowercase(View(field.name_string()))] = std::string(View(field.value()));
  }
  out.body = in.body();
  out.client_certificate = peer;
  return out;
}

bhttp::response<bhttp::string_body> ToBeast(Response&& response, unsigned version,
                                            bool keep_alive) {
  bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(response.status), version};
  out.set(bhttp::field::server, "aspis-service");
  out.set(bhttp::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) out.set(name, value);
  out.body() = std::move(response.body);
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

// The rate-limit key of a client address: the IPv4 address, or the /64 prefix of an IPv6 one
// (one host commonly holds a whole /64, so single IPv6 addresses are free to rotate through).
std::string AddressKey(const asio::ip::address& address) {
  if (address.is_v6()) {
    const asio::ip::address_v6 v6 = address.to_v6();
    if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
    asio::ip::address_v6::bytes_type bytes = v6.to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), std::uint8_t{0});
    return asio::ip::address_v6(bytes).to_string() + "/64";
  }
  return address.to_string();
}

// The rate-limit key of a verified client certificate: its one SAN URI, which names the device
// (urn:aspis:tenant:T:device:D, so a device's successive certificates share a bucket), and its
// policy OIDs (runtime or app); else its SHA-256 fingerprint; empty when neither can be had.
std::string DeviceKey(const crypto::Certificate& certificate) {
  const std::vector<std::string> uris = certificate.SanUris();
  if (uris.size() == 1) {
    std::vector<std::string> policies = certificate.PolicyOids();
    std::sort(policies.begin(), policies.end());
    return fmt::format("uri:{} policies:{}", uris.front(), fmt::join(policies, ","));
  }
  auto digest = crypto::Sha256Of(certificate.Der());
  return digest ? "sha256:" + crypto::ToHex(*digest) : std::string();
}

// One connection; everything touching it runs on its strand.
struct Connection {
  Connection(Stream s, std::string address)
      : stream(std::move(s)), address_key(std::move(address)) {}
  Stream stream;
  const std::string address_key;  // see AddressKey
  bool busy = false;              // a request is being read past its headers, handled or answered
};

std::unique_ptr<RateLimiter> NewLimiter(const std::optional<RateLimit>& limit,
                                        const RateLimits& limits) {
  if (!limit) return nullptr;
  const Clock& clock = limits.clock != nullptr ? *limits.clock : SystemClock::Instance();
  return std::make_unique<RateLimiter>(*limit, limits.max_tracked_keys, clock);
}

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerConfig config, Router router, Observer observer)
      : config_(std::move(config)),
        router_(std::move(router)),
        observer_(std::move(observer)),
        client_limiter_(NewLimiter(config_.limits.per_client, config_.limits)),
        device_limiter_(NewLimiter(config_.limits.per_device, config_.limits)),
        ssl_(NewSslContext(config_.tls)),
        acceptor_(ioc_) {}

  ~ServerImpl() override { Stop(); }

  Expected<void> Listen() {
    beast::error_code ec;
    const auto address = asio::ip::make_address(config_.host, ec);
    if (ec) return std::unexpected(ServerError("\"" + config_.host + "\" is not an IP address"));
    const tcp::endpoint endpoint(address, config_.port);
    try {
      acceptor_.open(endpoint.protocol());
      acceptor_.set_option(asio::socket_base::reuse_address(true));
      acceptor_.bind(endpoint);
      acceptor_.listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
      return std::unexpected(ServerError("cannot listen on " + config_.host + ":" +
                                         std::to_string(config_.port) + ": " + e.what()));
    }
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, Accept(), asio::detached);
    const unsigned threads =
        config_.threads != 0 ? config_.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    log::Info("serving HTTPS on {}:{} with {} threads", config_.host, port_, threads);
    return {};
  }

  std::uint16_t port() const override { return port_; }

  std::size_t open_connections() const override {
    const std::lock_guard lock(connections_mutex_);
    return active_;
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    asio::post(ioc_, [this] {
      beast::error_code ec;
      if (acceptor_.close(ec)) log::Debug("closing the listener: {}", ec.message());
    });
    {
      const std::lock_guard lock(connections_mutex_);
      for (const auto& weak : connections_) {
        if (auto connection = weak.lock()) CloseIfIdle(connection);
      }
    }
    {
      // Requests still running after the grace period are cut off.
      std::unique_lock lock(connections_mutex_);
      idle_.wait_for(lock, config_.shutdown_grace, [this] { return active_ == 0; });
    }
    ioc_.stop();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    threads_.clear();
  }

 private:
  static asio::ssl::context NewSslContext(const crypto::tls::Context& tls) {
    // Asio takes ownership of one reference; up_ref cannot fail (it only counts).
    static_cast<void>(SSL_CTX_up_ref(tls.native()));
    return asio::ssl::context(tls.native());
  }

  void CloseIfIdle(const std::shared_ptr<Connection>& connection) {
    asio::post(connection->stream.get_executor(), [connection] {
      if (!connection->busy) beast::get_lowest_layer(connection->stream).cancel();
    });
  }

  awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket(asio::make_strand(ioc_));
      co_await acceptor_.async_accept(socket, redirect_error(use_awaitable, ec));
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        log::Warning("accepting a connection failed: {}", ec.message());
        continue;
      }
      const auto remote = socket.remote_endpoint(ec);
      std::string address = ec ? "unknown" : AddressKey(remote.address());
      if (!Admit(address)) {
        // Counted before closing, so whoever sees the close also sees the count. Closed before
        // the handshake, so refusing costs no cryptography.
        if (observer_.connection_refused) observer_.connection_refused();
        if (socket.close(ec)) log::Debug("closing a refused connection: {}", ec.message());
        continue;
      }
      auto connection =
          std::make_shared<Connection>(Stream(std::move(socket), ssl_), std::move(address));
      {
        const std::lock_guard lock(connections_mutex_);
        std::erase_if(connections_, [](const auto& weak) { return weak.expired(); });
        connections_.push_back(connection);
      }
      asio::co_spawn(connection->stream.get_executor(), Serve(connection),
                     [this, address = connection->address_key](const std::exception_ptr&) {
                       const std::lock_guard lock(connections_mutex_);
                       if (const auto it = per_client_.find(address); --it->second == 0) {
                         per_client_.erase(it);
                       }
                       if (--active_ == 0) idle_.notify_all();
                     });
    }
  }

  // Counts a new connection from `address` in, unless max_connections are open, or
  // max_connections_per_client from that address.
  bool Admit(const std::string& address) {
    const std::lock_guard lock(connections_mutex_);
    if (active_ >= config_.max_connections) return false;
    std::size_t& from_address = per_client_[address];
    if (from_address >= config_.max_connections_per_client) {
      if (from_address == 0) per_client_.erase(address);
      return false;
    }
    ++from_address;
    ++active_;
    return true;
  }

  // The limiter and key that a request to `pattern` counts against; null when none.
  std::pair<RateLimiter*, std::string_view> LimiterFor(std::string_view pattern,
                                                       const Connection& connection,
                                                       const std::string& device_key) const {
    const RateLimits& limits = config_.limits;
    const bool device_route =
        !limits.device_route_prefix.empty() && pattern.starts_with(limits.device_route_prefix);
    if (device_route && !device_key.empty()) return {device_limiter_.get(), device_key};
    const bool client_route = std::find(limits.client_routes.begin(), limits.client_routes.end(),
                                        pattern) != limits.client_routes.end();
    if ((client_route || device_route) && client_limiter_) {
      return {client_limiter_.get(), connection.address_key};
    }
    return {nullptr, {}};
  }

  // 429 when the client is over its limit for `pattern`; nullopt when the request may run.
  std::optional<Response> OverLimit(std::string_view pattern, const Connection& connection,
                                    const std::string& device_key) const {
    const auto [limiter, key] = LimiterFor(pattern, connection, device_key);
    if (limiter == nullptr) return std::nullopt;
    const RateLimiter::Decision decision = limiter->Acquire(key);
    if (decision.allowed) return std::nullopt;
    const std::string seconds = std::to_string(decision.retry_after.count());
    Response response = Response::Problem(
        429, "Too many requests",
        fmt::format("this client sent more requests than the service accepts; retry after {} s",
                    seconds));
    response.headers.emplace_back("Retry-After", seconds);
    return response;
  }

  awaitable<void> Serve(std::shared_ptr<Connection> connection) {
    Stream& stream = connection->stream;
    auto& tcp_stream = beast::get_lowest_layer(stream);
    beast::error_code ec;
    tcp_stream.expires_after(config_.handshake_timeout);
    co_await stream.async_handshake(asio::ssl::stream_base::server,
                                    redirect_error(use_awaitable, ec));
    if (ec) co_return;
    const auto peer = crypto::tls::PeerCertificate(stream.native_handle());
    const std::string device_key = peer ? DeviceKey(*peer) : std::string();
    beast::flat_buffer buffer;
    while (!stopping_) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(config_.max_header_bytes));
      parser.body_limit(config_.max_body_bytes);
      connection->busy = false;
      tcp_stream.expires_after(config_.request_timeout);
      co_await bhttp::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
      connection->busy = true;
      if (!ec)
        co_await bhttp::async_read(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (ec) {
        const Response problem = ReadProblem(ec);
        if (problem.status != 0) {
          co_await Write(stream, Response(problem), 11, false);
        }
        break;
      }
      const auto start = std::chrono::steady_clock::now();
      auto& message = parser.get();
      Request request = ToRequest(message, peer);
      const Router::Match match = router_.Find(request);
      auto limited = OverLimit(match.pattern, *connection, device_key);
      Response response = limited ? std::move(*limited) : router_.Handle(match, request);
      const int status = response.status;
      const bool keep_alive = message.keep_alive() && !stopping_;
      const bool written =
          co_await Write(stream, std::move(response), message.version(), keep_alive);
      if (observer_.request) {
        observer_.request(MethodLabel(request.method),
                          match.pattern.empty() ? kOtherRoute : std::string_view(match.pattern),
                          status, std::chrono::steady_clock::now() - start);
      }
      if (!written || !keep_alive) break;
    }
    tcp_stream.expires_after(std::chrono::seconds(2));
    co_await stream.async_shutdown(redirect_error(use_awaitable, ec));
  }

  // The problem to answer a request that could not be read with; status 0 when the connection
  // should just close (the client went away, timed out, or the server is stopping).
  static Response ReadProblem(const beast::error_code& ec) {
    if (ec == bhttp::error::body_limit) {
      return Response::Problem(413, "Request too large", "the request body exceeds the limit");
    }
    if (ec == bhttp::error::header_limit) {
      return Response::Problem(431, "Request header too large",
                               "the request headers exceed the limit");
    }
    const auto& parse_errors = bhttp::make_error_code(bhttp::error::end_of_stream).category();
    if (ec.category() == parse_errors && ec != bhttp::error::end_of_stream &&
        ec != bhttp::error::partial_message) {
      return Response::Problem(400, "Malformed request", "the request is not valid HTTP/1.1");
    }
    return Response{0, "", "", {}};
  }

  awaitable<bool> Write(Stream& stream, Response response, unsigned version,
                        bool keep_alive) const {
    auto message = ToBeast(std::move(response), version, keep_alive);
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(config_.request_timeout);
    co_await bhttp::async_write(stream, message, redirect_error(use_awaitable, ec));
    co_return !ec;
  }

  ServerConfig config_;
  Router router_;
  Observer observer_;
  std::unique_ptr<RateLimiter> client_limiter_;  // null when not limited
  std::unique_ptr<RateLimiter> device_limiter_;
  asio::io_context ioc_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::uint16_t port_ = 0;
  mutable std::mutex connections_mutex_;
  std::vector<std::weak_ptr<Connection>> connections_;  // guarded by connections_mutex_
  std::size_t active_ = 0;  // connections being served; guarded by connections_mutex_
  // Connections being served per address key; guarded by connections_mutex_.
  std::unordered_map<std::string, std::size_t> per_client_;
  std::condition_variable idle_;
};

}  // namespace

std::string_view MethodLabel(std::string_view method) {
  static constexpr std::array<std::string_view, 7> kMethods = {"GET",    "HEAD",  "POST",   "PUT",
                                                               "DELETE", "PATCH", "OPTIONS"};
  const auto* known = std::find(kMethods.begin(), kMethods.end(), method);
  return known != kMethods.end() ? *known : std::string_view("other");
}

Expected<std::unique_ptr<Server>> Server::Start(ServerConfig config, Router router,
                                                Observer observer) {
  auto server =
      std::make_unique<ServerImpl>(std::move(config), std::move(router), std::move(observer));
  if (auto ok = server->Listen(); !ok) return std::unexpected(ok.error());
  return server;
}

}  // namespace aspis::service::http
