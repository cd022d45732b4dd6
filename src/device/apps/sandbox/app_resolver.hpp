#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/sandbox/denial.hpp"
#include "device/apps/sandbox/network_policy.hpp"

// aspisd's DNS resolvers for apps: each sandbox's resolv.conf names a resolver of its own, a UDP
// socket on port 53 of a loopback address no other app may reach, so the socket tells which app
// asks and what one app sends fills only its own socket's queue. A resolver answers A and AAAA
// queries for the names its app's AllowedConnections lists (looking them up itself) and refuses
// (REFUSED) the rest, reporting each refused name. Each address it answers is learned by that
// app's NetworkPolicy, so the app may then connect to it: Azure Sphere's approach, with the
// resolver inside aspisd.
namespace aspis::device::apps::sandbox {

// One app's network state, shared by its sandbox and its resolver.
struct AppNetwork {
  explicit AppNetwork(const package::AppCapabilities& capabilities, DenialSink sink)
      : policy(capabilities), denials(std::move(sink)) {}
  NetworkPolicy policy;
  DenialSink denials;
};

class AppResolver {
 public:
  // Looks up `name`'s IPv6 (`v6`) or IPv4 addresses on the device; empty when there are none.
  using Lookup = std::function<std::vector<IpAddress>(const std::string& name, bool v6)>;
  static std::vector<IpAddress> SystemLookup(const std::string& name, bool v6);
  // Looks `name` up at the DNS servers `servers` (port 53), in turn, as the system's resolver
  // would ask its own; empty when they answer none.
  static std::vector<IpAddress> LookupAt(std::span<const in_addr> servers, const std::string& name,
                                         bool v6);
  // The DNS servers to ask instead of `lookup` (the custom DNS servers apps set on the interfaces
  // aspisd manages); none: `lookup`.
  using Servers = std::function<std::vector<in_addr>()>;

  // Serves apps on port `port` of the loopback addresses from `first` to the end of its /16 (the
  // range), one address per app, looking names up at `servers` when it names any (those in the
  // range never: a resolver there would ask itself), else with `lookup`. Errors: kSandbox when
  // `first` is not a loopback IPv4 address.
  static Expected<std::unique_ptr<AppResolver>> Start(const std::string& first,
                                                      std::uint16_t port = 53,
                                                      Lookup lookup = SystemLookup,
                                                      Servers servers = {});
  // Waits for the lookups in flight. Every Endpoint must be gone first.
  ~AppResolver();
  AppResolver(const AppResolver&) = delete;
  AppResolver& operator=(const AppResolver&) = delete;

  // One app's resolver, served while this lives.
  class Endpoint {
   public:
    Endpoint(Endpoint&& other) noexcept;
    Endpoint& operator=(Endpoint&&) = delete;
    ~Endpoint();
    const IpAddress& address() const { return address_; }

   private:
    friend class AppResolver;
    Endpoint(AppResolver* resolver, std::uint64_t id, IpAddress address)
        : resolver_(resolver), id_(id), address_(address) {}
    AppResolver* resolver_;
    std::uint64_t id_;
    IpAddress address_;
  };
  // Serves `app` on the first address of the range that is free (another process may hold some).
  // `owner` names the app across its restarts (its component ID): its lookups in flight are
  // counted together. Thread-safe. Errors: kSandbox when none is.
  Expected<Endpoint> Open(const std::string& owner, std::shared_ptr<AppNetwork> app);
  // Whether `address` is in the range: no app may reach or bind one but its own resolver's.
  bool InRange(const IpAddress& address) const;
  std::uint16_t port() const { return port_; }

  // How long an answered address stays allowed (and the TTL answered).
  static constexpr std::chrono::seconds kAnswerLife{300};
  // Lookups in flight for one owner, whichever of its endpoints asked.
  static constexpr int kLookupsPerApp = 4;

 private:
  struct Served;
  AppResolver(IpAddress first, std::uint16_t port, Fd epoll, Lookup lookup, Servers servers);
  // `name`'s addresses, from the servers or the lookup (a worker's).
  std::vector<IpAddress> Find(const std::string& name, bool v6) const;
  void Close(std::uint64_t id);
  void Serve();
  // Answers `query` that `from` sent to `served`: at once when it needs no lookup, otherwise from
  // a worker thread (at most kLookupsPerApp at a time for one owner), so a slow name holds up
  // only that app's lookups. A worker answers only while the endpoint lives: an ended sandbox's
  // address is free at once.
  void Answer(const std::shared_ptr<Served>& served, std::span<const std::uint8_t> query,
              const sockaddr_in& from);

  const IpAddress first_;
  const std::uint16_t port_;
  Fd epoll_;
  Fd wake_;
  const Lookup lookup_;
  const Servers servers_;
  std::mutex mutex_;
  std::map<std::uint64_t, std::shared_ptr<Served>> served_;  // by epoll tag; guarded by mutex_
  std::uint64_t next_id_ = 1;                                // 0 tags the wake; guarded by mutex_
  std::map<std::string, int, std::less<>> lookups_;  // in flight by owner; guarded by mutex_
  int workers_ = 0;                                  // guarded by mutex_
  std::condition_variable idle_;
  std::thread thread_;
};

}  // namespace aspis::device::apps::sandbox
