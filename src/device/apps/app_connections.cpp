#include "device/apps/app_connections.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <system_error>

#include "core/bytes.hpp"
#include "device/apps/errors.hpp"
#include "package/manifest.hpp"

namespace aspis::device::apps {

namespace {

constexpr std::uint64_t kWakeKey = 0;
constexpr int kMessagesPerTurn = 64;  // from one endpoint before the others get a turn

// The GUID's fields as their text gives them: a byte count and whether it is stored little-endian.
constexpr std::array<std::pair<std::size_t, bool>, 5> kFields = {
    {{4, true}, {2, true}, {2, true}, {2, false}, {6, false}}};

std::string Lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Expected<std::array<Fd, 2>> SocketPair() {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    return Fail(AppsErrc::kSandbox,
                "cannot make an inter-core channel: " + std::generic_category().message(errno));
  }
  return std::array<Fd, 2>{Fd(pair[0]), Fd(pair[1])};
}

// Sends one message, never waiting: a character device (opened non-blocking) takes it in one
// writev.
bool Send(int to, bool device, const std::uint8_t* header, std::size_t header_size,
          const std::uint8_t* data, std::size_t size) {
  std::array<iovec, 2> parts{iovec{const_cast<std::uint8_t*>(header), header_size},
                             iovec{const_cast<std::uint8_t*>(data), size}};
  if (device) return ::writev(to, parts.data(), parts.size()) >= 0;
  msghdr message{};
  message.msg_iov = parts.data();
  message.msg_iovlen = parts.size();
  return ::sendmsg(to, &message, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0;
}

}  // namespace

std::optional<std::array<std::uint8_t, 16>> GuidBytes(std::string_view id) {
  const std::string text = Lowercase(id);
  if (!package::IsUuid(text)) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  std::size_t at = 0;
  std::size_t written = 0;
  for (const auto& [count, little_endian] : kFields) {
    const auto field = HexDecode(std::string_view(text).substr(at, count * 2));
    if (!field) return std::nullopt;
    for (std::size_t i = 0; i < count; ++i) {
      out[written + i] = (*field)[little_endian ? count - 1 - i : i];
    }
    written += count;
    at += count * 2 + 1;
  }
  return out;
}

std::string GuidText(const std::array<std::uint8_t, 16>& bytes) {
  std::string text;
  std::size_t read = 0;
  for (const auto& [count, little_endian] : kFields) {
    Bytes field(count);
    for (std::size_t i = 0; i < count; ++i) {
      field[little_endian ? count - 1 - i : i] = bytes[read + i];
    }
    if (!text.empty()) text += '-';
    text += HexEncode(field);
    read += count;
  }
  return text;
}

Expected<std::unique_ptr<AppConnections>> AppConnections::Start(RealTimeApps installed) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeKey;
  if (epoll.get() < 0 || wake.get() < 0 ||
      ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) != 0) {
    return Fail(AppsErrc::kSandbox, "cannot start the inter-core relay");
  }
  return std::unique_ptr<AppConnections>(
      new AppConnections(std::move(installed), std::move(epoll), std::move(wake)));
}

AppConnections::AppConnections(RealTimeApps installed, Fd epoll, Fd wake)
    : installed_(std::move(installed)), epoll_(std::move(epoll)), wake_(std::move(wake)) {
  relay_ = std::thread([this] { Relay(); });
}

AppConnections::~AppConnections() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof(one));
  relay_.join();
}

Expected<std::uint64_t> AppConnections::Watch(Endpoint endpoint) {
  const std::uint64_t key = next_key_++;
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.u64 = key;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, endpoint.own.get(), &event) != 0) {
    return Fail(AppsErrc::kSandbox, "cannot watch an inter-core channel");
  }
  endpoints_.emplace(key, std::move(endpoint));
  return key;
}

void AppConnections::Unwatch(std::uint64_t key) {
  const auto found = endpoints_.find(key);
  if (found == endpoints_.end()) return;
  const Endpoint& endpoint = found->second;
  if (endpoint.peer.empty()) {
    if (const auto channel = channels_.find(endpoint.component);
        channel != channels_.end() && channel->second == key) {
      channels_.erase(channel);
    }
  } else if (const auto connection = connections_.find({endpoint.component, endpoint.peer});
             connection != connections_.end() && connection->second == key) {
    connections_.erase(connection);
  }
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, endpoint.own.get(), nullptr);
  endpoints_.erase(found);
}

Expected<void> AppConnections::Channel(Endpoint endpoint, std::vector<std::string> allowed) {
  const std::string component = endpoint.component;
  std::lock_guard lock(mutex_);
  if (const auto before = channels_.find(component); before != channels_.end()) {
    Unwatch(before->second);
  }
  auto key = Watch(std::move(endpoint));
  if (!key) return std::unexpected(key.error());
  channels_[component] = *key;
  real_time_allows_[component] = std::move(allowed);
  return {};
}

Expected<Fd> AppConnections::Attach(const std::string& component,
                                    std::vector<std::string> allowed) {
  auto pair = SocketPair();
  if (!pair) return std::unexpected(pair.error());
  if (auto ok = Channel({component, "", std::move((*pair)[0])}, std::move(allowed)); !ok) {
    return std::unexpected(ok.error());
  }
  return std::move((*pair)[1]);
}

Expected<void> AppConnections::AttachDevice(const std::string& component,
                                            std::vector<std::string> allowed, Fd device) {
  const int flags = ::fcntl(device.get(), F_GETFL);
  if (flags < 0 || ::fcntl(device.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return Fail(AppsErrc::kSandbox, "cannot make an inter-core endpoint non-blocking");
  }
  return Channel({component, "", std::move(device), true}, std::move(allowed));
}

std::expected<Fd, int> AppConnections::Connect(const std::string& from,
                                               const std::vector<std::string>& from_allowed,
                                               std::string_view to) {
  if (!GuidBytes(to)) return std::unexpected(EINVAL);
  const std::string target = Lowercase(to);
  if (std::find(from_allowed.begin(), from_allowed.end(), target) == from_allowed.end()) {
    return std::unexpected(EACCES);
  }
  const auto listed = installed_ ? installed_(target) : std::nullopt;
  if (!listed || std::find(listed->begin(), listed->end(), from) == listed->end()) {
    return std::unexpected(ECONNREFUSED);
  }
  auto pair = SocketPair();
  if (!pair) return std::unexpected(EMFILE);
  std::lock_guard lock(mutex_);
  if (const auto before = connections_.find({from, target}); before != connections_.end()) {
    Unwatch(before->second);
  }
  auto key = Watch({from, target, std::move((*pair)[0])});
  if (!key) return std::unexpected(EMFILE);
  connections_[{from, target}] = *key;
  return std::move((*pair)[1]);
}

void AppConnections::Forget(const std::string& component) {
  std::lock_guard lock(mutex_);
  std::vector<std::uint64_t> gone;
  for (const auto& [key, endpoint] : endpoints_) {
    if (endpoint.component == component) gone.push_back(key);
  }
  for (const std::uint64_t key : gone) Unwatch(key);
  real_time_allows_.erase(component);
}

std::uint64_t AppConnections::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

bool AppConnections::Allows(const std::string& real_time, const std::string& high_level) const {
  const auto found = real_time_allows_.find(real_time);
  return found != real_time_allows_.end() &&
         std::find(found->second.begin(), found->second.end(), high_level) != found->second.end();
}

void AppConnections::FromHighLevel(const Endpoint& from, const std::uint8_t* data,
                                   std::size_t size) {
  const auto guid = GuidBytes(from.component);
  const auto channel = channels_.find(from.peer);
  if (!guid || channel == channels_.end() || !Allows(from.peer, from.component)) {
    ++dropped_;  // the real-time app does not run, or no longer lists the sender
    return;
  }
  std::array<std::uint8_t, kIntercoreHeader> header{};
  std::copy(guid->begin(), guid->end(), header.begin());
  const Endpoint& to = endpoints_.at(channel->second);
  if ((to.device && header.size() + size > kMaxRpmsgMessage) ||
      !Send(to.own.get(), to.device, header.data(), header.size(), data, size)) {
    ++dropped_;
  }
}

void AppConnections::FromRealTime(const Endpoint& from, const std::uint8_t* data,
                                  std::size_t size) {
  std::array<std::uint8_t, 16> guid{};
  std::copy_n(data, guid.size(), guid.begin());
  const std::string to = GuidText(guid);
  const auto connection = connections_.find({to, from.component});
  if (connection == connections_.end() || !Allows(from.component, to) ||
      !Send(endpoints_.at(connection->second).own.get(), false, nullptr, 0, data + kIntercoreHeader,
            size - kIntercoreHeader)) {
    ++dropped_;
  }
}

bool AppConnections::RelayOne(std::uint64_t key, bool hung_up, std::span<std::uint8_t> buffer) {
  std::lock_guard lock(mutex_);
  const auto found = endpoints_.find(key);
  if (found == endpoints_.end()) return false;  // forgotten since epoll_wait returned
  const Endpoint& endpoint = found->second;
  iovec into{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &into;
  message.msg_iovlen = 1;
  // A message longer than the buffer arrives cut to it, one byte more than any allowed.
  // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): the device is non-blocking
  const ssize_t got = endpoint.device ? ::read(endpoint.own.get(), buffer.data(), buffer.size())
                                      : ::recvmsg(endpoint.own.get(), &message, MSG_DONTWAIT);
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (got < 0 || (got == 0 && hung_up)) {  // the app closed its end
    Unwatch(key);
    return false;
  }
  const auto size = static_cast<std::size_t>(got);
  const bool real_time = endpoint.peer.empty();
  // A message carries a payload: an empty one would read as the end of the stream.
  const std::size_t least = real_time ? kIntercoreHeader + 1 : 1;
  const std::size_t most =
      real_time ? kIntercoreHeader + kMaxIntercorePayload : kMaxIntercorePayload;
  if ((message.msg_flags & MSG_TRUNC) != 0 || size < least || size > most) {
    ++dropped_;
  } else if (real_time) {
    FromRealTime(endpoint, buffer.data(), size);
  } else {
    FromHighLevel(endpoint, buffer.data(), size);
  }
  return got > 0;
}

void AppConnections::Relay() {
  std::array<epoll_event, 16> events{};
  std::array<std::uint8_t, kIntercoreHeader + kMaxIntercorePayload + 1> buffer{};
  for (;;) {
    const int ready = ::epoll_wait(epoll_.get(), events.data(), events.size(), -1);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    for (int i = 0; i < ready; ++i) {
      const std::uint64_t key = events[i].data.u64;
      if (key == kWakeKey) continue;
      const bool hung_up = (events[i].events & (EPOLLHUP | EPOLLRDHUP)) != 0;
      for (int turn = 0; turn < kMessagesPerTurn && RelayOne(key, hung_up, buffer); ++turn) {
      }
    }
  }
}

}  // namespace aspis::device::apps
