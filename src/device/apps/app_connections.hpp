#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"

// Application_Connect (DESIGN section 6): a high-level app reaches a real-time app only through a
// channel aspisd relays, and only while both manifests list each other's component ID in
// AllowedApplicationConnections. Messages keep Azure Sphere's inter-core format:
//
//  - a high-level app holds one SOCK_SEQPACKET socket per connection and sends and receives bare
//    payloads of at most kMaxIntercorePayload bytes;
//  - a real-time app holds one SOCK_SEQPACKET channel for all its peers; each message on it
//    starts with a kIntercoreHeader-byte header: the high-level app's component ID (16 bytes, in
//    the GUID's binary layout: the first three fields little-endian) then 4 reserved bytes.
//
// aspisd writes the header of every message a real-time app receives, so no app can speak for
// another; a message a real-time app addresses to an app not connected to it (or no longer
// allowed), one empty or too long, and one that finds its receiver's queue full are dropped,
// never queued inside aspisd. An app holds at most one connection to each real-time app (a new
// Application_Connect closes the one before), so what an app can make aspisd hold is bounded by
// its manifest's AllowedApplicationConnections.
namespace aspis::device::apps {

inline constexpr std::size_t kIntercoreHeader = 20;
inline constexpr std::size_t kMaxIntercorePayload = 1024;
// What one RPMsg message carries (Linux's 512-byte buffers less their 16-byte header): a longer
// message for a coprocessor's endpoint is dropped here rather than refused by the kernel.
inline constexpr std::size_t kMaxRpmsgMessage = 496;

// The component ID `id` (a UUID, either case) in the GUID's binary layout; nullopt when it is not a
// UUID.
std::optional<std::array<std::uint8_t, 16>> GuidBytes(std::string_view id);
// The lowercase UUID text of GUID bytes.
std::string GuidText(const std::array<std::uint8_t, 16>& bytes);

// Thread-safe; relays on a thread of its own.
class AppConnections {
 public:
  // The AllowedApplicationConnections of the installed real-time app `component` (lowercase),
  // or nullopt when no real-time app of that ID is installed.
  using RealTimeApps =
      std::function<std::optional<std::vector<std::string>>(const std::string& component)>;

  // Errors: kSandbox when the relay's descriptors cannot be made.
  static Expected<std::unique_ptr<AppConnections>> Start(RealTimeApps installed);
  ~AppConnections();
  AppConnections(const AppConnections&) = delete;
  AppConnections& operator=(const AppConnections&) = delete;

  // Real-time app `component` runs, listing `allowed` (lowercase component IDs): its end of the
  // channel, which stays open (closing it is the app's own affair) until Forget.
  // Errors: kSandbox when a socket pair cannot be made.
  Expected<Fd> Attach(const std::string& component, std::vector<std::string> allowed);
  // The same for a real-time app on a coprocessor, whose channel is `device`: its RPMsg endpoint,
  // a character device that carries one message per read() and write() (coprocessor.hpp), closed
  // by Forget. Errors: kSandbox when it cannot be watched.
  Expected<void> AttachDevice(const std::string& component, std::vector<std::string> allowed,
                              Fd device);
  // High-level app `from`, whose manifest lists `from_allowed`, connects to real-time app `to`:
  // the app's end of the connection. Errors as errno values: EINVAL when `to` is not a component
  // ID, EACCES when `from_allowed` does not list it, ECONNREFUSED when no real-time app `to` is
  // installed or its manifest does not list `from`, EMFILE when no socket pair can be made.
  // The connection outlives restarts and updates of the real-time app; messages flow while it
  // runs and lists `from`. A connection `from` held to `to` before is closed.
  std::expected<Fd, int> Connect(const std::string& from,
                                 const std::vector<std::string>& from_allowed, std::string_view to);
  // `component` ended (or was removed): its channel or connections are closed.
  void Forget(const std::string& component);

  // Messages dropped so far (not delivered: unaddressed, too long, or the receiver full).
  std::uint64_t dropped() const;

 private:
  struct Endpoint {
    std::string component;  // the real-time app, or the high-level app of a connection
    std::string peer;       // a connection's real-time app; empty for a real-time channel
    Fd own;                 // aspisd's end
    bool device = false;    // `own` is a character device, not a socket
  };

  AppConnections(RealTimeApps installed, Fd epoll, Fd wake);
  void Relay();
  // Adds `own` under a new key, which it returns (called with mutex_ held).
  Expected<std::uint64_t> Watch(Endpoint endpoint);
  // Makes `endpoint` real-time app `component`'s channel, in place of any before.
  Expected<void> Channel(Endpoint endpoint, std::vector<std::string> allowed);
  void Unwatch(std::uint64_t key);  // called with mutex_ held
  // Receives one message from the endpoint under `key` and relays it. Returns false when it has
  // no more for now (or is gone).
  bool RelayOne(std::uint64_t key, bool hung_up, std::span<std::uint8_t> buffer);
  void FromHighLevel(const Endpoint& from, const std::uint8_t* data, std::size_t size);
  void FromRealTime(const Endpoint& from, const std::uint8_t* data, std::size_t size);
  bool Allows(const std::string& real_time, const std::string& high_level) const;

  const RealTimeApps installed_;
  const Fd epoll_;
  const Fd wake_;
  mutable std::mutex mutex_;
  // Guarded by mutex_: every endpoint by its epoll key; the running real-time apps' channels and
  // what their manifests list; the connections by (high-level app, real-time app).
  std::map<std::uint64_t, Endpoint> endpoints_;
  std::map<std::string, std::uint64_t, std::less<>> channels_;
  std::map<std::string, std::vector<std::string>, std::less<>> real_time_allows_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> connections_;
  std::uint64_t next_key_ = 1;
  std::uint64_t dropped_ = 0;
  bool stopping_ = false;
  std::thread relay_;
};

}  // namespace aspis::device::apps
