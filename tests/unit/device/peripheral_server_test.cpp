// The peripheral server on the virtual board, spoken to as an app would (and as a hostile app
// might) on the channels it hands out.
#include "device/board/peripheral_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#include "device/board/sim_board.hpp"
#include "support/peripheral_channel.hpp"
#include "wire/peripheral.hpp"

namespace aspis::device::board {
namespace {

namespace wp = wire::peripheral;

using aspis::testing::Exchange;

constexpr char kOwner[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

BoardDefinition Sim() { return *BoardDefinition::Load(ASPIS_SIM_BOARD); }

class PeripheralServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_unique<SimBoard>(board_);
    auto server = PeripheralServer::Start(board_, *sim_);
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
  }

  static std::vector<std::uint8_t> Request(wp::Op op, std::uint32_t a0 = 0,
                                           const std::vector<std::uint8_t>& data = {}) {
    return aspis::testing::PeripheralRequest(op, {a0}, data);
  }

  const BoardDefinition board_ = Sim();
  std::unique_ptr<SimBoard> sim_;
  std::unique_ptr<PeripheralServer> server_;
};

TEST_F(PeripheralServerTest, AGpioChannelSetsAndReadsItsGpio) {
  auto fd = server_->OpenGpio(kOwner, 8, GpioMode::kPushPull, true);
  ASSERT_TRUE(fd) << fd.error().message();
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioGet)), std::make_pair(0, 1U));
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioSet, 0)), std::make_pair(0, 0U));
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioGet)), std::make_pair(0, 0U));
  EXPECT_TRUE(sim_->Leds()[0].lit);
}

TEST_F(PeripheralServerTest, MalformedRequestsAreEinvalAndTheChannelLivesOn) {
  auto fd = server_->OpenGpio(kOwner, 8, GpioMode::kPushPull, true);
  ASSERT_TRUE(fd);
  // Shorter than a request; a length that lies; data where none belongs; an op of another
  // peripheral; an op that does not exist; a value out of range; more than the largest message.
  EXPECT_EQ(Exchange(fd->get(), {1, 2, 3}).first, EINVAL);
  auto lying = Request(wp::Op::kGpioGet);
  lying[sizeof(wp::Request) - 4] = 9;
  EXPECT_EQ(Exchange(fd->get(), lying).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kAdcPoll)).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), Request(static_cast<wp::Op>(999))).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioSet, 2)).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioSet, 0, {1})).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(),
                     Request(wp::Op::kGpioGet, 0, std::vector<std::uint8_t>(wp::kMaxData + 1, 0)))
                .first,
            EINVAL);
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioGet)), std::make_pair(0, 1U));
}

TEST_F(PeripheralServerTest, APeripheralIsBusyUntilItsChannelIsClosed) {
  auto first = server_->OpenGpio(kOwner, 8, GpioMode::kPushPull, false);
  ASSERT_TRUE(first);
  auto second = server_->OpenGpio(kOwner, 8, GpioMode::kInput, false);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), std::errc::device_or_resource_busy);
  EXPECT_TRUE(sim_->Leds()[0].lit);
  *first = Fd(-1);  // the app closes it
  for (int i = 0; i < 200 && sim_->Leds()[0].lit; ++i) ::usleep(5000);
  EXPECT_FALSE(sim_->Leds()[0].lit);  // no longer driven
  std::optional<Expected<Fd>> again;
  for (int i = 0;
       i < 200 && !(again = server_->OpenGpio(kOwner, 8, GpioMode::kInput, false))->has_value();
       ++i) {
    ::usleep(5000);
  }
  EXPECT_TRUE(*again);
}

TEST_F(PeripheralServerTest, AnIsuServesOneFunctionAtATime) {
  auto spi = server_->OpenSpi(kOwner, "ISU1", -1);
  ASSERT_TRUE(spi) << spi.error().message();
  EXPECT_EQ(server_->OpenUart("another app", "ISU1", {}).error().code(),
            std::errc::device_or_resource_busy);
  EXPECT_EQ(server_->OpenI2c(kOwner, "ISU1").error().code(), std::errc::device_or_resource_busy);
  auto uart = server_->OpenUart(kOwner, "ISU0", {});
  ASSERT_TRUE(uart) << uart.error().message();
  EXPECT_EQ(server_->OpenSpi(kOwner, "ISU0", -2).error().code(),
            std::errc::device_or_resource_busy);
}

TEST_F(PeripheralServerTest, AnEmptyMessageIsEinvalAndKeepsThePeripheralTheApps) {
  auto fd = server_->OpenGpio(kOwner, 8, GpioMode::kPushPull, false);
  ASSERT_TRUE(fd);
  EXPECT_EQ(Exchange(fd->get(), {}).first, EINVAL);
  EXPECT_EQ(server_->OpenGpio("another", 8, GpioMode::kInput, false).error().code(),
            std::errc::device_or_resource_busy);
  EXPECT_EQ(Exchange(fd->get(), Request(wp::Op::kGpioGet)), std::make_pair(0, 0U));
}

TEST_F(PeripheralServerTest, AUartIsRelayedAndFreedWhenTheAppClosesIt) {
  auto uart = server_->OpenUart(kOwner, "ISU0", {});
  ASSERT_TRUE(uart) << uart.error().message();
  auto path = sim_->UartPath("ISU0");
  ASSERT_TRUE(path);
  const Fd far_end(::open(path->c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  ASSERT_GE(far_end.get(), 0);
  ASSERT_EQ(::write(uart->get(), "to", 2), 2);
  std::array<char, 8> got{};
  ASSERT_EQ(::read(far_end.get(), got.data(), 2), 2);
  EXPECT_EQ(std::string(got.data(), 2), "to");
  ASSERT_EQ(::write(far_end.get(), "back", 4), 4);
  std::string back;
  while (back.size() < 4) {
    const ssize_t n = ::read(uart->get(), got.data(), got.size());
    ASSERT_GT(n, 0);
    back.append(got.data(), static_cast<std::size_t>(n));
  }
  EXPECT_EQ(back, "back");
  *uart = Fd(-1);  // the app closes it
  for (int i = 0; i < 200 && sim_->UartPath("ISU0"); ++i) ::usleep(5000);
  EXPECT_FALSE(sim_->UartPath("ISU0"));
  EXPECT_TRUE(server_->OpenUart(kOwner, "ISU0", {}));
}

TEST_F(PeripheralServerTest, AUartWhoseAppClosesItWhileTheDeviceTakesNothingIsFreed) {
  auto uart = server_->OpenUart(kOwner, "ISU0", {});
  ASSERT_TRUE(uart) << uart.error().message();
  // No one reads the far end: the terminal's buffers fill, then the relay's, then the socket's.
  ASSERT_EQ(::fcntl(uart->get(), F_SETFL, O_NONBLOCK), 0);
  const std::vector<char> chunk(4096, 'x');
  bool full = false;
  for (int i = 0; i < 4096 && !full; ++i) {
    if (::write(uart->get(), chunk.data(), chunk.size()) < 0) {
      full = errno == EAGAIN;
      if (!full) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ASSERT_TRUE(full);
  *uart = Fd(-1);  // the app closes it with data still waiting for the device
  for (int i = 0; i < 200 && sim_->UartPath("ISU0"); ++i) ::usleep(5000);
  EXPECT_FALSE(sim_->UartPath("ISU0"));
  EXPECT_TRUE(server_->OpenUart(kOwner, "ISU0", {}));
}

TEST_F(PeripheralServerTest, ReleaseFreesEverythingAnAppHeldItsUartIncluded) {
  auto gpio = server_->OpenGpio(kOwner, 8, GpioMode::kPushPull, false);
  auto uart = server_->OpenUart(kOwner, "ISU0", {});
  auto spi = server_->OpenSpi(kOwner, "ISU1", -1);
  ASSERT_TRUE(gpio && uart && spi);
  EXPECT_TRUE(sim_->UartPath("ISU0"));
  EXPECT_EQ(server_->OpenUart(kOwner, "ISU0", {}).error().code(),
            std::errc::device_or_resource_busy);
  server_->Release(kOwner);
  EXPECT_FALSE(sim_->UartPath("ISU0"));
  EXPECT_FALSE(sim_->Leds()[0].lit);
  EXPECT_TRUE(server_->OpenUart(kOwner, "ISU0", {}));
  EXPECT_TRUE(server_->OpenSpi(kOwner, "ISU1", -1));
  // The channel Release closed answers nothing more.
  EXPECT_EQ(::send(gpio->get(), "x", 1, MSG_NOSIGNAL), -1);
}

TEST_F(PeripheralServerTest, AnSpiSequenceWhoseLengthsDoNotAddUpIsEinval) {
  auto fd = server_->OpenSpi(kOwner, "ISU1", -1);
  ASSERT_TRUE(fd);
  const auto sequence = [](std::vector<wp::Transfer> headers, std::size_t written) {
    std::vector<std::uint8_t> data(headers.size() * sizeof(wp::Transfer));
    if (!headers.empty()) std::memcpy(data.data(), headers.data(), data.size());
    data.resize(data.size() + written, 0x8f);  // read WHO_AM_I
    auto message = Request(wp::Op::kSpiTransfer, static_cast<std::uint32_t>(headers.size()), data);
    return message;
  };
  EXPECT_EQ(Exchange(fd->get(), sequence({{wp::kTransferWrite, 1}, {wp::kTransferRead, 1}}, 1)),
            std::make_pair(0, 2U));
  EXPECT_EQ(
      Exchange(fd->get(), sequence({{wp::kTransferWrite, 2}, {wp::kTransferRead, 1}}, 1)).first,
      EINVAL);  // says 2 bytes, sends 1
  EXPECT_EQ(Exchange(fd->get(), sequence({{wp::kTransferWrite, 1}}, 3)).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), sequence({{0, 1}}, 0)).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), sequence({{wp::kTransferRead, 0xffffffff}}, 0)).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), sequence({}, 0)).first, EINVAL);
  // A count of four billion transfers is refused before anything is made for them.
  auto huge = sequence({{wp::kTransferRead, 1}}, 0);
  const std::uint32_t count = 0xffffffff;
  std::memcpy(huge.data() + offsetof(wp::Request, arg), &count, sizeof count);
  EXPECT_EQ(Exchange(fd->get(), huge).first, EINVAL);
  EXPECT_EQ(Exchange(fd->get(), sequence({{wp::kTransferWrite, 1}, {wp::kTransferRead, 1}}, 1)),
            std::make_pair(0, 2U));
}

TEST_F(PeripheralServerTest, AnI2cTransferToAnAddressNoOneHoldsIsEnxio) {
  auto fd = server_->OpenI2c(kOwner, "ISU2");
  ASSERT_TRUE(fd);
  wp::Request request{wp::Op::kI2cTransfer, {0x6a, 1, 0, 0}, 1};
  std::vector<std::uint8_t> message(sizeof request);
  std::memcpy(message.data(), &request, sizeof request);
  message.push_back(0x0f);
  EXPECT_EQ(Exchange(fd->get(), message), std::make_pair(0, 2U));
  request.arg[0] = 0x6b;
  std::memcpy(message.data(), &request, sizeof request);
  EXPECT_EQ(Exchange(fd->get(), message).first, ENXIO);
  request.arg[0] = 0x80;
  std::memcpy(message.data(), &request, sizeof request);
  EXPECT_EQ(Exchange(fd->get(), message).first, EINVAL);
}

}  // namespace
}  // namespace aspis::device::board
