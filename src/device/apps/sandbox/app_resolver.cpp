#include "device/apps/sandbox/app_resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

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
  // The name as asked, never with the device's search domains appended (this thread's resolver
  // options: each lookup has a thread of its own).
  if ((_res.options & RES_INIT) == 0) res_init();
  _res.options &= ~static_cast<unsigned long>(RES_DNSRCH | RES_DEFNAMES);
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

struct AppResolver::Served {
  IpAddress address;
  Fd socket;
  std::shared_ptr<AppNetwork> app;
  std::string owner;
};

std::vector<IpAddress> AppResolver::LookupAt(std::span<const in_addr> servers,
                                             const std::string& name, bool v6) {
  // A resolver state of this lookup's own: the servers asked are these, the name as asked.
  struct __res_state state {};
  if (::res_ninit(&state) != 0) return {};
  // UDP only, with a bounded wait: glibc waits for a TCP answer without end, and a truncated one
  // holds the addresses that fit. Two tries of two seconds a server.
  state.options &= ~static_cast<unsigned long>(RES_DNSRCH | RES_DEFNAMES);
  state.options |= RES_IGNTC;
  state.retrans = 2;
  state.retry = 2;
  state.nscount = static_cast<int>(std::min<std::size_t>(servers.size(), MAXNS));
  for (int i = 0; i < state.nscount; ++i) {
    state.nsaddr_list[i] = sockaddr_in{.sin_family = AF_INET,
                                       .sin_port = htons(53),
                                       .sin_addr = servers[static_cast<std::size_t>(i)],
                                       .sin_zero = {}};
  }
  std::array<unsigned char, 4096> answer{};
  const int size = ::res_nquery(&state, name.c_str(), ns_c_in, v6 ? ns_t_aaaa : ns_t_a,
                                answer.data(), static_cast<int>(answer.size()));
  ::res_nclose(&state);
  // A size past the buffer is the length of an answer that did not fit (glibc's way to say so).
  ns_msg message{};
  if (size <= 0 || static_cast<std::size_t>(size) > answer.size() ||
      ::ns_initparse(answer.data(), size, &message) != 0) {
    return {};
  }
  std::vector<IpAddress> out;
  for (int i = 0; i < ns_msg_count(message, ns_s_an); ++i) {
    ns_rr record{};
    if (::ns_parserr(&message, ns_s_an, i, &record) != 0) break;
    const std::size_t length = ns_rr_rdlen(record);
    IpAddress address;
    if (!v6 && ns_rr_type(record) == ns_t_a && length == 4) {
      in_addr v4{};
      std::memcpy(&v4, ns_rr_rdata(record), 4);
      address = IpAddress::FromV4(v4);
    } else if (v6 && ns_rr_type(record) == ns_t_aaaa && length == 16) {
      in6_addr v6_address{};
      std::memcpy(&v6_address, ns_rr_rdata(record), 16);
      address = IpAddress::FromV6(v6_address);
    } else {
      continue;  // a CNAME on the way, or a record not asked for
    }
    if (std::find(out.begin(), out.end(), address) == out.end()) out.push_back(address);
  }
  return out;
}

std::vector<IpAddress> AppResolver::Find(const std::string& name, bool v6) const {
  // "localhost" is the device's own, answered from its hosts file: never a network's to say.
  std::vector<in_addr> servers =
      servers_ && name != "localhost" ? servers_() : std::vector<in_addr>();
  std::erase_if(servers, [&](in_addr server) { return InRange(IpAddress::FromV4(server)); });
  return servers.empty() ? lookup_(name, v6) : LookupAt(servers, name, v6);
}

Expected<std::unique_ptr<AppResolver>> AppResolver::Start(const std::string& first,
                                                          std::uint16_t port, Lookup lookup,
                                                          Servers servers) {
  const auto address = IpAddress::Parse(first);
  if (!address || address->v6 || address->bytes[0] != 127) {
    return Fail(AppsErrc::kSandbox,
                "the apps' resolvers' first address " + first + " is not a loopback IPv4 one");
  }
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (epoll.get() < 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot serve the apps' resolvers: " + std::generic_category().message(errno));
  }
  return std::unique_ptr<AppResolver>(
      new AppResolver(*address, port, std::move(epoll), std::move(lookup), std::move(servers)));
}

AppResolver::AppResolver(IpAddress first, std::uint16_t port, Fd epoll, Lookup lookup,
                         Servers servers)
    : first_(first),
      port_(port),
      epoll_(std::move(epoll)),
      wake_(::eventfd(0, EFD_CLOEXEC)),
      lookup_(std::move(lookup)),
      servers_(std::move(servers)) {
  epoll_event wake{.events = EPOLLIN, .data = {.u64 = 0}};
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &wake);
  thread_ = std::thread([this] { Serve(); });
}

AppResolver::~AppResolver() {
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
  thread_.join();
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return workers_ == 0; });
}

bool AppResolver::InRange(const IpAddress& address) const {
  return !address.v6 && address.bytes[0] == first_.bytes[0] && address.bytes[1] == first_.bytes[1];
}

Expected<AppResolver::Endpoint> AppResolver::Open(const std::string& owner,
                                                  std::shared_ptr<AppNetwork> app) {
  std::lock_guard lock(mutex_);
  const auto taken = [this](const IpAddress& address) {
    return std::any_of(served_.begin(), served_.end(),
                       [&](const auto& entry) { return entry.second->address == address; });
  };
  const unsigned from = (unsigned{first_.bytes[2]} << 8) | first_.bytes[3];
  for (unsigned host = from; host <= 0xffff; ++host) {
    IpAddress address = first_;
    address.bytes[2] = static_cast<std::uint8_t>(host >> 8);
    address.bytes[3] = static_cast<std::uint8_t>(host & 0xff);
    if (taken(address)) continue;
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(port_);
    std::memcpy(&local.sin_addr, address.bytes.data(), 4);
    Fd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (socket.get() < 0) break;
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
      if (errno == EADDRINUSE) continue;  // another process's
      break;
    }
    const std::uint64_t id = next_id_++;
    epoll_event ready{.events = EPOLLIN, .data = {.u64 = id}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, socket.get(), &ready) != 0) break;
    served_[id] =
        std::make_shared<Served>(Served{address, std::move(socket), std::move(app), owner});
    return Endpoint(this, id, address);
  }
  return Fail(AppsErrc::kSandbox, "no address is free for an app's resolver from " +
                                      first_.ToString() + " port " + std::to_string(port_) + ": " +
                                      std::generic_category().message(errno));
}

void AppResolver::Close(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  const auto it = served_.find(id);
  if (it == served_.end()) return;
  // The socket closes once the serving thread lets go of it; lookups still running hold only a
  // weak reference, and answer no one.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->socket.get(), nullptr);
  served_.erase(it);
}

AppResolver::Endpoint::Endpoint(Endpoint&& other) noexcept
    : resolver_(std::exchange(other.resolver_, nullptr)),
      id_(other.id_),
      address_(other.address_) {}

AppResolver::Endpoint::~Endpoint() {
  if (resolver_ != nullptr) resolver_->Close(id_);
}

void AppResolver::Serve() {
  // Level-triggered: a socket with more queued is ready again after the others, so each round
  // takes one query from each app that sent one, however much one app sends.
  std::array<epoll_event, 64> events{};
  std::array<std::uint8_t, 512> query{};
  for (;;) {
    const int ready = ::epoll_wait(epoll_.get(), events.data(), events.size(), -1);
    if (ready < 0 && errno != EINTR) return;
    for (int i = 0; i < ready; ++i) {
      const std::uint64_t id = events[static_cast<std::size_t>(i)].data.u64;
      if (id == 0) return;
      std::shared_ptr<Served> served;
      {
        std::lock_guard lock(mutex_);
        if (const auto it = served_.find(id); it != served_.end()) served = it->second;
      }
      if (!served) continue;
      sockaddr_in from{};
      socklen_t from_size = sizeof(from);
      const ssize_t got = ::recvfrom(served->socket.get(), query.data(), query.size(), MSG_DONTWAIT,
                                     reinterpret_cast<sockaddr*>(&from), &from_size);
      if (got <= 0 || from.sin_family != AF_INET) continue;
      Answer(served, std::span(query.data(), static_cast<std::size_t>(got)), from);
    }
  }
}

namespace {

void Send(int socket, const std::vector<std::uint8_t>& answer, const sockaddr_in& to) {
  if (answer.empty()) return;
  (void)::sendto(socket, answer.data(), answer.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&to), sizeof(to));
}

}  // namespace

void AppResolver::Answer(const std::shared_ptr<Served>& served, std::span<const std::uint8_t> query,
                         const sockaddr_in& from) {
  const auto question = ParseDnsQuery(query);
  if (!question) return;
  const int socket = served->socket.get();
  const auto reply = [&](int rcode) {
    Send(socket, DnsReply(query, *question, rcode, {}, kAnswerLife), from);
  };
  AppNetwork& app = *served->app;
  // Only a plain host name: an escaped byte ("evil\\.example.com", a dot inside a label) would
  // pass the suffix check as text and name another domain to the device's resolver.
  const bool plain = std::all_of(question->name.begin(), question->name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
  const char* refused = !plain                                   ? " (not a host name)"
                        : !app.policy.AllowsName(question->name) ? " (not in AllowedConnections)"
                                                                 : nullptr;
  if (refused != nullptr) {
    if (app.denials) {
      app.denials({"lookup", text::Printable(text::Truncated(question->name, 253)) + refused});
    }
    return reply(ns_r_refused);
  }
  if (question->record_class != ns_c_in ||
      (question->type != ns_t_a && question->type != ns_t_aaaa)) {
    return reply(ns_r_noerror);  // no such records: none asked for
  }
  {
    std::lock_guard lock(mutex_);
    int& in_flight = lookups_[served->owner];
    if (in_flight >= kLookupsPerApp) return reply(ns_r_servfail);
    ++in_flight;
    ++workers_;
  }
  std::vector<std::uint8_t> copy(query.begin(),
                                 query.begin() + static_cast<std::ptrdiff_t>(question->end));
  std::thread([this, endpoint = std::weak_ptr<Served>(served), app = served->app,
               owner = served->owner, asked = *question, copy = std::move(copy), from] {
    auto addresses = Find(asked.name, asked.type == ns_t_aaaa);
    // A network's DNS may answer anything for a name: it never opens the device itself (DNS
    // rebinding: loopback, link-local, or any address of the device's), except for "localhost",
    // nor sends to many hosts at once.
    std::erase_if(addresses, [&](const IpAddress& a) {
      return a.IsGroup() || (asked.name != "localhost" && (a.IsLocal() || RoutesToTheDevice(a)));
    });
    if (addresses.size() > kMaxDnsAnswers) addresses.resize(kMaxDnsAnswers);
    const auto until = NetworkPolicy::Clock::now() + kAnswerLife;
    for (const auto& address : addresses) app->policy.Learn(address, until);
    if (const auto still = endpoint.lock()) {
      Send(still->socket.get(), DnsReply(copy, asked, ns_r_noerror, addresses, kAnswerLife), from);
    }
    std::lock_guard lock(mutex_);
    if (--lookups_[owner] == 0) lookups_.erase(owner);
    if (--workers_ == 0) idle_.notify_all();
  }).detach();
}

}  // namespace aspis::device::apps::sandbox
