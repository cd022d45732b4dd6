#include "device/board/peripheral_server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/log.hpp"
#include "wire/peripheral.hpp"

namespace aspis::device::board {

namespace wp = wire::peripheral;

enum class PeripheralKind { kGpio, kAdc, kPwm, kI2c, kSpi, kUart };

namespace {

using Kind = PeripheralKind;

// The most transfers one SPI sequence holds.
constexpr std::size_t kMaxTransfers = 16;
// The most a UART relay moves at once, and holds for each direction.
constexpr std::size_t kUartChunk = 4096;

std::unexpected<Error> Errno(std::errc code, std::string message) {
  return Fail(std::make_error_code(code), std::move(message));
}

int ErrnoOf(const Error& error) {
  return error.code().category() == std::generic_category() ? error.code().value() : EIO;
}

}  // namespace

struct PeripheralChannel {
  PeripheralKind kind;
  std::string key;    // what it holds: "gpio 8", "ISU0"
  std::string owner;  // the app's component ID
  int gpio = -1;
  std::string block;
  std::chrono::milliseconds i2c_timeout = kMaxI2cTimeout;
  SpiSettings spi;
  Fd own_end{-1};
  // A UART's: the backend's descriptor, and what waits to go each way (at most kUartChunk).
  Fd device{-1};
  std::vector<std::uint8_t> to_device;
  std::vector<std::uint8_t> to_app;
};

namespace {

Expected<std::uint32_t> PerformI2c(Peripherals& backend, PeripheralChannel& channel,
                                   const wp::Request& request, std::span<const std::uint8_t> in,
                                   std::vector<std::uint8_t>& out) {
  const auto& a = request.arg;
  switch (request.op) {
    case wp::Op::kI2cBusSpeed:
      // The MT3620's I2C masters run at standard, fast and fast-plus speeds.
      if (a[0] == 100'000 || a[0] == 400'000 || a[0] == 1'000'000) return 0;
      break;
    case wp::Op::kI2cTimeout:
      // "Rounded to the nearest supported value": tens of milliseconds, and no more than a
      // transfer may hold the server that every app's peripherals wait on.
      channel.i2c_timeout =
          std::clamp(std::chrono::milliseconds((std::uint64_t{a[0]} + 5) / 10 * 10), kMinI2cTimeout,
                     kMaxI2cTimeout);
      return 0;
    case wp::Op::kI2cTransfer: {
      if (a[0] > 0x7f || a[1] > wp::kMaxData || (in.empty() && a[1] == 0)) break;
      out.resize(a[1]);
      auto done =
          backend.I2cTransfer(channel.block, static_cast<int>(a[0]), in, out, channel.i2c_timeout);
      if (!done) return std::unexpected(done.error());
      return static_cast<std::uint32_t>(in.size() + out.size());
    }
    default:
      break;
  }
  return Errno(std::errc::invalid_argument, "malformed I2C request");
}

constexpr std::uint32_t kMinSpiSpeed = 100'000;

Expected<std::uint32_t> PerformSpi(Peripherals& backend, PeripheralChannel& channel,
                                   const wp::Request& request, std::span<const std::uint8_t> in,
                                   std::vector<std::uint8_t>& out) {
  const auto& a = request.arg;
  const auto invalid = [] { return Errno(std::errc::invalid_argument, "malformed SPI request"); };
  if (request.op == wp::Op::kSpiBusSpeed) {
    // Each request holds the server (one at a time), so none may be slow: the longest transfer
    // (kMaxData bytes) takes at most a third of a second at the slowest speed allowed.
    if (a[0] < kMinSpiSpeed || a[0] > 40'000'000) return invalid();
    channel.spi.speed_hz = a[0];
    return 0;
  }
  if (request.op == wp::Op::kSpiMode) {
    if (a[0] < 1 || a[0] > 4) return invalid();
    channel.spi.mode = static_cast<int>(a[0]);
    return 0;
  }
  if (request.op == wp::Op::kSpiBitOrder) {
    if (a[0] > 1) return invalid();
    channel.spi.msb_first = a[0] == 1;
    return 0;
  }
  if (request.op != wp::Op::kSpiTransfer) return invalid();
  // Transfer headers, then what the writing ones write; every length adds up exactly.
  const std::size_t count = a[0];
  if (count == 0 || count > kMaxTransfers || in.size() < count * sizeof(wp::Transfer)) {
    return invalid();
  }
  std::vector<wp::Transfer> headers(count);
  std::memcpy(headers.data(), in.data(), count * sizeof(wp::Transfer));
  std::size_t written = 0;
  std::size_t read = 0;
  for (const wp::Transfer& t : headers) {
    if (t.length == 0 || t.length > wp::kMaxData || t.flags == 0 || (t.flags & ~3U) != 0) {
      return invalid();
    }
    if ((t.flags & wp::kTransferWrite) != 0) written += t.length;
    if ((t.flags & wp::kTransferRead) != 0) read += t.length;
  }
  if (written + read > wp::kMaxData || in.size() != count * sizeof(wp::Transfer) + written) {
    return invalid();
  }
  out.resize(read);
  std::vector<SpiTransfer> transfers;
  transfers.reserve(count);
  std::size_t write_at = count * sizeof(wp::Transfer);
  std::size_t read_at = 0;
  for (const wp::Transfer& t : headers) {
    SpiTransfer transfer;
    if ((t.flags & wp::kTransferWrite) != 0) {
      transfer.write = in.subspan(write_at, t.length);
      write_at += t.length;
    }
    if ((t.flags & wp::kTransferRead) != 0) {
      transfer.read = std::span(out).subspan(read_at, t.length);
      read_at += t.length;
    }
    transfers.push_back(transfer);
  }
  auto done = backend.SpiTransfers(channel.block, channel.spi, transfers);
  if (!done) return std::unexpected(done.error());
  return static_cast<std::uint32_t>(written + read);
}

// Does what `request` asks of `channel`; the reply's value, and its data in `out`.
Expected<std::uint32_t> Perform(Peripherals& backend, PeripheralChannel& channel,
                                const wp::Request& request, std::span<const std::uint8_t> in,
                                std::vector<std::uint8_t>& out) {
  const auto& a = request.arg;
  const auto invalid = [] { return Errno(std::errc::invalid_argument, "malformed request"); };
  const auto nothing = [](const Expected<void>& done) -> Expected<std::uint32_t> {
    if (!done) return std::unexpected(done.error());
    return 0;
  };
  switch (channel.kind) {
    case Kind::kGpio:
      if (request.op == wp::Op::kGpioGet) {
        auto level = backend.GetGpio(channel.gpio);
        if (!level) return std::unexpected(level.error());
        return *level ? 1 : 0;
      }
      if (request.op == wp::Op::kGpioSet && a[0] <= 1) {
        return nothing(backend.SetGpio(channel.gpio, a[0] == 1));
      }
      return invalid();
    case Kind::kAdc:
      if (request.op == wp::Op::kAdcBits) {
        auto bits = backend.AdcBits(channel.block, static_cast<int>(a[0]));
        if (!bits) return std::unexpected(bits.error());
        return static_cast<std::uint32_t>(*bits);
      }
      if (request.op == wp::Op::kAdcReference) {
        return nothing(backend.SetAdcReference(channel.block, static_cast<int>(a[0]), a[1]));
      }
      if (request.op == wp::Op::kAdcPoll) {
        return backend.PollAdc(channel.block, static_cast<int>(a[0]));
      }
      return invalid();
    case Kind::kPwm:
      if (request.op == wp::Op::kPwmApply && a[3] <= 3) {
        return nothing(backend.ApplyPwm(channel.block, static_cast<int>(a[0]),
                                        {.period_ns = a[1],
                                         .duty_ns = a[2],
                                         .inverted = (a[3] & 1) != 0,
                                         .enabled = (a[3] & 2) != 0}));
      }
      return invalid();
    case Kind::kI2c:
      return PerformI2c(backend, channel, request, in, out);
    case Kind::kSpi:
      return PerformSpi(backend, channel, request, in, out);
    case Kind::kUart:  // relayed, never asked
      break;
  }
  return invalid();
}

}  // namespace

Expected<std::unique_ptr<PeripheralServer>> PeripheralServer::Start(const BoardDefinition& board,
                                                                    Peripherals& backend) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  Fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake.get();
  if (epoll.get() < 0 || wake.get() < 0 ||
      ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) != 0) {
    return Fail(CoreErrc::kIo, "cannot make the peripheral server's epoll");
  }
  return std::unique_ptr<PeripheralServer>(
      new PeripheralServer(board, backend, std::move(epoll), std::move(wake)));
}

PeripheralServer::PeripheralServer(const BoardDefinition& board, Peripherals& backend, Fd epoll,
                                   Fd wake)
    : board_(board), backend_(backend), epoll_(std::move(epoll)), wake_(std::move(wake)) {
  thread_ = std::thread([this] { Serve(); });
}

PeripheralServer::~PeripheralServer() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  const std::uint64_t one = 1;
  (void)::write(wake_.get(), &one, sizeof one);
  thread_.join();
  const std::lock_guard lock(mutex_);
  while (!channels_.empty()) Close(channels_.begin()->first);
}

Expected<void> PeripheralServer::Claim(const std::string& key, const std::string& owner) {
  // A block serves one function at a time: its SPI chip selects ("ISU0 CS A") exclude its UART
  // and I2C ("ISU0"), and the other way round.
  const bool chip_select = key.ends_with(" CS A") || key.ends_with(" CS B");
  const std::string block = chip_select ? key.substr(0, key.size() - 5) : key;
  const bool other_function =
      chip_select ? held_.contains(block)
                  : held_.contains(block + " CS A") || held_.contains(block + " CS B");
  if (other_function || !held_.emplace(key, owner).second) {
    return Errno(std::errc::device_or_resource_busy, key);
  }
  return {};
}

Expected<Fd> PeripheralServer::Add(std::unique_ptr<Channel> channel) {
  std::array<int, 2> pair{};
  // A UART is a byte stream; the others answer one message with one.
  const int type = channel->kind == Kind::kUart ? SOCK_STREAM : SOCK_SEQPACKET;
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair.data()) != 0) {
    return Errno(std::errc::io_error, "cannot make a peripheral channel");
  }
  Fd app(pair[1]);
  channel->own_end = Fd(pair[0]);
  // The app's end blocks, as a device's descriptor does.
  const int flags = ::fcntl(app.get(), F_GETFL);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;
  event.data.fd = channel->own_end.get();
  if (flags < 0 || ::fcntl(app.get(), F_SETFL, flags & ~O_NONBLOCK) != 0 ||
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event.data.fd, &event) != 0) {
    return Errno(std::errc::io_error, "cannot serve a peripheral channel");
  }
  if (channel->kind == Kind::kUart) {
    epoll_event device{};
    device.events = EPOLLIN;
    device.data.fd = channel->device.get();
    const int device_flags = ::fcntl(device.data.fd, F_GETFL);
    if (device_flags < 0 || ::fcntl(device.data.fd, F_SETFL, device_flags | O_NONBLOCK) != 0 ||
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, device.data.fd, &device) != 0) {
      (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, event.data.fd, nullptr);
      return Errno(std::errc::io_error, "cannot relay the UART");
    }
    devices_[device.data.fd] = event.data.fd;
  }
  channels_[event.data.fd] = std::move(channel);
  return app;
}

Expected<Fd> PeripheralServer::OpenGpio(const std::string& owner, int gpio, GpioMode mode,
                                        bool value) {
  const std::lock_guard lock(mutex_);
  const std::string key = "gpio " + std::to_string(gpio);
  if (auto ok = Claim(key, owner); !ok) return std::unexpected(ok.error());
  auto opened = backend_.OpenGpio(gpio, mode, value);
  Expected<Fd> app = opened ? Add(std::make_unique<Channel>(Channel{
                                  .kind = Kind::kGpio, .key = key, .owner = owner, .gpio = gpio}))
                            : std::unexpected(opened.error());
  if (!app) {
    if (opened) backend_.CloseGpio(gpio);
    held_.erase(key);
  }
  return app;
}

Expected<Fd> PeripheralServer::OpenUart(const std::string& owner, const std::string& block,
                                        const UartSettings& settings) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Claim(block, owner); !ok) return std::unexpected(ok.error());
  auto device = backend_.OpenUart(block, settings);
  Expected<Fd> app = device ? Add(std::make_unique<Channel>(Channel{.kind = Kind::kUart,
                                                                    .key = block,
                                                                    .owner = owner,
                                                                    .block = block,
                                                                    .device = std::move(*device)}))
                            : std::unexpected(device.error());
  if (!app) {
    if (device) backend_.CloseUart(block);
    held_.erase(block);
  }
  return app;
}

Expected<Fd> PeripheralServer::OpenBlock(PeripheralKind kind, const std::string& owner,
                                         const std::string& block) {
  const std::lock_guard lock(mutex_);
  if (auto ok = Claim(block, owner); !ok) return std::unexpected(ok.error());
  auto app = Add(std::make_unique<Channel>(
      Channel{.kind = kind, .key = block, .owner = owner, .block = block}));
  if (!app) held_.erase(block);
  return app;
}

Expected<Fd> PeripheralServer::OpenAdc(const std::string& owner, const std::string& block) {
  return OpenBlock(Kind::kAdc, owner, block);
}

Expected<Fd> PeripheralServer::OpenPwm(const std::string& owner, const std::string& block) {
  return OpenBlock(Kind::kPwm, owner, block);
}

Expected<Fd> PeripheralServer::OpenI2c(const std::string& owner, const std::string& block) {
  return OpenBlock(Kind::kI2c, owner, block);
}

Expected<Fd> PeripheralServer::OpenSpi(const std::string& owner, const std::string& block,
                                       int chip_select) {
  if (chip_select != -1 && chip_select != -2) {
    return Errno(std::errc::invalid_argument, "the chip select is A (-1) or B (-2)");
  }
  const std::lock_guard lock(mutex_);
  // Each chip select of a block is opened on its own, but the block is one app's.
  const std::string key = block + " CS " + (chip_select == -1 ? "A" : "B");
  const auto other = held_.find(block + " CS " + (chip_select == -1 ? "B" : "A"));
  if (other != held_.end() && other->second != owner) {
    return Errno(std::errc::device_or_resource_busy, block);
  }
  if (auto ok = Claim(key, owner); !ok) return std::unexpected(ok.error());
  auto app = Add(std::make_unique<Channel>(Channel{.kind = Kind::kSpi,
                                                   .key = key,
                                                   .owner = owner,
                                                   .block = block,
                                                   .spi = {.chip_select = chip_select}}));
  if (!app) held_.erase(key);
  return app;
}

void PeripheralServer::Close(int fd) {
  const auto found = channels_.find(fd);
  if (found == channels_.end()) return;
  const Channel& channel = *found->second;
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  if (channel.kind == Kind::kGpio) backend_.CloseGpio(channel.gpio);
  if (channel.kind == Kind::kPwm) backend_.ClosePwm(channel.block);
  if (channel.kind == Kind::kUart) {
    (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, channel.device.get(), nullptr);
    devices_.erase(channel.device.get());
    backend_.CloseUart(channel.block);
  }
  held_.erase(channel.key);
  channels_.erase(found);
}

void PeripheralServer::Release(const std::string& owner) {
  const std::lock_guard lock(mutex_);
  std::vector<int> owned;
  for (const auto& [fd, channel] : channels_) {
    if (channel->owner == owner) owned.push_back(fd);
  }
  for (const int fd : owned) Close(fd);
}

void PeripheralServer::Serve() {
  std::array<epoll_event, 16> events{};
  for (;;) {
    const int ready = ::epoll_wait(epoll_.get(), events.data(), events.size(), -1);
    if (ready < 0 && errno != EINTR) {
      log::Error("peripheral server: epoll_wait failed: {}",
                 std::generic_category().message(errno));
      return;
    }
    for (int i = 0; i < ready; ++i) {
      // One request at a time under the lock, so opening and releasing never wait for a batch.
      const std::lock_guard lock(mutex_);
      if (stopping_) return;
      const epoll_event& event = events[static_cast<std::size_t>(i)];
      if (event.data.fd == wake_.get()) continue;
      const auto device = devices_.find(event.data.fd);
      const int fd = device == devices_.end() ? event.data.fd : device->second;
      const auto found = channels_.find(fd);
      // Closed by Release since epoll_wait returned.
      if (found == channels_.end()) continue;
      const bool hung_up = (event.events & (EPOLLHUP | EPOLLRDHUP)) != 0 && fd == event.data.fd;
      const bool alive = found->second->kind == Kind::kUart
                             ? Relay(*found->second, event.events, fd != event.data.fd)
                             : Answer(*found->second, hung_up);
      if (!alive) Close(fd);
    }
  }
}

bool PeripheralServer::Relay(Channel& uart, std::uint32_t events, bool from_device) {
  // The app closed (or shut down) its end, or the device went away (a USB adapter pulled): the
  // channel ends, and the UART is free again.
  if ((events & (from_device ? EPOLLHUP | EPOLLERR : EPOLLHUP | EPOLLRDHUP | EPOLLERR)) != 0) {
    return false;
  }
  std::array<std::uint8_t, kUartChunk> buffer{};
  // From the app to the device.
  if (uart.to_device.empty()) {
    // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): MSG_DONTWAIT
    const ssize_t got = ::recv(uart.own_end.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return false;  // it closed
    if (got > 0) uart.to_device.assign(buffer.begin(), buffer.begin() + got);
  }
  if (!uart.to_device.empty()) {
    const ssize_t put = ::write(uart.device.get(), uart.to_device.data(), uart.to_device.size());
    if (put > 0) uart.to_device.erase(uart.to_device.begin(), uart.to_device.begin() + put);
    // A device that fails loses what it was given, as a wire would.
    if (put < 0 && errno != EAGAIN && errno != EINTR) uart.to_device.clear();
  }
  // From the device to the app.
  if (uart.to_app.empty()) {
    // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): the device is non-blocking
    const ssize_t got = ::read(uart.device.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EIO) return false;  // hung up
    if (got > 0) uart.to_app.assign(buffer.begin(), buffer.begin() + got);
  }
  if (!uart.to_app.empty()) {
    const ssize_t put = ::send(uart.own_end.get(), uart.to_app.data(), uart.to_app.size(),
                               MSG_DONTWAIT | MSG_NOSIGNAL);
    if (put < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (put > 0) uart.to_app.erase(uart.to_app.begin(), uart.to_app.begin() + put);
  }
  // Each side is read only once what was read from it has gone on, and watched for room only
  // while something waits for it.
  epoll_event app{};
  app.events =
      EPOLLRDHUP | (uart.to_device.empty() ? EPOLLIN : 0U) | (uart.to_app.empty() ? 0U : EPOLLOUT);
  app.data.fd = uart.own_end.get();
  epoll_event device{};
  device.events = (uart.to_app.empty() ? EPOLLIN : 0U) | (uart.to_device.empty() ? 0U : EPOLLOUT);
  device.data.fd = uart.device.get();
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, app.data.fd, &app) == 0 &&
         ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, device.data.fd, &device) == 0;
}

bool PeripheralServer::Answer(Channel& channel, bool hung_up) {
  std::vector<std::uint8_t> message(wp::kMaxMessage + 1);
  // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): aspisd's end is non-blocking
  const ssize_t got = ::recv(channel.own_end.get(), message.data(), message.size(), 0);
  // An empty message reads as the end does; only the hang-up says the app closed its end.
  if (got == 0 && hung_up) return false;
  if (got < 0) return errno == EAGAIN || errno == EINTR;
  const auto size = static_cast<std::size_t>(got);
  wp::Request request{};
  if (size >= sizeof request) std::memcpy(&request, message.data(), sizeof request);
  // Only transfers carry data, and no more than kMaxData.
  const bool carries = request.op == wp::Op::kI2cTransfer || request.op == wp::Op::kSpiTransfer;
  const bool well_formed = size >= sizeof request && request.length == size - sizeof request &&
                           request.length <= wp::kMaxData && (carries || request.length == 0);
  std::vector<std::uint8_t> data;
  const auto value =
      well_formed
          ? Perform(backend_, channel, request,
                    std::span<const std::uint8_t>(message).subspan(sizeof request, request.length),
                    data)
          : Errno(std::errc::invalid_argument, "malformed request");
  wp::Reply reply{};
  reply.error = value ? 0 : ErrnoOf(value.error());
  reply.value = value.value_or(0);
  if (reply.error != 0) data.clear();
  reply.length = static_cast<std::uint32_t>(data.size());
  std::vector<std::uint8_t> out(sizeof reply + data.size());
  std::memcpy(out.data(), &reply, sizeof reply);
  std::copy(data.begin(), data.end(), out.begin() + sizeof reply);
  // The app waits for this answer; one that stopped reading loses it, and only its own call.
  (void)::send(channel.own_end.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return true;
}

}  // namespace aspis::device::board
