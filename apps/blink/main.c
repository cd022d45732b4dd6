/* blink: the sample every Aspis board runs first. On the virtual MT3620 board (and any board with
 * a hardware definition for the "sample appliance"):
 *  - LED 2 (red) follows button A: lit while it is held down;
 *  - LED 1 (green) blinks from a PWM channel, at the rate button B steps through (1 Hz, 2 Hz,
 *    4 Hz, then 1 Hz again).
 * Written against libaspis-applibs as an Azure Sphere app is written against applibs: the
 * peripherals named through hw/sample_appliance.h, an event loop, a timer to poll the buttons, and
 * SIGTERM ending it cleanly. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <applibs/eventloop.h>
#include <applibs/gpio.h>
#include <applibs/log.h>
#include <applibs/pwm.h>

#include <hw/sample_appliance.h>

static volatile sig_atomic_t exit_code = 0;

static int button_a = -1;
static int button_b = -1;
static int led = -1;
static int pwm = -1;
static GPIO_Value_Type last_a = GPIO_Value_High;
static GPIO_Value_Type last_b = GPIO_Value_High;
static unsigned rate = 0; /* index into the periods below */

static const unsigned periods_ns[] = {1000000000u, 500000000u, 250000000u};

static void Terminate(int signal) {
  (void)signal;
  exit_code = 1;
}

static int ApplyBlink(void) {
  const PwmState state = {.period_nsec = periods_ns[rate],
                          .dutyCycle_nsec = periods_ns[rate] / 2,
                          .polarity = PWM_Polarity_Inversed, /* the LED is lit while low */
                          .enabled = true};
  if (PWM_Apply(pwm, SAMPLE_LED_PWM_CHANNEL, &state) != 0) {
    Log_Debug("ERROR: PWM_Apply: %s (%d)\n", strerror(errno), errno);
    return -1;
  }
  Log_Debug("blinking every %u ms\n", periods_ns[rate] / 1000000u);
  return 0;
}

static void PollButtons(EventLoop *loop, int fd, EventLoop_IoEvents events, void *context) {
  (void)loop;
  (void)events;
  (void)context;
  uint64_t expirations;
  if (read(fd, &expirations, sizeof expirations) != sizeof expirations) return;
  GPIO_Value_Type a, b;
  if (GPIO_GetValue(button_a, &a) != 0 || GPIO_GetValue(button_b, &b) != 0) {
    Log_Debug("ERROR: GPIO_GetValue: %s (%d)\n", strerror(errno), errno);
    exit_code = 2;
    return;
  }
  if (a != last_a) {
    /* Button and LED are both active low: the LED shows the button's level. */
    if (GPIO_SetValue(led, a) != 0) exit_code = 3;
    Log_Debug("button A %s\n", a == GPIO_Value_Low ? "pressed" : "released");
    last_a = a;
  }
  if (b != last_b) {
    if (b == GPIO_Value_Low) {
      rate = (rate + 1) % (sizeof periods_ns / sizeof periods_ns[0]);
      if (ApplyBlink() != 0) exit_code = 4;
    }
    last_b = b;
  }
}

int main(void) {
  Log_Debug("blink starting\n");
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = Terminate;
  sigaction(SIGTERM, &action, NULL);

  button_a = GPIO_OpenAsInput(SAMPLE_BUTTON_1);
  button_b = GPIO_OpenAsInput(SAMPLE_BUTTON_2);
  led = GPIO_OpenAsOutput(SAMPLE_RGBLED_RED, GPIO_OutputMode_PushPull, GPIO_Value_High);
  pwm = PWM_Open(SAMPLE_LED_PWM_CONTROLLER);
  if (button_a < 0 || button_b < 0 || led < 0 || pwm < 0) {
    Log_Debug("ERROR: opening the peripherals: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  if (ApplyBlink() != 0) return 1;

  EventLoop *loop = EventLoop_Create();
  const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  const struct itimerspec every_10_ms = {{0, 10000000}, {0, 10000000}};
  if (loop == NULL || timer < 0 || timerfd_settime(timer, 0, &every_10_ms, NULL) != 0 ||
      EventLoop_RegisterIo(loop, timer, EventLoop_Input, PollButtons, NULL) == NULL) {
    Log_Debug("ERROR: the event loop: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  Log_Debug("blink running: press button A to light LED 2, button B to change LED 1's rate\n");
  while (exit_code == 0) {
    if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) exit_code = 5;
  }
  EventLoop_Close(loop);
  close(timer);
  Log_Debug("blink exiting (%d)\n", (int)exit_code);
  return exit_code == 1 ? 0 : (int)exit_code;
}
