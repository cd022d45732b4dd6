#include "device/board/sysfs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

#include "core/fd.hpp"

namespace aspis::device::board {

namespace {

std::unexpected<Error> FromErrno(const std::string& doing, const std::filesystem::path& path) {
  const int error = errno;
  return Fail(std::error_code(error, std::generic_category()),
              doing + " " + path.string() + ": " + std::generic_category().message(error));
}

}  // namespace

Expected<void> WriteAttribute(const std::filesystem::path& path, const std::string& value) {
  const Fd file(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (file.get() < 0) return FromErrno("opening", path);
  if (::write(file.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return FromErrno("writing", path);
  }
  return {};
}

Expected<std::string> ReadAttribute(const std::filesystem::path& path) {
  const Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return FromErrno("opening", path);
  std::array<char, 4096> page{};
  const ssize_t got = ::read(file.get(), page.data(), page.size());
  if (got < 0) return FromErrno("reading", path);
  std::string text(page.data(), static_cast<std::size_t>(got));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace aspis::device::board
