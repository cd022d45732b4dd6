/* An app written against libaspis-applibs, as a publisher writes one, for the tests: each mode
 * exercises one part of the API on the board aspisd gives it and prints what happened, one line
 * each ("gpio-open 8: ok", "gpio-open 9: EACCES"), then waits to be stopped. */
#define _GNU_SOURCE
#include <applibs/adc.h>
#include <applibs/eventloop.h>
#include <applibs/gpio.h>
#include <applibs/log.h>
#include <applibs/pwm.h>
#include <applibs/storage.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void Report(const char* what, int result) {
  if (result < 0) {
    Log_Debug("%s: %s\n", what, strerrorname_np(errno));
  } else {
    Log_Debug("%s: ok\n", what);
  }
}

static int button_fd = -1;
static int led_fd = -1;
static GPIO_Value_Type last = 2;

static void Tick(EventLoop* el, int fd, EventLoop_IoEvents events, void* context) {
  (void)el;
  (void)events;
  (void)context;
  uint64_t expirations = 0;
  if (read(fd, &expirations, sizeof expirations) != sizeof expirations) return;
  GPIO_Value_Type value = GPIO_Value_High;
  if (GPIO_GetValue(button_fd, &value) != 0) {
    Report("gpio-get", -1);
    exit(1);
  }
  if (value != last) {
    last = value;
    /* Both are active low: the LED is lit while the button is held down. */
    Report(value == GPIO_Value_Low ? "pressed" : "released", GPIO_SetValue(led_fd, value));
  }
}

/* An LED follows a button, read every 10 ms from an event loop's timer. */
static int Follow(int button, int led) {
  button_fd = GPIO_OpenAsInput(button);
  led_fd = GPIO_OpenAsOutput(led, GPIO_OutputMode_PushPull, GPIO_Value_High);
  if (button_fd < 0 || led_fd < 0) {
    Report("follow", -1);
    return 1;
  }
  EventLoop* loop = EventLoop_Create();
  const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  const struct itimerspec period = {{0, 10000000}, {0, 10000000}};
  if (loop == NULL || timer < 0 || timerfd_settime(timer, 0, &period, NULL) != 0 ||
      EventLoop_RegisterIo(loop, timer, EventLoop_Input, Tick, NULL) == NULL) {
    Report("event loop", -1);
    return 1;
  }
  Report("following", 0);
  for (;;) {
    if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) {
      Report("run", -1);
      return 1;
    }
  }
}

int main(int argc, char** argv) {
  setvbuf(stderr, NULL, _IOLBF, 0);
  const char* mode = argc > 1 ? argv[1] : "";
  char what[64];
  if (strcmp(mode, "follow") == 0 && argc == 4) return Follow(atoi(argv[2]), atoi(argv[3]));
  if (strcmp(mode, "gpio-open") == 0) {
    /* Each GPIO named, opened as an output: the descriptors stay open. */
    for (int i = 2; i < argc; ++i) {
      snprintf(what, sizeof what, "gpio-open %s", argv[i]);
      Report(what, GPIO_OpenAsOutput(atoi(argv[i]), GPIO_OutputMode_PushPull, GPIO_Value_Low));
    }
  } else if (strcmp(mode, "adc") == 0 && argc == 4) {
    const int fd = ADC_Open((ADC_ControllerId)atoi(argv[2]));
    Report("adc-open", fd);
    const ADC_ChannelId channel = (ADC_ChannelId)atoi(argv[3]);
    Log_Debug("adc-bits: %d\n", ADC_GetSampleBitCount(fd, channel));
    Report("adc-reference", ADC_SetReferenceVoltage(fd, channel, 2.5f));
    uint32_t sample = 0;
    Report("adc-poll", ADC_Poll(fd, channel, &sample));
    Log_Debug("adc-sample: %u\n", sample);
    Report("adc-channel-99", ADC_Poll(fd, 99, &sample));
  } else if (strcmp(mode, "pwm") == 0 && argc == 6) {
    const int fd = PWM_Open((PWM_ControllerId)atoi(argv[2]));
    Report("pwm-open", fd);
    const PwmState state = {(unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]), PWM_Polarity_Normal,
                            true};
    Report("pwm-apply", PWM_Apply(fd, (PWM_ChannelId)atoi(argv[3]), &state));
    const PwmState too_long = {1000, 2000, PWM_Polarity_Normal, true};
    Report("pwm-apply-longer-duty", PWM_Apply(fd, (PWM_ChannelId)atoi(argv[3]), &too_long));
  } else if (strcmp(mode, "storage") == 0) {
    const int fd = Storage_OpenMutableFile();
    Report("storage-open", fd);
    Report("storage-write", fd < 0 ? -1 : (int)write(fd, "kept", 4));
    Report("storage-package", Storage_OpenFileInImagePackage("app_manifest.json"));
    Report("storage-package-escape", Storage_OpenFileInImagePackage("../x"));
  } else {
    Log_Debug("unknown mode %s\n", mode);
    return 2;
  }
  Log_Debug("done\n");
  pause();
  return 0;
}
