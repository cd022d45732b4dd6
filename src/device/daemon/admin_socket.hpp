#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/json.hpp"

namespace aspis::device {

// Serves wire/admin.hpp's protocol on a Unix socket, one client at a time, on its own thread.
// The socket is created 0600 (a stale one at `path` is replaced) and a client must run as root or
// as aspisd's own user (checked with SO_PEERCRED); others are disconnected unanswered. `handler`
// runs on the socket's thread; it must not throw. Stopped and the socket removed on destruction.
class AdminSocket {
 public:
  using Handler = std::function<json::Json(const json::Json& request)>;

  static Expected<std::unique_ptr<AdminSocket>> Start(const std::filesystem::path& path,
                                                      Handler handler);
  ~AdminSocket();
  AdminSocket(const AdminSocket&) = delete;
  AdminSocket& operator=(const AdminSocket&) = delete;

 private:
  AdminSocket(std::filesystem::path path, Fd listen, Fd stop_read, Fd stop_write, Handler handler);
  void Serve();
  void ServeClient(int fd);

  std::filesystem::path path_;
  Fd listen_;
  Fd stop_read_;
  Fd stop_write_;
  Handler handler_;
  std::thread thread_;
};

}  // namespace aspis::device
