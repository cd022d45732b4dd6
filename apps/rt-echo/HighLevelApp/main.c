/* rt-echo, the high-level side: connects to the real-time app (both manifests list each other in
 * AllowedApplicationConnections), sends it "hello N" every second and logs what comes back, as
 * Azure Sphere's inter-core communication sample does. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <applibs/application.h>
#include <applibs/eventloop.h>
#include <applibs/log.h>

static const char kRealTimeApp[] = "8b2e4f6a-1c3d-4e5f-a7b9-c0d1e2f3a4b5";

static volatile sig_atomic_t exit_code = 0;
static int channel = -1;
static unsigned sent = 0;

static void Terminate(int signal) {
  (void)signal;
  exit_code = 1;
}

static void SendHello(EventLoop* loop, int fd, EventLoop_IoEvents events, void* context) {
  (void)loop;
  (void)events;
  (void)context;
  uint64_t expirations;
  if (read(fd, &expirations, sizeof expirations) != sizeof expirations) return;
  char text[32];
  const int length = snprintf(text, sizeof text, "hello %u", ++sent);
  if (send(channel, text, (size_t)length, 0) < 0) {
    Log_Debug("ERROR: send: %s (%d)\n", strerror(errno), errno);
    exit_code = 2;
  }
}

static void Receive(EventLoop* loop, int fd, EventLoop_IoEvents events, void* context) {
  (void)loop;
  (void)events;
  (void)context;
  char text[1024];
  const ssize_t got = recv(fd, text, sizeof text, 0);
  if (got < 0) {
    if (errno != EAGAIN && errno != EINTR) exit_code = 3;
    return;
  }
  Log_Debug("rt-echo: the real-time app answered \"%.*s\"\n", (int)got, text);
}

int main(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = Terminate;
  sigaction(SIGTERM, &action, NULL);

  channel = Application_Connect(kRealTimeApp);
  if (channel < 0) {
    Log_Debug("ERROR: Application_Connect: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  EventLoop* loop = EventLoop_Create();
  const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  const struct itimerspec every_second = {{1, 0}, {1, 0}};
  if (loop == NULL || timer < 0 || timerfd_settime(timer, 0, &every_second, NULL) != 0 ||
      EventLoop_RegisterIo(loop, timer, EventLoop_Input, SendHello, NULL) == NULL ||
      EventLoop_RegisterIo(loop, channel, EventLoop_Input, Receive, NULL) == NULL) {
    Log_Debug("ERROR: the event loop: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  Log_Debug("rt-echo running: a message to the real-time app every second\n");
  while (exit_code == 0) {
    if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) exit_code = 5;
  }
  EventLoop_Close(loop);
  close(timer);
  close(channel);
  return exit_code == 1 ? 0 : (int)exit_code;
}
