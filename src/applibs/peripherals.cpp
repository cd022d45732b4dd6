// GPIO, ADC and PWM: opened through the broker, then driven over their channels.
#include <applibs/adc.h>
#include <applibs/gpio.h>
#include <applibs/pwm.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "broker_client.hpp"

namespace {

using aspis::applibs::BrokerOpen;
using aspis::applibs::ChannelCall;
using Op = aspis::wire::peripheral::Op;

int Call(int fd, Op op, std::uint32_t a0 = 0, std::uint32_t a1 = 0, std::uint32_t a2 = 0,
         std::uint32_t a3 = 0, std::uint32_t* value = nullptr) {
  return ChannelCall(fd, op, a0, a1, a2, a3, {}, {}, value);
}

int OpenGpio(GPIO_Id gpio, const char* mode, int value) {
  if (gpio < 0) {
    errno = ENODEV;
    return -1;
  }
  return BrokerOpen(R"({"call":"gpio.open","gpio":)" + std::to_string(gpio) + R"(,"mode":")" +
                    mode + R"(","value":)" + std::to_string(value) + "}");
}

int OpenBlock(const char* call, std::uint32_t id) {
  return BrokerOpen(std::string(R"({"call":")") + call + R"(","id":)" + std::to_string(id) + "}");
}

}  // namespace

extern "C" {

int GPIO_OpenAsInput(GPIO_Id gpioId) { return OpenGpio(gpioId, "input", 0); }

int GPIO_OpenAsOutput(GPIO_Id gpioId, GPIO_OutputMode_Type outputMode,
                      GPIO_Value_Type initialValue) {
  static constexpr const char* kModes[] = {"push-pull", "open-drain", "open-source"};
  if (outputMode > GPIO_OutputMode_OpenSource || initialValue > GPIO_Value_High) {
    errno = EINVAL;
    return -1;
  }
  return OpenGpio(gpioId, kModes[outputMode], initialValue);
}

int GPIO_GetValue(int gpioFd, GPIO_Value_Type* outValue) {
  if (outValue == nullptr) {
    errno = EFAULT;
    return -1;
  }
  const int value = Call(gpioFd, Op::kGpioGet);
  if (value < 0) return -1;
  *outValue = value == 0 ? GPIO_Value_Low : GPIO_Value_High;
  return 0;
}

int GPIO_SetValue(int gpioFd, GPIO_Value_Type value) {
  if (value > GPIO_Value_High) {
    errno = EINVAL;
    return -1;
  }
  return Call(gpioFd, Op::kGpioSet, value) < 0 ? -1 : 0;
}

int ADC_Open(ADC_ControllerId id) { return OpenBlock("adc.open", id); }

int ADC_GetSampleBitCount(int fd, ADC_ChannelId channel) { return Call(fd, Op::kAdcBits, channel); }

int ADC_SetReferenceVoltage(int fd, ADC_ChannelId channel, float referenceVoltage) {
  if (!std::isfinite(referenceVoltage) || referenceVoltage <= 0 || referenceVoltage > 100) {
    errno = EINVAL;
    return -1;
  }
  const auto microvolts = static_cast<std::uint32_t>(std::lround(referenceVoltage * 1e6));
  return Call(fd, Op::kAdcReference, channel, microvolts) < 0 ? -1 : 0;
}

int ADC_Poll(int fd, ADC_ChannelId channel, uint32_t* outSampleValue) {
  if (outSampleValue == nullptr) {
    errno = EFAULT;
    return -1;
  }
  return Call(fd, Op::kAdcPoll, channel, 0, 0, 0, outSampleValue) < 0 ? -1 : 0;
}

int PWM_Open(PWM_ControllerId pwm) { return OpenBlock("pwm.open", pwm); }

int PWM_Apply(int pwmFd, PWM_ChannelId pwmChannel, const PwmState* newState) {
  if (newState == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (newState->polarity != PWM_Polarity_Normal && newState->polarity != PWM_Polarity_Inversed) {
    errno = EINVAL;
    return -1;
  }
  const std::uint32_t flags =
      (newState->polarity == PWM_Polarity_Inversed ? 1U : 0U) | (newState->enabled ? 2U : 0U);
  return Call(pwmFd, Op::kPwmApply, pwmChannel, newState->period_nsec, newState->dutyCycle_nsec,
              flags) < 0
             ? -1
             : 0;
}

}  // extern "C"
