#include "broker_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace aspis::applibs {

namespace {

constexpr int kBrokerFd = 3;
std::mutex broker_mutex;

// The number after "errno": in the broker's answer, or 0 when it says "ok".
int ErrnoOf(const char* answer) {
  if (std::strstr(answer, "\"ok\":true") != nullptr) return 0;
  const char* at = std::strstr(answer, "\"errno\":");
  if (at == nullptr) return EIO;
  const long value = std::strtol(at + 8, nullptr, 10);
  return value > 0 && value < 4096 ? static_cast<int>(value) : EIO;
}

// Where the value of `key` starts in `text`, or npos.
std::size_t ValueAt(std::string_view text, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\":";
  const std::size_t at = text.find(quoted);
  return at == std::string_view::npos ? at : at + quoted.size();
}

}  // namespace

std::string JsonString(std::string_view text, std::string_view key) {
  const std::size_t at = ValueAt(text, key);
  if (at == std::string_view::npos || at >= text.size() || text[at] != '"') return {};
  const std::size_t end = text.find('"', at + 1);
  return end == std::string_view::npos ? std::string()
                                       : std::string(text.substr(at + 1, end - at - 1));
}

std::string JsonBytes(std::string_view text, std::string_view key, std::size_t max) {
  const std::string hex = JsonString(text, key);
  std::string bytes;
  const auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size() && bytes.size() < max; i += 2) {
    bytes += static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1]));
  }
  return bytes;
}

std::string HexOf(const void* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 0xf];
  }
  return hex;
}

long long JsonNumber(std::string_view text, std::string_view key) {
  std::size_t at = ValueAt(text, key);
  if (at == std::string_view::npos) return -1;
  const bool negative = at < text.size() && text[at] == '-';
  if (negative) ++at;
  long long value = 0;
  std::size_t i = at;
  for (; i < text.size() && i < at + 18 && text[i] >= '0' && text[i] <= '9'; ++i) {
    value = value * 10 + (text[i] - '0');
  }
  if (i == at) return -1;
  return negative ? -value : value;
}

int BrokerCall(const std::string& request, std::span<int> fds, std::string* answer_text) {
  const std::lock_guard lock(broker_mutex);
  if (::send(kBrokerFd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
    errno = errno == EBADF || errno == ENOTSOCK ? EIO : errno;
    return -1;
  }
  std::array<char, 8192> answer{};
  std::array<char, CMSG_SPACE(sizeof(int) * 4)> control{};
  iovec data{answer.data(), answer.size() - 1};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t got;
  while ((got = ::recvmsg(kBrokerFd, &message, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (got <= 0) {
    errno = EIO;
    return -1;
  }
  std::size_t received = 0;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      if (received < fds.size()) {
        fds[received++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  const int error = ErrnoOf(answer.data());
  if (answer_text != nullptr) answer_text->assign(answer.data(), static_cast<std::size_t>(got));
  if (error != 0) {
    for (std::size_t i = 0; i < received; ++i) ::close(fds[i]);
    errno = error;
    return -1;
  }
  return 0;
}

int BrokerOpen(const std::string& request) {
  int fd = -1;
  if (BrokerCall(request, std::span(&fd, 1)) != 0) return -1;
  if (fd < 0) {
    errno = EIO;
    return -1;
  }
  return fd;
}

int ChannelCall(int fd, wire::peripheral::Op op, std::uint32_t a0, std::uint32_t a1,
                std::uint32_t a2, std::uint32_t a3, std::span<const std::uint8_t> in,
                std::span<std::uint8_t> out, std::uint32_t* value) {
  namespace wp = wire::peripheral;
  if (fd < 0) {
    errno = EBADF;
    return -1;
  }
  if (in.size() > wp::kMaxData || out.size() > wp::kMaxData) {
    errno = EINVAL;
    return -1;
  }
  wp::Request request{op, {a0, a1, a2, a3}, static_cast<std::uint32_t>(in.size())};
  std::array<iovec, 2> parts{
      {{&request, sizeof request}, {const_cast<std::uint8_t*>(in.data()), in.size()}}};
  msghdr message{};
  message.msg_iov = parts.data();
  message.msg_iovlen = in.empty() ? 1 : 2;
  if (::sendmsg(fd, &message, MSG_NOSIGNAL) < 0) {
    if (errno == ENOTSOCK || errno == EPIPE || errno == ENOTCONN) errno = EBADF;
    return -1;
  }
  wp::Reply reply{};
  std::array<iovec, 2> into{{{&reply, sizeof reply}, {out.data(), out.size()}}};
  msghdr answer{};
  answer.msg_iov = into.data();
  answer.msg_iovlen = 2;
  ssize_t got;
  while ((got = ::recvmsg(fd, &answer, 0)) < 0 && errno == EINTR) {
  }
  if (got < static_cast<ssize_t>(sizeof reply)) {
    errno = got < 0 ? errno : EIO;
    return -1;
  }
  if (reply.error != 0) {
    errno = reply.error;
    return -1;
  }
  if (value != nullptr) *value = reply.value;
  return static_cast<int>(reply.value & 0x7fffffff);
}

}  // namespace aspis::applibs
