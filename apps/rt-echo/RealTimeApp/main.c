/* rt-echo, the real-time side: answers every message a high-level app sends it with the same text
 * in capitals, addressed back to that app. It runs where Azure Sphere ran real-time apps on the
 * MT3620's M4 cores: on boards with a coprocessor as its firmware, elsewhere as a Linux process
 * pinned to one CPU under SCHED_FIFO. Messages carry the inter-core header (aspis/intercore.h):
 * the high-level app's component ID, then 4 reserved bytes. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <applibs/log.h>
#include <aspis/intercore.h>

int main(void) {
  const int channel = Intercore_OpenChannel();
  if (channel < 0) {
    Log_Debug("ERROR: Intercore_OpenChannel: %s (%d)\n", strerror(errno), errno);
    return 1;
  }
  Log_Debug("rt-echo-rt running\n");
  unsigned char message[INTERCORE_HEADER_SIZE + INTERCORE_MAX_PAYLOAD];
  for (;;) {
    const ssize_t got = recv(channel, message, sizeof message, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      Log_Debug("ERROR: recv: %s (%d)\n", strerror(errno), errno);
      return 2;
    }
    if (got < INTERCORE_HEADER_SIZE) continue; /* no header: not for this app */
    /* The header names the sender; kept as it is, it addresses the answer. */
    for (ssize_t i = INTERCORE_HEADER_SIZE; i < got; ++i)
      message[i] = (unsigned char)toupper(message[i]);
    if (send(channel, message, (size_t)got, 0) < 0) {
      Log_Debug("ERROR: send: %s (%d)\n", strerror(errno), errno);
    }
  }
}
