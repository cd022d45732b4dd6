#include "device/apps/sandbox/app_resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>
#include <resolv.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "core/text.hpp"
#include "device/apps/errors.hpp"
#include "device/apps/sandbox/dns_message.hpp"

namespace aspis::device::apps::sandbox {

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { ::freeaddrinfo(info); }
};

}  // namespace

std::vector<IpAddress> AppResolver::SystemLookup(const std::string& name, bool v6) {
  addrinfo hints{};
  hints.ai_family = v6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  if (::getaddrinfo(name.c_str(), nullptr, &hints, &raw) != 0) return {};
  std::unique_ptr<addrinfo, AddrInfoDeleter> list(raw);
  std::vector<IpAddress> out;
  for (const addrinfo* it = raw; it != nullptr; it = it->ai_next) {
    const IpAddress address =
        it->ai_family == AF_INET6
            ? IpAddress::FromV6(reinterpret_cast<const sockaddr_in6*>(it->ai_addr)->sin6_addr)
            : IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(it->ai_addr)->sin_addr);
    if (address.v6 == v6 && std::find(out.begin(), out.end(), address) == out.end()) {
      out.push_back(address);
    }
  }
  return out;
}

Expected<std::unique_ptr<AppResolver>> AppResolver::Start(const std::string& address,
                                                          std::uint16_t port, Lookup lookup) {
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &local.sin_addr) != 1) {
    return Fail(AppsErrc::kSandbox, "the apps' resolver address " + address + " is not IPv4");
  }
  Fd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (socket.get() < 0 ||
      ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
    return Fail(AppsErrc::kSandbox, "cannot serve the apps' resolver on " + address + ":" +
                                        std::to_string(port) + ": " +
                                        std::generic_category().message(errno));
  }
  return std::unique_ptr<AppResolver>(
      new AppResolver(address, std::move(socket), std::move(lookup)));
}

AppResolver::AppResolver(std::string address, Fd socket, Lookup lookup)
    : address_(std::move(address)),
      socket_(std::move(socket)),
      wake_(::eventfd(0, EFD_CLOEXEC)),
      lookup_(std::move(lookup)) {
  thread_ = std::thread([this] { Serve(); });
}

AppResolver::~AppResolver() {
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
  thread_.join();
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return workers_ == 0; });
}

void AppResolver::Send(const std::vector<std::uint8_t>& answer, const sockaddr_in& to) const {
  if (answer.empty()) return;
  (void)::sendto(socket_.get(), answer.data(), answer.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&to), sizeof(to));
}

void AppResolver::Register(std::uint16_t port, const std::shared_ptr<AppNetwork>& app) {
  std::lock_guard lock(mutex_);
  ports_[port] = app;
}

void AppResolver::Serve() {
  std::array<std::uint8_t, 512> query{};
  for (;;) {
    std::array<pollfd, 2> fds{{{socket_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    sockaddr_in from{};
    socklen_t from_size = sizeof(from);
    const ssize_t got = ::recvfrom(socket_.get(), query.data(), query.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &from_size);
    if (got <= 0 || from.sin_family != AF_INET) continue;
    Answer(query.data(), static_cast<std::size_t>(got), ntohs(from.sin_port), from);
  }
}

void AppResolver::Answer(const std::uint8_t* query, std::size_t size, std::uint16_t port,
                         const sockaddr_in& from) {
  const std::span<const std::uint8_t> bytes(query, size);
  const auto question = ParseDnsQuery(bytes);
  if (!question) return;
  const auto reply = [&](int rcode) {
    Send(DnsReply(bytes, *question, rcode, {}, kAnswerLife), from);
  };
  std::shared_ptr<AppNetwork> app;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = ports_.find(port); it != ports_.end()) app = it->second.lock();
  }
  if (!app) return reply(ns_r_refused);
  if (!app->policy.AllowsName(question->name)) {
    if (app->denials) {
      app->denials({"lookup", text::Printable(text::Truncated(question->name, 253)) +
                                  " (not in AllowedConnections)"});
    }
    return reply(ns_r_refused);
  }
  if (question->record_class != ns_c_in ||
      (question->type != ns_t_a && question->type != ns_t_aaaa)) {
    return reply(ns_r_noerror);  // no such records: none asked for
  }
  {
    std::lock_guard lock(mutex_);
    if (lookups_[app.get()] >= kLookupsPerApp) return reply(ns_r_servfail);
    ++lookups_[app.get()];
    ++workers_;
  }
  std::vector<std::uint8_t> copy(bytes.begin(),
                                 bytes.begin() + static_cast<std::ptrdiff_t>(question->end));
  std::thread([this, app, asked = *question, copy = std::move(copy), from] {
    auto addresses = lookup_(asked.name, asked.type == ns_t_aaaa);
    // A network's DNS may answer anything for a name: it never opens the device's own
    // addresses (DNS rebinding), except for "localhost" itself.
    if (asked.name != "localhost") {
      std::erase_if(addresses, [](const IpAddress& a) { return a.IsLocal(); });
    }
    if (addresses.size() > kMaxDnsAnswers) addresses.resize(kMaxDnsAnswers);
    const auto until = NetworkPolicy::Clock::now() + kAnswerLife;
    for (const auto& address : addresses) app->policy.Learn(address, until);
    Send(DnsReply(copy, asked, ns_r_noerror, addresses, kAnswerLife), from);
    std::lock_guard lock(mutex_);
    if (--lookups_[app.get()] == 0) lookups_.erase(app.get());
    if (--workers_ == 0) idle_.notify_all();
  }).detach();
}

}  // namespace aspis::device::apps::sandbox
