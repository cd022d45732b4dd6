#include "device/apps/sandbox/socket_mediator.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <vector>

#include "core/fd.hpp"
#include "core/text.hpp"

namespace aspis::device::apps::sandbox {

namespace {

constexpr std::size_t kMaxCopy = std::size_t{256} << 10;  // data copied per send
constexpr std::size_t kMaxIov = 1024;                     // UIO_MAXIOV
constexpr unsigned kMaxMessages = 64;
// What one call may have aspisd hold: a blocked send keeps its copy until the call ends.
constexpr std::size_t kMaxCopyPerCall = kMaxCopy;
// Flags aspisd passes on to its own send: none that lends its memory (MSG_ZEROCOPY would send
// what aspisd's heap holds later) or opens a connection (MSG_FASTOPEN).
constexpr int kSendFlags =
    MSG_DONTWAIT | MSG_MORE | MSG_EOR | MSG_OOB | MSG_NOSIGNAL | MSG_CONFIRM | MSG_DONTROUTE;
constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (Linux 6.9); Debian 12's headers lack it

int Nr(const char* name) { return seccomp_syscall_resolve_name(name); }

long Errno(int error) { return -static_cast<long>(error); }

}  // namespace

struct SocketMediator::Peer {
  IpAddress ip;
  std::uint16_t port = 0;
  std::string ToString() const {
    return ip.v6 ? fmt::format("[{}]:{}", ip.ToString(), port)
                 : fmt::format("{}:{}", ip.ToString(), port);
  }
};

namespace {

using Peer = SocketMediator::Peer;

std::optional<Peer> InetPeer(const sockaddr_storage& address, socklen_t size) {
  if (address.ss_family == AF_INET && size >= sizeof(sockaddr_in)) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    return Peer{IpAddress::FromV4(in.sin_addr), ntohs(in.sin_port)};
  }
  if (address.ss_family == AF_INET6 && size >= sizeof(sockaddr_in6)) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    return Peer{IpAddress::FromV6(in6.sin6_addr), ntohs(in6.sin6_port)};
  }
  return std::nullopt;
}

// A Unix address names a path unless it is abstract (a leading NUL) or empty (autobind).
// The inode of the network namespace `socket` lives in (SIOCGSKNS); 0 when it cannot be told.
ino_t NetworkNamespaceOf(int socket) {
  struct stat st {};
  const Fd ns(::ioctl(socket, SIOCGSKNS));
  return ns.get() >= 0 && ::fstat(ns.get(), &st) == 0 ? st.st_ino : 0;
}

// The inode of aspisd's own network namespace: the device's.
ino_t OwnNetworkNamespace() {
  struct stat st {};
  return ::stat("/proc/self/ns/net", &st) == 0 ? st.st_ino : 0;
}

bool NamesAPath(const sockaddr_storage& address, socklen_t size) {
  const auto& un = reinterpret_cast<const sockaddr_un&>(address);
  return size > sizeof(sa_family_t) && un.sun_path[0] != '\0';
}

std::string UnixPath(const sockaddr_storage& address, socklen_t size) {
  const auto& un = reinterpret_cast<const sockaddr_un&>(address);
  const std::size_t length = std::min<std::size_t>(size - sizeof(sa_family_t), sizeof(un.sun_path));
  return text::Printable(std::string(un.sun_path, strnlen(un.sun_path, length)));
}

int SocketOption(int fd, int option) {
  int value = -1;
  socklen_t size = sizeof(value);
  if (::getsockopt(fd, SOL_SOCKET, option, &value, &size) != 0) return -1;
  return value;
}

}  // namespace

// One notification being mediated: the app's thread, and reading from it.
struct SocketMediator::Call {
  int listener;
  const seccomp_notif& request;
  Fd pidfd;

  std::uint64_t Arg(int i) const { return request.data.args[i]; }
  bool Valid() const { return seccomp_notify_id_valid(listener, request.id) == 0; }
  bool Read(std::uint64_t address, void* out, std::size_t size) const {
    if (size == 0) return true;
    iovec local{out, size};
    iovec remote{reinterpret_cast<void*>(address), size};  // NOLINT(performance-no-int-to-ptr)
    return ::process_vm_readv(static_cast<pid_t>(request.pid), &local, 1, &remote, 1, 0) ==
           static_cast<ssize_t>(size);
  }
  bool Write(std::uint64_t address, const void* data, std::size_t size) const {
    iovec local{const_cast<void*>(data), size};
    iovec remote{reinterpret_cast<void*>(address), size};  // NOLINT(performance-no-int-to-ptr)
    return ::process_vm_writev(static_cast<pid_t>(request.pid), &local, 1, &remote, 1, 0) ==
           static_cast<ssize_t>(size);
  }
  // aspisd's own copy of the app's descriptor `fd` (the same open socket).
  Fd Take(std::uint64_t fd) const {
    return Fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(fd), 0)));
  }
  bool ReadAddress(std::uint64_t address, std::uint64_t size, sockaddr_storage& out,
                   socklen_t& out_size) const {
    if (size > sizeof(out)) return false;
    out_size = static_cast<socklen_t>(size);
    return Read(address, &out, size);
  }
};

SocketMediator::SocketMediator(std::shared_ptr<AppNetwork> app, const AppResolver* resolvers,
                               std::optional<IpAddress> resolver, int wake)
    : app_(std::move(app)),
      resolvers_(resolvers),
      resolver_(resolver),
      wake_(wake),
      socket_nr_(Nr("socket")),
      connect_nr_(Nr("connect")),
      bind_nr_(Nr("bind")),
      listen_nr_(Nr("listen")),
      sendto_nr_(Nr("sendto")),
      sendmsg_nr_(Nr("sendmsg")),
      sendmmsg_nr_(Nr("sendmmsg")),
      device_namespace_(OwnNetworkNamespace()) {}

bool SocketMediator::Handle(int listener, const seccomp_notif& request) {
  const int nr = request.data.nr;
  const bool mine = nr == socket_nr_ || nr == connect_nr_ || nr == bind_nr_ || nr == listen_nr_ ||
                    nr == sendto_nr_ || nr == sendmsg_nr_ || nr == sendmmsg_nr_;
  if (!mine) return false;
  if (nr == socket_nr_) {
    const int domain = static_cast<int>(request.data.args[0]);
    const int type = static_cast<int>(request.data.args[1]) & 0xf;
    if ((domain != AF_INET && domain != AF_INET6) || (type != SOCK_STREAM && type != SOCK_DGRAM)) {
      return false;  // refused and reported as any call outside the allowlist
    }
  }
  // The notification names the calling thread; any thread of the app may make these calls.
  Call call{listener, request,
            Fd(static_cast<int>(::syscall(SYS_pidfd_open, request.pid, kPidfdThread)))};
  if (call.pidfd.get() < 0) {
    call.pidfd = Fd(static_cast<int>(::syscall(SYS_pidfd_open, request.pid, 0)));
  }
  seccomp_notif_resp response{};
  response.id = request.id;
  // The pid named the app's thread when the notification came: still so only if it is valid.
  if (!call.Valid()) return true;  // the call is gone: nothing to answer
  if (call.pidfd.get() < 0) {
    response.error = -EPERM;
    (void)seccomp_notify_respond(listener, &response);
    return true;
  }
  long result = 0;
  if (nr == socket_nr_) {
    result = Socket(call);
    if (result == 0) return true;  // answered by handing over the socket
  } else if (nr == connect_nr_) {
    result = Connect(call);
  } else if (nr == bind_nr_) {
    result = Bind(call);
  } else if (nr == listen_nr_) {
    result = Listen(call);
  } else {
    result = SendMsg(call, nr == sendmmsg_nr_);
  }
  if (result < 0) {
    response.error = static_cast<std::int32_t>(result);
  } else {
    response.val = result;
  }
  (void)seccomp_notify_respond(listener, &response);
  return true;
}

long SocketMediator::Socket(const Call& call) {
  const int domain = static_cast<int>(call.Arg(0));
  const int type = static_cast<int>(call.Arg(1));
  const int protocol = static_cast<int>(call.Arg(2));
  const bool stream = (type & 0xf) == SOCK_STREAM;
  if (protocol != 0 && protocol != (stream ? IPPROTO_TCP : IPPROTO_UDP)) {
    app_->denials({"socket", fmt::format("protocol {} (only TCP and UDP)", protocol)});
    return Errno(EPROTONOSUPPORT);
  }
  // Made here, so it belongs to the device's network namespace, not the app's empty one.
  Fd socket(::socket(domain, type | SOCK_CLOEXEC, protocol));
  if (socket.get() < 0) return Errno(errno);
  seccomp_notif_addfd add{};
  add.id = call.request.id;
  add.flags = SECCOMP_ADDFD_FLAG_SEND;
  add.srcfd = static_cast<std::uint32_t>(socket.get());
  add.newfd_flags = (type & SOCK_CLOEXEC) != 0 ? O_CLOEXEC : 0;
  if (::ioctl(call.listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0) return 0;
  return errno == ENOENT ? 0 : Errno(errno);  // ENOENT: the app's call was interrupted
}

namespace {

// Waits until `fd` is ready for `events`, or the app's call is gone, or aspisd stops.
bool WaitFor(int fd, short events, int wake, const std::function<bool()>& valid) {
  for (;;) {
    std::array<pollfd, 2> fds{{{fd, events, 0}, {wake, POLLIN, 0}}};
    const int ready = ::poll(fds.data(), fds.size(), 1000);
    if (ready < 0 && errno != EINTR) return false;
    if (fds[1].revents != 0) return false;
    if (fds[0].revents != 0) return true;
    if (!valid()) return false;
  }
}

}  // namespace

// connect and bind: the app's socket (aspisd's copy), the address it gave, and the family.
struct SocketMediator::Addressed {
  Fd socket{-1};
  sockaddr_storage address{};
  socklen_t size = 0;
  int domain = 0;
};

long SocketMediator::TakeAddressed(const Call& call, Addressed& out) const {
  out.socket = call.Take(call.Arg(0));
  if (out.socket.get() < 0) return Errno(EBADF);
  if (!call.ReadAddress(call.Arg(1), call.Arg(2), out.address, out.size)) return Errno(EINVAL);
  if (!call.Valid()) return Errno(EINTR);
  out.domain = SocketOption(out.socket.get(), SO_DOMAIN);
  return out.domain < 0 ? Errno(ENOTSOCK) : 0;
}

long SocketMediator::Connect(const Call& call) {
  Addressed target;
  if (const long taken = TakeAddressed(call, target); taken < 0) return taken;
  auto& [socket, address, size, domain] = target;
  if (domain == AF_UNIX) {
    if (NamesAPath(address, size)) {
      app_->denials({"connection", "to the Unix socket " + UnixPath(address, size) +
                                       " (apps reach each other through Application_Connect)"});
      return Errno(EACCES);
    }
    if (MadeByAspisd(socket.get(), "connection")) return Errno(EACCES);
  } else if (address.ss_family != AF_UNSPEC) {
    const auto peer = InetPeer(address, size);
    if (!peer) return Errno(EINVAL);
    if (!Reaches(*peer, SocketOption(socket.get(), SO_TYPE) == SOCK_DGRAM)) return Errno(EACCES);
  }
  // Done here on the same socket; a blocking socket is made non-blocking while aspisd waits, so
  // that aspisd can give up when the app's call goes away.
  const int flags = ::fcntl(socket.get(), F_GETFL);
  const bool blocking = flags >= 0 && (flags & O_NONBLOCK) == 0;
  if (blocking) ::fcntl(socket.get(), F_SETFL, flags | O_NONBLOCK);
  long result = ::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), size) == 0
                    ? 0
                    : Errno(errno);
  if (blocking && result == Errno(EINPROGRESS)) {
    if (WaitFor(socket.get(), POLLOUT, wake_, [&] { return call.Valid(); })) {
      const int error = SocketOption(socket.get(), SO_ERROR);
      result = error == 0 ? 0 : Errno(error);
    } else {
      result = Errno(EINTR);
    }
  }
  if (blocking) ::fcntl(socket.get(), F_SETFL, flags);
  return result;
}

bool SocketMediator::MadeByAspisd(int socket, const char* what) const {
  const ino_t ns = NetworkNamespaceOf(socket);
  if (ns != 0 && ns != device_namespace_) return false;
  app_->denials({what,
                 "an abstract Unix name on a socket aspisd made (it lives in the device's "
                 "network namespace)"});
  return true;
}

bool SocketMediator::IsResolver(const Peer& peer, bool datagram) const {
  return datagram && resolver_ && peer.ip == *resolver_ && peer.port == resolvers_->port();
}

bool SocketMediator::Reaches(const Peer& peer, bool datagram) const {
  if (IsResolver(peer, datagram)) return true;
  if (resolvers_ != nullptr && resolvers_->InRange(peer.ip)) {
    app_->denials({"connection", peer.ToString() + " (the apps' resolvers' range)"});
    return false;
  }
  if (app_->policy.AllowsAddress(peer.ip, NetworkPolicy::Clock::now())) {
    // A name was allowed, not the device: an address answered for it that has become the
    // device's own (on an interface an app configured) grants nothing. What a manifest lists as
    // it is, and loopback answered for "localhost", it grants.
    if (!app_->policy.Lists(peer.ip) && !peer.ip.IsLocal() && RoutesToTheDevice(peer.ip)) {
      app_->denials(
          {"connection", peer.ToString() + " (an address of the device's, answered for a name)"});
      return false;
    }
    return true;
  }
  app_->denials({"connection", peer.ToString() + " (not in AllowedConnections)"});
  return false;
}

long SocketMediator::Bind(const Call& call) {
  Addressed target;
  if (const long taken = TakeAddressed(call, target); taken < 0) return taken;
  auto& [socket, address, size, domain] = target;
  if (domain == AF_UNIX) {
    if (NamesAPath(address, size)) {
      app_->denials({"listen", "on the Unix socket " + UnixPath(address, size) +
                                   " (only abstract Unix sockets may be bound)"});
      return Errno(EACCES);
    }
    if (MadeByAspisd(socket.get(), "listen")) return Errno(EACCES);
  } else {
    const auto peer = InetPeer(address, size);
    if (!peer) return Errno(EINVAL);
    const bool stream = SocketOption(socket.get(), SO_TYPE) == SOCK_STREAM;
    // Addresses there are for resolvers still to come (an app binding many would leave none).
    if (resolvers_ != nullptr && resolvers_->InRange(peer->ip)) {
      app_->denials({"listen", "on " + peer->ToString() + " (the apps' resolvers' range)"});
      return Errno(EACCES);
    }
    // UDP's SO_REUSEADDR has no owner check: with it, the app's socket would share a port a
    // device service or another app holds, and take its datagrams. Cleared on the shared open
    // socket, so the app's bind fails (EADDRINUSE) where the port is taken.
    const int off = 0;
    if (!stream && ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &off, sizeof(off)) != 0) {
      return Errno(errno);
    }
    if (peer->port != 0 && !app_->policy.AllowsServerPort(stream, peer->port)) {
      app_->denials(
          {"listen", fmt::format("{} port {} (not in Allowed{}ServerPorts)", stream ? "TCP" : "UDP",
                                 peer->port, stream ? "Tcp" : "Udp")});
      return Errno(EACCES);
    }
  }
  return ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), size) == 0
             ? 0
             : Errno(errno);
}

long SocketMediator::Listen(const Call& call) {
  Fd socket = call.Take(call.Arg(0));
  if (socket.get() < 0) return Errno(EBADF);
  const int domain = SocketOption(socket.get(), SO_DOMAIN);
  if (domain < 0) return Errno(ENOTSOCK);
  if (domain != AF_UNIX) {
    // listen on an unbound socket would bind it to a port of the kernel's choosing.
    sockaddr_storage local{};
    socklen_t size = sizeof(local);
    ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&local), &size);
    const auto bound = InetPeer(local, size);
    if (!bound || !app_->policy.AllowsServerPort(true, bound->port)) {
      app_->denials({"listen", fmt::format("TCP port {} (not in AllowedTcpServerPorts)",
                                           bound ? bound->port : 0)});
      return Errno(EACCES);
    }
  }
  return ::listen(socket.get(), static_cast<int>(call.Arg(1))) == 0 ? 0 : Errno(errno);
}

namespace {

// One message to send, copied out of the app.
struct Message {
  std::vector<std::uint8_t> data;
  sockaddr_storage name{};
  socklen_t name_size = 0;
};

}  // namespace

long SocketMediator::SendMsg(const Call& call, bool many) {
  const bool sendto = call.request.data.nr == sendto_nr_;
  const int flags = static_cast<int>(sendto ? call.Arg(3) : (many ? call.Arg(3) : call.Arg(2)));
  if ((flags & MSG_FASTOPEN) != 0) {
    app_->denials({"syscall", "a send with MSG_FASTOPEN"});
    return Errno(EPERM);
  }
  if ((flags & ~kSendFlags) != 0) {
    app_->denials({"syscall", fmt::format("a send with flags {:#x}", flags & ~kSendFlags)});
    return Errno(EPERM);
  }
  Fd socket = call.Take(call.Arg(0));
  if (socket.get() < 0) return Errno(EBADF);
  const int domain = SocketOption(socket.get(), SO_DOMAIN);
  if (domain < 0) return Errno(ENOTSOCK);
  const bool stream = SocketOption(socket.get(), SO_TYPE) == SOCK_STREAM;

  // Read every message once; what is checked and sent is this copy.
  std::vector<Message> messages;
  std::vector<std::uint64_t> length_fields;  // sendmmsg: where each msg_len is written back
  std::size_t budget = kMaxCopyPerCall;      // a longer send is short, as the kernel's may be
  const auto read_header = [&](std::uint64_t at, Message& m) -> long {
    msghdr header{};
    if (!call.Read(at, &header, sizeof(header))) return Errno(EFAULT);
    if (header.msg_iovlen > kMaxIov) return Errno(EMSGSIZE);
    std::vector<iovec> iov(header.msg_iovlen);
    if (!call.Read(reinterpret_cast<std::uint64_t>(header.msg_iov), iov.data(),
                   iov.size() * sizeof(iovec))) {
      return Errno(EFAULT);
    }
    for (const auto& part : iov) {
      const std::size_t take = std::min({part.iov_len, kMaxCopy - m.data.size(), budget});
      budget -= take;
      const std::size_t at_size = m.data.size();
      m.data.resize(at_size + take);
      if (!call.Read(reinterpret_cast<std::uint64_t>(part.iov_base), m.data.data() + at_size,
                     take)) {
        return Errno(EFAULT);
      }
      if (m.data.size() == kMaxCopy || budget == 0) break;
    }
    if (header.msg_name != nullptr &&
        !call.ReadAddress(reinterpret_cast<std::uint64_t>(header.msg_name), header.msg_namelen,
                          m.name, m.name_size)) {
      return Errno(EINVAL);
    }
    // aspisd sends with its own privileges, which control messages would lend the app (IP
    // options, a mark, descriptors): none is passed on.
    if (header.msg_controllen > 0) {
      app_->denials({"syscall", "a send with control messages"});
      return Errno(EPERM);
    }
    return 0;
  };
  if (sendto) {
    Message m;
    m.data.resize(std::min<std::uint64_t>(call.Arg(2), kMaxCopy));
    if (!call.Read(call.Arg(1), m.data.data(), m.data.size())) return Errno(EFAULT);
    if (call.Arg(4) != 0 && !call.ReadAddress(call.Arg(4), call.Arg(5), m.name, m.name_size)) {
      return Errno(EINVAL);
    }
    messages.push_back(std::move(m));
  } else if (!many) {
    Message m;
    if (const long rc = read_header(call.Arg(1), m); rc < 0) return rc;
    messages.push_back(std::move(m));
  } else {
    const unsigned count = std::min<unsigned>(static_cast<unsigned>(call.Arg(2)), kMaxMessages);
    for (unsigned i = 0; i < count && (i == 0 || budget > 0); ++i) {
      const std::uint64_t at = call.Arg(1) + i * sizeof(mmsghdr);
      Message m;
      if (const long rc = read_header(at, m); rc < 0) return i == 0 ? rc : static_cast<long>(i);
      messages.push_back(std::move(m));
      length_fields.push_back(at + offsetof(mmsghdr, msg_len));
    }
  }
  if (!call.Valid()) return Errno(EINTR);

  const int socket_flags = ::fcntl(socket.get(), F_GETFL);
  const bool blocking =
      socket_flags >= 0 && (socket_flags & O_NONBLOCK) == 0 && (flags & MSG_DONTWAIT) == 0;
  long sent_messages = 0;
  long last = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    Message& m = messages[i];
    const bool named = m.name_size > 0;
    if (named && stream && domain != AF_UNIX) {
      m.name_size = 0;  // a connected stream ignores it; an unconnected one fails without it
    } else if (named && domain == AF_UNIX) {
      if (NamesAPath(m.name, m.name_size)) {
        app_->denials({"connection", "to the Unix socket " + UnixPath(m.name, m.name_size) +
                                         " (apps reach each other through Application_Connect)"});
        last = Errno(EACCES);
        break;
      }
      if (MadeByAspisd(socket.get(), "connection")) {
        last = Errno(EACCES);
        break;
      }
    } else if (named) {
      const auto peer = InetPeer(m.name, m.name_size);
      if (!peer) {
        last = Errno(EINVAL);
        break;
      }
      if (!Reaches(*peer, !stream)) {
        last = Errno(EACCES);
        break;
      }
    }
    iovec data{m.data.data(), m.data.size()};
    msghdr out{};
    out.msg_name = m.name_size > 0 ? &m.name : nullptr;
    out.msg_namelen = m.name_size;
    out.msg_iov = &data;
    out.msg_iovlen = 1;
    for (;;) {
      const ssize_t rc = ::sendmsg(socket.get(), &out, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
      last = rc >= 0 ? rc : Errno(errno);
      if (rc >= 0 || errno != EAGAIN || !blocking) break;
      if (!WaitFor(socket.get(), POLLOUT, wake_, [&] { return call.Valid(); })) {
        last = Errno(EINTR);
        break;
      }
    }
    // After a wait the app's thread may be gone and its pid reused: act on it only while its
    // call is still pending (then the pid is still that thread's).
    if (last == Errno(EPIPE) && (flags & MSG_NOSIGNAL) == 0 && call.Valid()) {
      ::syscall(SYS_pidfd_send_signal, call.pidfd.get(), SIGPIPE, nullptr, 0);
    }
    if (last < 0) break;
    if (many) {
      const auto length = static_cast<unsigned>(last);
      if (!call.Valid() || !call.Write(length_fields[i], &length, sizeof(length))) break;
    }
    ++sent_messages;
  }
  if (many) return sent_messages > 0 ? sent_messages : last;
  return last;
}

}  // namespace aspis::device::apps::sandbox
