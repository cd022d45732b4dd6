#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/apps/sandbox/denial.hpp"
#include "device/apps/sandbox/network_policy.hpp"

// aspisd's DNS resolver for apps: every sandbox's resolv.conf names it, and it is the only
// resolver an app can reach. It answers A and AAAA queries for the names an app's
// AllowedConnections lists (looking them up itself) and refuses (REFUSED) the rest, reporting
// each refused name. Each address it answers is learned by that app's NetworkPolicy, so the
// app may then connect to it: Azure Sphere's approach, with the resolver inside aspisd.
namespace aspis::device::apps::sandbox {

// One app's network state, shared by its sandbox and the resolver.
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

  // Serves UDP DNS on `address` (an IPv4 address of the device, normally a loopback one) port
  // `port`. Errors: kSandbox when the socket cannot be bound.
  static Expected<std::unique_ptr<AppResolver>> Start(const std::string& address,
                                                      std::uint16_t port = 53,
                                                      Lookup lookup = SystemLookup);
  ~AppResolver();
  AppResolver(const AppResolver&) = delete;
  AppResolver& operator=(const AppResolver&) = delete;

  // Queries from the device's local UDP `port` are an app's: the sandbox says so each time it
  // connects or sends an app's socket to the resolver (it has just bound that port). Thread-safe.
  void Register(std::uint16_t port, const std::shared_ptr<AppNetwork>& app);
  // The address apps' resolv.conf names.
  const std::string& address() const { return address_; }
  // How long an answered address stays allowed (and the TTL answered).
  static constexpr std::chrono::seconds kAnswerLife{300};
  static constexpr int kLookupsPerApp = 4;

 private:
  AppResolver(std::string address, Fd socket, Lookup lookup);
  void Serve();
  // Answers `query` from the app whose socket is `port` at `from`: at once when it needs no
  // lookup, otherwise from a worker thread (at most kLookupsPerApp at a time for one app), so
  // a slow name holds up only that app's lookups.
  void Answer(const std::uint8_t* query, std::size_t size, std::uint16_t port,
              const sockaddr_in& from);
  void Send(const std::vector<std::uint8_t>& answer, const sockaddr_in& to) const;

  const std::string address_;
  Fd socket_;
  Fd wake_;
  Lookup lookup_;
  std::mutex mutex_;
  std::map<std::uint16_t, std::weak_ptr<AppNetwork>> ports_;  // guarded by mutex_
  std::map<const AppNetwork*, int> lookups_;                  // in flight; guarded by mutex_
  int workers_ = 0;                                           // guarded by mutex_
  std::condition_variable idle_;
  std::thread thread_;
};

}  // namespace aspis::device::apps::sandbox
