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

namespace aspis::device::apps::sandbox {

namespace {

constexpr std::size_t kHeader = 12;
constexpr std::size_t kMaxAnswers = 8;  // keeps every answer within 512 bytes: never truncated

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { ::freeaddrinfo(info); }
};

std::vector<std::uint8_t> Reply(const std::uint8_t* query, std::size_t question_end, int rcode,
                                const std::vector<IpAddress>& addresses, int type) {
  std::vector<std::uint8_t> out(query, query + question_end);
  const bool rd = (query[2] & 0x01) != 0;
  out[2] = static_cast<std::uint8_t>(0x80 | (query[2] & 0x78) | (rd ? 0x01 : 0));  // QR, opcode
  out[3] = static_cast<std::uint8_t>(0x80 | rcode);                                // RA, rcode
  ::ns_put16(static_cast<unsigned>(addresses.size()), out.data() + 6);             // answers
  ::ns_put16(0, out.data() + 8);                                                   // authority
  ::ns_put16(0, out.data() + 10);  // additional (no EDNS)
  for (const auto& address : addresses) {
    const std::size_t length = address.v6 ? 16 : 4;
    std::array<std::uint8_t, 12> record{};
    ::ns_put16(0xc000 | kHeader, record.data());  // the question's name
    ::ns_put16(static_cast<unsigned>(type), record.data() + 2);
    ::ns_put16(ns_c_in, record.data() + 4);
    ::ns_put32(static_cast<unsigned long>(AppResolver::kAnswerLife.count()), record.data() + 6);
    ::ns_put16(static_cast<unsigned>(length), record.data() + 10);
    out.insert(out.end(), record.begin(), record.end());
    out.insert(out.end(), address.bytes.begin(), address.bytes.begin() + length);
  }
  return out;
}

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
  ns_msg message{};
  ns_rr question{};
  if (::ns_initparse(query, static_cast<int>(size), &message) != 0 ||
      ::ns_msg_getflag(message, ns_f_qr) != 0 || ns_msg_count(message, ns_s_qd) != 1 ||
      ::ns_parserr(&message, ns_s_qd, 0, &question) != 0) {
    return;  // not one question: nothing a C library's resolver sends
  }
  const int name_size = ::dn_skipname(query + kHeader, query + size);
  if (name_size < 0) return;
  const std::size_t question_end = kHeader + static_cast<std::size_t>(name_size) + 4;
  std::shared_ptr<AppNetwork> app;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = ports_.find(port); it != ports_.end()) app = it->second.lock();
  }
  if (!app) return Send(Reply(query, question_end, ns_r_refused, {}, 0), from);
  std::string name = ns_rr_name(question);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (!app->policy.AllowsName(name)) {
    if (app->denials) {
      app->denials(
          {"lookup", text::Printable(text::Truncated(name, 253)) + " (not in AllowedConnections)"});
    }
    return Send(Reply(query, question_end, ns_r_refused, {}, 0), from);
  }
  const int type = ns_rr_type(question);
  if (ns_rr_class(question) != ns_c_in || (type != ns_t_a && type != ns_t_aaaa)) {
    // No such records: none asked for.
    return Send(Reply(query, question_end, ns_r_noerror, {}, 0), from);
  }
  {
    std::lock_guard lock(mutex_);
    if (lookups_[app.get()] >= kLookupsPerApp) {
      return Send(Reply(query, question_end, ns_r_servfail, {}, 0), from);
    }
    ++lookups_[app.get()];
    ++workers_;
  }
  std::vector<std::uint8_t> copy(query, query + question_end);
  std::thread([this, app, name, type, copy = std::move(copy), from] {
    auto addresses = lookup_(name, type == ns_t_aaaa);
    // A network's DNS may answer anything for a name: it never opens the device's own
    // addresses (DNS rebinding), except for "localhost" itself.
    if (name != "localhost") {
      std::erase_if(addresses, [](const IpAddress& a) { return a.IsLocal(); });
    }
    if (addresses.size() > kMaxAnswers) addresses.resize(kMaxAnswers);
    const auto until = NetworkPolicy::Clock::now() + kAnswerLife;
    for (const auto& address : addresses) app->policy.Learn(address, until);
    Send(Reply(copy.data(), copy.size(), ns_r_noerror, addresses, type), from);
    std::lock_guard lock(mutex_);
    if (--lookups_[app.get()] == 0) lookups_.erase(app.get());
    if (--workers_ == 0) idle_.notify_all();
  }).detach();
}

}  // namespace aspis::device::apps::sandbox
