#include <applibs/application.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <tlsutils/deviceauth.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <mutex>
#include <string>

#include "broker_client.hpp"

namespace {

// The certificate and key, copied out of the descriptors the broker passes (root's files, which
// the app cannot open by name) into the sandbox's private /tmp. Each call asks the broker again,
// since the device renews the certificate, and replaces the copies whole (rename), so a path
// once given keeps naming the current files.
std::mutex mutex;
constexpr char kDirectory[] = "/tmp/.aspis-deviceauth";
constexpr char kCertificate[] = "/tmp/.aspis-deviceauth/certificate.pem";
constexpr char kKey[] = "/tmp/.aspis-deviceauth/key.pem";

// Copies all of `from` to `path`; 0, or -1 with errno.
int CopyOut(int from, const char* path) {
  const std::string temporary = std::string(path) + ".new";
  const int to = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (to < 0) return -1;
  std::array<char, 4096> buffer{};
  ssize_t got = 0;
  off_t at = 0;
  while ((got = ::pread(from, buffer.data(), buffer.size(), at)) > 0) {
    if (::write(to, buffer.data(), static_cast<std::size_t>(got)) != got) {
      got = -1;
      break;
    }
    at += got;
  }
  const int error = errno;
  if (::close(to) != 0 || got < 0 || ::rename(temporary.c_str(), path) != 0) {
    errno = got < 0 ? error : errno;
    ::unlink(temporary.c_str());
    return -1;
  }
  return 0;
}

// 0, or -1 with errno.
int Fetch() {
  std::array<int, 2> fds{-1, -1};
  if (aspis::applibs::BrokerCall(R"({"call":"deviceauth.open"})", fds) != 0) return -1;
  int result = -1;
  if (fds[0] < 0 || fds[1] < 0) {
    errno = EIO;
  } else if ((::mkdir(kDirectory, 0700) == 0 || errno == EEXIST) &&
             CopyOut(fds[0], kCertificate) == 0 && CopyOut(fds[1], kKey) == 0) {
    result = 0;
  }
  const int error = errno;
  for (const int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  errno = error;
  return result;
}

}  // namespace

extern "C" {

int Application_IsDeviceAuthReady(bool* isReady) {
  if (isReady == nullptr) {
    errno = EFAULT;
    return -1;
  }
  const std::lock_guard lock(mutex);
  if (Fetch() == 0) {
    *isReady = true;
    return 0;
  }
  if (errno != EAGAIN) return -1;
  *isReady = false;
  return 0;
}

const char* DeviceAuth_GetCertificatePath(void) {
  const std::lock_guard lock(mutex);
  return Fetch() == 0 ? kCertificate : nullptr;
}

const char* DeviceAuth_GetPrivateKeyPath(void) {
  const std::lock_guard lock(mutex);
  return Fetch() == 0 ? kKey : nullptr;
}

}  // extern "C"
