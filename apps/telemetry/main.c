/* telemetry: reads the LSM6DS3 accelerometer over I2C and posts each reading over HTTPS to the
 * cloud, authenticated with the device's certificate (mutual TLS: the app certificate the tenant
 * CA issued, which the device renews daily), as Azure Sphere apps reach their own services.
 *
 * CmdArgs: the URL to post to, the seconds between readings, and optionally the path (in the
 * image package) of the CA certificate that issued the server's; without it the system's CA
 * store is used. The manifest must allow the URL's host (AllowedConnections) and name the
 * device's tenant (DeviceAuthentication). Each post is {"acceleration_mg": [x, y, z]}. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include <applibs/eventloop.h>
#include <applibs/i2c.h>
#include <applibs/log.h>
#include <applibs/storage.h>
#include <tlsutils/deviceauth_curl.h>

#include <hw/sample_appliance.h>

enum {
  kAddress = 0x6a, /* the LSM6DS3's I2C address with SA0 high */
  kWhoAmI = 0x0f,  /* reads 0x69 */
  kCtrl1Xl = 0x10, /* accelerometer: 0x40 is 104 Hz, +-2 g (0.061 mg a bit) */
  kCtrl3C = 0x12,  /* 0x44: block data update, register address auto-increment */
  kOutXlXl = 0x28, /* X, Y, Z, each 16 bits little-endian */
};

static volatile sig_atomic_t exit_code = 0;
static int i2c = -1;
static const char* url;
static const char* ca_file;

static void Terminate(int signal) {
  (void)signal;
  exit_code = 1;
}

static int WriteRegister(uint8_t reg, uint8_t value) {
  const uint8_t bytes[] = {reg, value};
  return I2CMaster_Write(i2c, kAddress, bytes, sizeof bytes) == (ssize_t)sizeof bytes ? 0 : -1;
}

static int ReadRegisters(uint8_t reg, uint8_t* out, size_t length) {
  return I2CMaster_WriteThenRead(i2c, kAddress, &reg, 1, out, length) == (ssize_t)(1 + length) ? 0
                                                                                               : -1;
}

/* The cloud's answer is not needed: dropped, as much as it sends (within the timeout). */
static size_t Discard(char* data, size_t size, size_t count, void* context) {
  (void)data;
  (void)context;
  return size * count;
}

static void Post(const char* body) {
  CURL* curl = curl_easy_init();
  if (curl == NULL) return;
  struct curl_slist* headers = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, DeviceAuth_CurlSslFunc);
  if (ca_file != NULL) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
  const CURLcode result = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (result != CURLE_OK) {
    Log_Debug("telemetry: post failed: %s\n", curl_easy_strerror(result));
  } else {
    Log_Debug("telemetry: posted %s, HTTP %ld\n", body, status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}

static void ReadAndPost(EventLoop* loop, int fd, EventLoop_IoEvents events, void* context) {
  (void)loop;
  (void)events;
  (void)context;
  uint64_t expirations;
  if (read(fd, &expirations, sizeof expirations) != sizeof expirations) return;
  uint8_t raw[6];
  if (ReadRegisters(kOutXlXl, raw, sizeof raw) != 0) {
    Log_Debug("ERROR: reading the accelerometer: %s (%d)\n", strerror(errno), errno);
    exit_code = 2;
    return;
  }
  long mg[3];
  for (int axis = 0; axis < 3; ++axis) {
    const int16_t value = (int16_t)(raw[2 * axis] | (raw[2 * axis + 1] << 8));
    mg[axis] = lround(value * 0.061);
  }
  char body[96];
  snprintf(body, sizeof body, "{\"acceleration_mg\": [%ld, %ld, %ld]}", mg[0], mg[1], mg[2]);
  Post(body);
}

int main(int argc, char* argv[]) {
  if (argc < 3) {
    Log_Debug("ERROR: CmdArgs: URL, seconds between readings[, CA certificate in the package]\n");
    return 1;
  }
  url = argv[1];
  const long seconds = strtol(argv[2], NULL, 10);
  if (argc > 3) ca_file = Storage_GetAbsolutePathInImagePackage(argv[3]);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = Terminate;
  sigaction(SIGTERM, &action, NULL);

  i2c = I2CMaster_Open(SAMPLE_LSM6DS3_I2C);
  uint8_t identity = 0;
  if (i2c < 0 || I2CMaster_SetBusSpeed(i2c, I2C_BUS_SPEED_STANDARD) != 0 ||
      ReadRegisters(kWhoAmI, &identity, 1) != 0 || identity != 0x69 ||
      WriteRegister(kCtrl3C, 0x44) != 0 || WriteRegister(kCtrl1Xl, 0x40) != 0) {
    Log_Debug("ERROR: the LSM6DS3 (WHO_AM_I 0x%02x): %s (%d)\n", identity, strerror(errno), errno);
    return 1;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  EventLoop* loop = EventLoop_Create();
  const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  const struct itimerspec every = {{seconds > 0 ? seconds : 60, 0}, {0, 1}};
  if (loop == NULL || timer < 0 || timerfd_settime(timer, 0, &every, NULL) != 0 ||
      EventLoop_RegisterIo(loop, timer, EventLoop_Input, ReadAndPost, NULL) == NULL) {
    Log_Debug("ERROR: the event loop: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  Log_Debug("telemetry running: a reading to %s every %ld s\n", url, seconds);
  while (exit_code == 0) {
    if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) exit_code = 5;
  }
  EventLoop_Close(loop);
  close(timer);
  curl_global_cleanup();
  return exit_code == 1 ? 0 : (int)exit_code;
}
