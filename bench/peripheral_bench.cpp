// What an app pays to drive the board through aspisd: a GPIO set and get through its peripheral
// channel (libaspis-applibs to the peripheral server and the virtual board) beside the same two
// round trips over a bare socket pair with an echoing thread, the floor of any call through
// aspisd; and UART throughput through the virtual board's pseudo-terminal beside a pipe.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <applibs/gpio.h>
#include <benchmark/benchmark.h>

#include <array>
#include <thread>

#include "core/fd.hpp"
#include "device/board/peripheral_server.hpp"
#include "device/board/sim_board.hpp"
#include "limit_reporter.hpp"

namespace aspis {
namespace {

constexpr char kApp[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
constexpr std::size_t kChunk = 4096;

const device::board::BoardDefinition& Board() {
  static const auto board = *device::board::BoardDefinition::Load(ASPIS_SIM_BOARD);
  return board;
}

void GpioSetGet(benchmark::State& state) {
  device::board::SimBoard sim(Board());
  auto server = device::board::PeripheralServer::Start(Board(), sim);
  auto fd = (*server)->OpenGpio(kApp, 8, device::board::GpioMode::kPushPull, true);
  if (!fd) {
    state.SkipWithError(fd.error().message().c_str());
    return;
  }
  GPIO_Value_Type value = GPIO_Value_High;
  for (auto _ : state) {
    value = value == GPIO_Value_High ? GPIO_Value_Low : GPIO_Value_High;
    if (GPIO_SetValue(fd->get(), value) != 0 || GPIO_GetValue(fd->get(), &value) != 0) {
      state.SkipWithError("GPIO call failed");
      break;
    }
  }
}

// Two round trips of a 24-byte request and 12-byte answer over a SOCK_SEQPACKET pair, answered by
// a thread: what GpioSetGet costs without aspisd's work.
void SocketRoundTrips(benchmark::State& state) {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair.data()) != 0) {
    state.SkipWithError("socketpair");
    return;
  }
  Fd mine(pair[0]);
  Fd theirs(pair[1]);
  std::thread echo([fd = theirs.get()] {
    std::array<char, 64> message{};
    while (::recv(fd, message.data(), message.size(), 0) > 0) {
      if (::send(fd, message.data(), 12, MSG_NOSIGNAL) != 12) break;
    }
  });
  std::array<char, 24> request{};
  std::array<char, 64> answer{};
  for (auto _ : state) {
    for (int i = 0; i < 2; ++i) {
      (void)::send(mine.get(), request.data(), request.size(), MSG_NOSIGNAL);
      benchmark::DoNotOptimize(::recv(mine.get(), answer.data(), answer.size(), 0));
    }
  }
  ::shutdown(mine.get(), SHUT_RDWR);
  echo.join();
}

// Moves one 4 KiB chunk from `write_end` to `read_end` per iteration, read on another thread.
void Stream(benchmark::State& state, int write_end, int read_end) {
  std::thread reader([read_end, total = state.max_iterations * kChunk] {
    std::array<char, kChunk> buffer{};
    for (std::size_t got = 0; got < total;) {
      const ssize_t n = ::read(read_end, buffer.data(), buffer.size());
      if (n <= 0) return;
      got += static_cast<std::size_t>(n);
    }
  });
  std::array<char, kChunk> chunk{};
  for (auto _ : state) {
    for (std::size_t sent = 0; sent < kChunk;) {
      const ssize_t n = ::write(write_end, chunk.data() + sent, kChunk - sent);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
  }
  reader.join();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kChunk));
}

void UartThroughput(benchmark::State& state) {
  device::board::SimBoard sim(Board());
  auto server = device::board::PeripheralServer::Start(Board(), sim);
  auto uart = (*server)->OpenUart(kApp, "ISU0", {.baud_rate = 3'000'000});
  auto path = sim.UartPath("ISU0");
  if (!uart || !path) {
    state.SkipWithError("cannot open the UART");
    return;
  }
  const Fd far_end(::open(path->c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  Stream(state, uart->get(), far_end.get());
}

void PipeThroughput(benchmark::State& state) {
  std::array<int, 2> pipe{};
  if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  const Fd read_end(pipe[0]);
  const Fd write_end(pipe[1]);
  Stream(state, write_end.get(), read_end.get());
}

BENCHMARK(GpioSetGet)->MinTime(1);
BENCHMARK(SocketRoundTrips)->MinTime(1);
BENCHMARK(UartThroughput)->Iterations(20000);
BENCHMARK(PipeThroughput)->Iterations(20000);

}  // namespace
}  // namespace aspis

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  aspis::bench::LimitReporter reporter(
      {{"GpioSetGet/min_time:1.000", "SocketRoundTrips/min_time:1.000"},
       {"UartThroughput/iterations:20000", "PipeThroughput/iterations:20000"}});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
