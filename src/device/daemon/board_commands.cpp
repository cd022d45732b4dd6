#include "device/daemon/board_commands.hpp"

#include <algorithm>

#include "wire/admin.hpp"

namespace aspis::device {

namespace admin = wire::admin;
using json::Json;

namespace {

Json Failed(const Error& error) { return Json{{"error", error.message()}}; }

std::string Text(const Json& request, const char* field) {
  const Json value = request.value(field, Json());
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_unsigned()) return std::to_string(value.get<std::uint64_t>());
  return "";
}

}  // namespace

bool IsBoardCommand(const json::Json& request) {
  return request.value("command", Json()).is_string() &&
         request.value("command", "").starts_with("board-");
}

json::Json HandleBoardCommand(board::SimBoard* sim, const json::Json& request) {
  const std::string command = request.value("command", "");
  if (sim == nullptr) return Json{{"error", "this device's board is not the virtual one"}};
  if (command == admin::kBoardPress || command == admin::kBoardRelease) {
    const std::string button = Text(request, "button");
    auto done = sim->Press(button, command == admin::kBoardPress);
    if (!done) return Failed(done.error());
    return Json{{"button", button}, {"pressed", command == admin::kBoardPress}};
  }
  if (command == admin::kBoardLeds) {
    Json leds = Json::array();
    for (const auto& led : sim->Leds()) {
      leds.push_back({{"name", led.name}, {"gpio", led.gpio}, {"lit", led.lit}});
    }
    return Json{{"leds", leds}};
  }
  if (command == admin::kBoardSetAdc) {
    const std::string controller = Text(request, "controller");
    const auto channel = request.value("channel", Json());
    const auto value = request.value("value", Json());
    if (!channel.is_number_unsigned() || !value.is_number_unsigned() ||
        channel.get<std::uint64_t>() > 255 || value.get<std::uint64_t>() > UINT32_MAX) {
      return Json{{"error", "set-adc takes a channel and a value"}};
    }
    auto done = sim->SetAdc(controller.empty() ? "ADC-CONTROLLER-0" : controller,
                            channel.get<int>(), value.get<std::uint32_t>());
    if (!done) return Failed(done.error());
    return Json{{"channel", channel}, {"value", value}};
  }
  if (command == admin::kBoardPwm) {
    Json channels = Json::array();
    for (const auto& c : sim->Pwm()) {
      channels.push_back({{"controller", c.block},
                          {"channel", c.channel},
                          {"period_ns", c.state.period_ns},
                          {"duty_ns", c.state.duty_ns},
                          {"inverted", c.state.inverted},
                          {"enabled", c.state.enabled}});
    }
    return Json{{"channels", channels}};
  }
  if (command == admin::kBoardUartPath) {
    const std::string uart = Text(request, "uart");
    auto path = sim->UartPath(uart);
    if (!path) return Failed(path.error());
    return Json{{"uart", uart}, {"path", *path}};
  }
  return Json{{"error", "unknown board command " + command}};
}

}  // namespace aspis::device
