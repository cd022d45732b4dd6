#pragma once

#include <sys/types.h>

#include <linux/seccomp.h>

#include <memory>
#include <optional>

#include "device/apps/sandbox/app_resolver.hpp"

// Networking as built (DESIGN section 6): an app's IPv4 and IPv6 sockets are made by aspisd in
// the device's network namespace (the app's own holds only loopback) and handed to it, and every
// call that could choose a peer or a port (connect, bind, listen, sendto with an address,
// sendmsg, sendmmsg) reaches aspisd through the seccomp listener. aspisd checks the app's
// NetworkPolicy and performs the call itself, on its own copy of the socket and of the address
// and data it read once from the app's memory, then answers with the call's result. It never
// lets the kernel continue the app's call, since the app could swap the descriptor or the
// address in between.
namespace aspis::device::apps::sandbox {

class SocketMediator {
 public:
  // `resolver` is the address of the app's own resolver (port resolvers->port()), absent when no
  // names resolve; `resolvers` may be null when there are none. `wake` is an eventfd that, once
  // readable, ends any wait of a blocking call.
  SocketMediator(std::shared_ptr<AppNetwork> app, const AppResolver* resolvers,
                 std::optional<IpAddress> resolver, int wake);

  // Mediates `request` when it is one of the calls above, and answers it on `listener`; false
  // when it is another call (left to the caller to answer).
  bool Handle(int listener, const seccomp_notif& request);

  struct Peer;

 private:
  struct Call;
  struct Addressed;
  // Takes the socket and reads the address of a connect or bind: 0, or the call's -errno.
  long TakeAddressed(const Call& call, Addressed& out) const;
  // Whether `peer` is the app's own resolver (over UDP only).
  bool IsResolver(const Peer& peer, bool datagram) const;
  // Whether `socket` (a Unix one) is one aspisd made: it lives in the device's network namespace,
  // where an abstract name would be bound or looked up. Reports the denial (`what`) when so.
  bool MadeByAspisd(int socket, const char* what) const;
  // Whether the app may send to `peer`; reports the denial when not.
  bool Reaches(const Peer& peer, bool datagram) const;
  long Socket(const Call& call);
  long Connect(const Call& call);
  long Bind(const Call& call);
  long Listen(const Call& call);
  long SendMsg(const Call& call, bool many);

  std::shared_ptr<AppNetwork> app_;
  const AppResolver* resolvers_;
  std::optional<IpAddress> resolver_;
  int wake_;
  int socket_nr_, connect_nr_, bind_nr_, listen_nr_, sendto_nr_, sendmsg_nr_, sendmmsg_nr_;
  const ino_t device_namespace_;  // aspisd's network namespace, where the sockets it made live
};

}  // namespace aspis::device::apps::sandbox
