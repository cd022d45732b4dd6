#include "device/daemon/admin_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/file.hpp"
#include "core/log.hpp"

namespace aspis::device {

namespace {

constexpr std::size_t kMaxRequest = std::size_t{64} * 1024;
constexpr int kClientTimeoutMs = 5000;

Error SysError(std::string_view what, const std::filesystem::path& path) {
  return Error(CoreErrc::kIo, std::string(what) + " " + path.string() + ": " +
                                  std::generic_category().message(errno));
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

Expected<std::unique_ptr<AdminSocket>> AdminSocket::Start(const std::filesystem::path& path,
                                                          Handler handler) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.string().size() >= sizeof(address.sun_path)) {
    return Fail(CoreErrc::kInvalidArgument, "admin socket path " + path.string() + " is too long");
  }
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (auto ok = file::EnsureDirectory(path.parent_path(), 0755); !ok) {
    return std::unexpected(ok.error());
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Fail(CoreErrc::kInvalidArgument,
                  path.string() + " exists and is not a socket; refusing to replace it");
    }
    ::unlink(path.c_str());
  }
  Fd listen(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listen.get() < 0) return std::unexpected(SysError("creating admin socket", path));
  // Owner-only from the moment it exists.
  const mode_t old_mask = ::umask(0177);
  const int bound =
      ::bind(listen.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(old_mask);
  if (bound != 0 || ::listen(listen.get(), 8) != 0) {
    return std::unexpected(SysError("binding admin socket", path));
  }
  int stop[2];
  if (::pipe2(stop, O_CLOEXEC) != 0) return std::unexpected(SysError("creating a pipe for", path));
  std::unique_ptr<AdminSocket> socket(
      new AdminSocket(path, std::move(listen), Fd(stop[0]), Fd(stop[1]), std::move(handler)));
  socket->thread_ = std::thread([s = socket.get()] { s->Serve(); });
  return socket;
}

AdminSocket::AdminSocket(std::filesystem::path path, Fd listen, Fd stop_read, Fd stop_write,
                         Handler handler)
    : path_(std::move(path)),
      listen_(std::move(listen)),
      stop_read_(std::move(stop_read)),
      stop_write_(std::move(stop_write)),
      handler_(std::move(handler)) {}

AdminSocket::~AdminSocket() {
  static_cast<void>(::write(stop_write_.get(), "x", 1));
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
}

void AdminSocket::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error("admin socket: poll failed: {}", std::generic_category().message(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    const Fd client(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client.get() < 0) continue;
    ServeClient(client.get());
  }
}

void AdminSocket::ServeClient(int fd) {
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
      (peer.uid != 0 && peer.uid != ::geteuid())) {
    log::Warning("admin socket: refused a client running as uid {}", peer.uid);
    return;
  }
  std::string request;
  char buffer[4096];
  while (request.find('\n') == std::string::npos && request.size() < kMaxRequest) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, kClientTimeoutMs) <= 0) return;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buffer, static_cast<std::size_t>(n));
  }
  auto doc = json::Parse(request.substr(0, request.find('\n')));
  const json::Json reply = doc && doc->is_object()
                               ? handler_(*doc)
                               : json::Json{{"error", "send one JSON object on one line"}};
  static_cast<void>(WriteAll(fd, reply.dump() + "\n"));
}

}  // namespace aspis::device
