#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "device/board/board_definition.hpp"
#include "device/board/peripherals.hpp"

// Serves the peripherals apps open (wire/peripheral.hpp): each open GPIO, ADC or PWM controller,
// I2C or SPI master is a channel whose other end the app holds; a UART is a stream socket whose
// bytes the server relays to and from the backend's descriptor (so the app never holds a terminal
// it could open again, and closing it frees the UART). The broker has checked the manifest before
// it opens anything here; this checks that the peripheral is free, that what the app sends is well
// formed, and passes each call to the backend. A peripheral is the app's until it closes the
// channel or Release frees everything it holds. Errors are std::errc codes, the errno the app sees:
// EBUSY for a peripheral already open, and what the backend says. Thread-safe; calls reach the
// backend one at a time.
namespace aspis::device::board {

// An I2C master's transfer timeout (I2CMaster_SetTimeout): 10 ms steps, and at most a second, the
// longest a transfer may hold the server every app's peripherals wait on (also the default).
inline constexpr std::chrono::milliseconds kMinI2cTimeout{10};
inline constexpr std::chrono::milliseconds kMaxI2cTimeout{1000};

struct PeripheralChannel;  // an open peripheral and aspisd's end of its channel
enum class PeripheralKind;

class PeripheralServer {
 public:
  // `board` and `backend` must outlive the server. Errors: kIo when the thread's epoll or eventfd
  // cannot be made.
  static Expected<std::unique_ptr<PeripheralServer>> Start(const BoardDefinition& board,
                                                           Peripherals& backend);
  ~PeripheralServer();
  PeripheralServer(const PeripheralServer&) = delete;
  PeripheralServer& operator=(const PeripheralServer&) = delete;

  // `owner` is the app's component ID. Each returns the descriptor the app receives.
  Expected<Fd> OpenGpio(const std::string& owner, int gpio, GpioMode mode, bool value);
  Expected<Fd> OpenAdc(const std::string& owner, const std::string& block);
  Expected<Fd> OpenPwm(const std::string& owner, const std::string& block);
  Expected<Fd> OpenI2c(const std::string& owner, const std::string& block);
  Expected<Fd> OpenSpi(const std::string& owner, const std::string& block, int chip_select);
  Expected<Fd> OpenUart(const std::string& owner, const std::string& block,
                        const UartSettings& settings);
  // Frees every peripheral `owner` holds: its app ended.
  void Release(const std::string& owner);

 private:
  using Channel = PeripheralChannel;
  PeripheralServer(const BoardDefinition& board, Peripherals& backend, Fd epoll, Fd wake);
  // An ADC, PWM or I2C controller's channel.
  Expected<Fd> OpenBlock(PeripheralKind kind, const std::string& owner, const std::string& block);
  // Makes the channel for `channel` (filled in but for its descriptor) and returns the app's end.
  Expected<Fd> Add(std::unique_ptr<Channel> channel);
  // Whether `key` ("gpio 8", "ISU0") is free; takes it for `owner` if so.
  Expected<void> Claim(const std::string& key, const std::string& owner);
  void Serve();
  // Answers one request on `channel`; false once the app closed its end (`hung_up`: epoll said
  // so).
  bool Answer(Channel& channel, bool hung_up);
  // Moves what is waiting between a UART's app end and its device (`events` from epoll, on the
  // device's descriptor when `from_device`); false once the app closed its end or the device hung
  // up.
  bool Relay(Channel& uart, std::uint32_t events, bool from_device);
  void Close(int fd);  // with mutex_ held

  const BoardDefinition& board_;
  Peripherals& backend_;
  Fd epoll_;
  Fd wake_;
  std::mutex mutex_;
  std::map<int, std::unique_ptr<Channel>> channels_;  // by aspisd's end; guarded by mutex_
  std::map<int, int> devices_;               // a UART's device descriptor -> its channel's; guarded
  std::map<std::string, std::string> held_;  // peripheral key -> owner; guarded
  bool stopping_ = false;                    // guarded by mutex_
  std::thread thread_;
};

}  // namespace aspis::device::board
