#include <applibs/storage.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "broker_client.hpp"

namespace {

// Azure Sphere answers EPERM where the manifest grants no MutableStorage.
int StorageCall(const char* call, std::span<int> fds) {
  const int result = aspis::applibs::BrokerCall(std::string(R"({"call":")") + call + "\"}", fds);
  if (result != 0 && errno == EACCES) errno = EPERM;
  return result;
}

// The image package's path of `relative`, or empty with errno.
std::string InPackage(const char* relative) {
  if (relative == nullptr) {
    errno = EFAULT;
    return {};
  }
  const std::string path(relative);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): applibs reads the environment and never changes it
  const char* component = std::getenv("ASPIS_COMPONENT_ID");
  if (path.empty() || path.front() == '/' || path == ".." || path.starts_with("../") ||
      path.find("/../") != std::string::npos || path.ends_with("/..") || component == nullptr) {
    errno = EINVAL;
    return {};
  }
  return std::string("/mnt/apps/") + component + "/" + path;
}

}  // namespace

extern "C" {

int Storage_OpenMutableFile(void) {
  int fd = -1;
  return StorageCall("storage.open", std::span(&fd, 1)) == 0 ? fd : -1;
}

int Storage_DeleteMutableFile(void) { return StorageCall("storage.delete", {}); }

int Storage_OpenFileInImagePackage(const char* relativePath) {
  const std::string path = InPackage(relativePath);
  if (path.empty()) return -1;
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

char* Storage_GetAbsolutePathInImagePackage(const char* relativePath) {
  const std::string path = InPackage(relativePath);
  if (path.empty()) return nullptr;
  char* copy = ::strdup(path.c_str());
  if (copy == nullptr) errno = ENOMEM;
  return copy;
}

}  // extern "C"
