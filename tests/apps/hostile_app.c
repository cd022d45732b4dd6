// A hostile app for the sandbox tests: each mode tries one thing an app is not granted (or, for
// the positive twins, one thing it is) and prints one line "<mode> allowed" or
// "<mode> denied <errno name>", so a test can tell a refusal from a failure to try.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int Result(const char* mode, int rc) {
  if (rc >= 0) {
    printf("%s allowed\n", mode);
  } else {
    printf("%s denied %s\n", mode, strerrorname_np(errno));
  }
  fflush(stdout);
  return 0;
}

static void OnTerm(int signal) {
  (void)signal;
  static const char kLine[] = "terminated\n";
  (void)write(1, kLine, sizeof(kLine) - 1);
  _exit(0);
}

// Prints the lines of /proc/self/status that say what the process may do.
static void PrintStatus(void) {
  FILE* status = fopen("/proc/self/status", "r");
  char line[256];
  while (status != NULL && fgets(line, sizeof(line), status) != NULL) {
    if (strncmp(line, "Cap", 3) == 0 || strncmp(line, "NoNewPrivs", 10) == 0 ||
        strncmp(line, "Seccomp:", 8) == 0) {
      fputs(line, stdout);
    }
  }
  if (status != NULL) fclose(status);
  char host[65] = {0};
  gethostname(host, sizeof(host) - 1);
  printf("uid %d euid %d gid %d pid %d host %s\n", (int)getuid(), (int)geteuid(), (int)getgid(),
         (int)getpid(), host);
}

static int ForkBomb(void) {
  int children = 0;
  for (;;) {
    const pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    if (pid < 0) break;
    ++children;
  }
  printf("fork-bomb stopped after %d denied %s\n", children, strerrorname_np(errno));
  fflush(stdout);
  return 0;
}

static int Hog(void) {
  for (size_t total = 0;; total += 1 << 20) {
    char* block = malloc(1 << 20);
    if (block == NULL) return Result("memory", -1);
    memset(block, 1, 1 << 20);
    if (total % (16 << 20) == 0) {
      printf("memory holding %zu MiB\n", total >> 20);
      fflush(stdout);
    }
  }
}

// Connects to `host`:`port` (each address in turn, as programs do), sends "ping" and prints the
// first reply: "connect allowed <reply>", or how it was refused.
static int Connect(const char* host, const char* port, int type) {
  const char* mode = type == SOCK_STREAM ? "connect" : "udp";
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = type};
  struct addrinfo* list = NULL;
  const int rc = getaddrinfo(host, port, &hints, &list);
  if (rc != 0) {
    printf("%s unresolved %s\n", mode, gai_strerror(rc));
    fflush(stdout);
    return 0;
  }
  int last = 0;
  for (const struct addrinfo* it = list; it != NULL; it = it->ai_next) {
    const int fd = socket(it->ai_family, it->ai_socktype, 0);
    if (fd < 0) {
      last = errno;
      continue;
    }
    ssize_t sent = -1;
    if (type == SOCK_STREAM) {
      if (connect(fd, it->ai_addr, it->ai_addrlen) == 0) sent = send(fd, "ping", 4, 0);
    } else {
      sent = sendto(fd, "ping", 4, 0, it->ai_addr, it->ai_addrlen);
    }
    if (sent != 4) {
      last = errno;
      close(fd);
      continue;
    }
    char reply[64] = {0};
    const ssize_t got = recv(fd, reply, sizeof(reply) - 1, 0);
    printf("%s allowed %s\n", mode, got > 0 ? reply : "(no reply)");
    fflush(stdout);
    return 0;
  }
  errno = last;
  return Result(mode, -1);
}

// Listens on `port` (TCP or UDP) and answers "hi": every TCP client, or one UDP datagram.
static int Serve(const char* port, int type) {
  const char* mode = type == SOCK_STREAM ? "listen-tcp" : "listen-udp";
  const int fd = socket(AF_INET, type, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr*)&address, sizeof(address)) != 0 ||
      (type == SOCK_STREAM && listen(fd, 1) != 0)) {
    return Result(mode, -1);
  }
  printf("%s allowed\n", mode);
  fflush(stdout);
  if (type == SOCK_STREAM) {
    for (;;) {
      const int client = accept(fd, NULL, NULL);
      send(client, "hi", 2, MSG_NOSIGNAL);
      close(client);
    }
  } else {
    char buffer[16];
    struct sockaddr_in from;
    socklen_t size = sizeof(from);
    recvfrom(fd, buffer, sizeof(buffer), 0, (struct sockaddr*)&from, &size);
    sendto(fd, "hi", 2, 0, (struct sockaddr*)&from, size);
  }
  return 0;
}

struct Target {
  const char* host;
  const char* port;
};

static void* ConnectInThread(void* arg) {
  const struct Target* target = arg;
  Connect(target->host, target->port, SOCK_STREAM);
  return NULL;
}

// One request to aspisd's broker on descriptor 3: 0 and the descriptors it passed (at least one
// when `max` is above 0), or the errno it answered.
static int BrokerCall(const char* request, int* fds, int max) {
  if (send(3, request, strlen(request), 0) < 0) return errno;
  char reply[512] = {0};
  char control[CMSG_SPACE(sizeof(int) * 4)] = {0};
  struct iovec data = {reply, sizeof(reply) - 1};
  struct msghdr m = {
      .msg_iov = &data, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
  if (recvmsg(3, &m, 0) <= 0) return EIO;
  const char* code = strstr(reply, "\"errno\":");
  if (code != NULL) return atoi(code + 8);
  int got = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)(got < max ? got : max));
    }
  }
  return got > 0 || max == 0 ? 0 : EIO;
}

static int BrokerResult(const char* mode, int error) {
  errno = error;
  return Result(mode, error == 0 ? 0 : -1);
}

// Registers for every system event and prints each as it arrives ("event <json>"); defers a
// pending update by `minutes` when that is above 0, and allows it again `resume_after` seconds
// after the deferral was granted, when that is above 0. Runs until it is stopped.
static int SysEvents(int minutes, int resume_after) {
  int events = -1;
  const int error = BrokerCall(
      "{\"call\": \"sysevent.register\", \"events\": [\"UpdateReadyForInstall\", "
      "\"UpdateStarted\", \"NoUpdateAvailable\"]}",
      &events, 1);
  if (error != 0) return BrokerResult("sysevent", error);
  printf("registered\n");
  fflush(stdout);
  char event[512];
  for (ssize_t got; (got = recv(events, event, sizeof(event) - 1, 0)) > 0;) {
    event[got] = 0;
    printf("event %s\n", event);
    fflush(stdout);
    if (resume_after > 0 && strstr(event, "\"Deferred\"") != NULL) {
      sleep((unsigned)resume_after);
      int none = -1;
      BrokerResult("resume", BrokerCall("{\"call\": \"sysevent.resume\", \"event\": "
                                        "\"UpdateReadyForInstall\"}",
                                        &none, 0));
    }
    if (minutes > 0 && strstr(event, "\"Pending\"") != NULL) {
      char request[128];
      snprintf(request, sizeof(request),
               "{\"call\": \"sysevent.defer\", \"event\": \"UpdateReadyForInstall\", "
               "\"minutes\": %d}",
               minutes);
      int none = -1;
      const int refused = BrokerCall(request, &none, 0);
      BrokerResult("defer", refused);
    }
  }
  return 1;
}

// Sends 4 x 32 KiB of 'A' with MSG_ZEROCOPY to a connection of its own whose peer reads slowly,
// has aspisd perform other sends meanwhile, and counts the bytes that arrive other than 'A'
// (aspisd's memory, reused after the send).
static int ZeroCopy(int port) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  const int small = 4096;
  setsockopt(server, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(server, (struct sockaddr*)&address, sizeof(address)) != 0 || listen(server, 1) != 0) {
    return Result("zerocopy-listen", -1);
  }
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  if (setsockopt(client, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) != 0) {
    return Result("zerocopy-option", -1);
  }
  if (connect(client, (struct sockaddr*)&address, sizeof(address)) != 0) {
    return Result("zerocopy-connect", -1);
  }
  const int accepted = accept(server, NULL, NULL);
  enum { kChunk = 32768 };
  static char chunk[kChunk];
  memset(chunk, 'A', sizeof(chunk));
  long sent = 0;
  for (int i = 0; i < 4; ++i) {
    struct iovec data = {chunk, sizeof(chunk)};
    struct msghdr m = {.msg_iov = &data, .msg_iovlen = 1};
    const ssize_t n = sendmsg(client, &m, MSG_ZEROCOPY | MSG_DONTWAIT);
    if (n <= 0) break;
    sent += n;
  }
  // aspisd copies each mediated send into memory of its own: the same sizes, other bytes.
  int pair[2];
  socketpair(AF_UNIX, SOCK_DGRAM, 0, pair);
  static char other[kChunk];
  memset(other, 'B', sizeof(other));
  for (int i = 0; i < 4; ++i) {
    struct iovec data = {other, sizeof(other)};
    struct msghdr m = {.msg_iov = &data, .msg_iovlen = 1};
    sendmsg(pair[0], &m, MSG_DONTWAIT);
    char drop[16];
    recv(pair[1], drop, sizeof(drop), MSG_DONTWAIT | MSG_TRUNC);
  }
  long got = 0;
  long foreign = 0;
  long letters_b = 0;
  int other_shown = 0;
  static char in[kChunk];
  for (;;) {
    struct pollfd p = {accepted, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) break;
    const ssize_t n = recv(accepted, in, sizeof(in), 0);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (in[i] != 'A') ++foreign;
      if (in[i] == 'B') ++letters_b;
      if (in[i] != 'A' && in[i] != 'B' && other_shown < 48) {
        if (other_shown == 0) printf("other bytes at %ld:", got + i);
        printf(" %02x", (unsigned char)in[i]);
        ++other_shown;
      }
    }
    got += n;
    if (got >= sent) break;
  }
  printf("\nzerocopy sent %ld received %ld foreign %ld of-them-B %ld\n", sent, got, foreign,
         letters_b);
  fflush(stdout);
  return 0;
}

// The resolver /etc/resolv.conf names (the sandbox's own), or `text` as an IPv4 address.
static struct sockaddr_in Nameserver(const char* text) {
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(53)};
  if (strcmp(text, "own") != 0) {
    inet_pton(AF_INET, text, &to.sin_addr);
    return to;
  }
  FILE* conf = fopen("/etc/resolv.conf", "r");
  char line[128];
  char address[64] = "";
  while (conf != NULL && fgets(line, sizeof(line), conf) != NULL) {
    if (sscanf(line, "nameserver %63s", address) == 1) break;
  }
  if (conf != NULL) fclose(conf);
  inet_pton(AF_INET, address, &to.sin_addr);
  return to;
}

// A DNS query for `name`'s A records, with ID `id`; its size.
static size_t DnsQuery(const char* name, unsigned id, unsigned char* out) {
  const unsigned char header[12] = {
      (unsigned char)(id >> 8), (unsigned char)id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  memcpy(out, header, sizeof(header));
  size_t at = sizeof(header);
  for (const char* label = name; *label != 0;) {
    const size_t length = strcspn(label, ".");
    out[at++] = (unsigned char)length;
    memcpy(out + at, label, length);
    at += length;
    label += length;
    if (*label == '.') ++label;
  }
  const unsigned char tail[5] = {0, 0, 1, 0, 1};  // root, type A, class IN
  memcpy(out + at, tail, sizeof(tail));
  return at + sizeof(tail);
}

// Sends `query` to `server` ("own", or another address) on a connected UDP socket: "dns-query
// answered rcode N", "dns-query unanswered", or how the connect was refused.
static int Ask(const char* server, const unsigned char* query, size_t size) {
  const struct sockaddr_in to = Nameserver(server);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (connect(fd, (const struct sockaddr*)&to, sizeof(to)) != 0) return Result("dns-query", -1);
  if (send(fd, query, size, 0) != (ssize_t)size) return Result("dns-query", -1);
  struct pollfd ready = {fd, POLLIN, 0};
  unsigned char reply[512];
  if (poll(&ready, 1, 2000) != 1 || recv(fd, reply, sizeof(reply), 0) < 4) {
    printf("dns-query unanswered\n");
  } else {
    printf("dns-query answered rcode %d\n", reply[3] & 0xf);
  }
  fflush(stdout);
  return 0;
}

// Looks `name` up (IPv4) through the C library: "dns-address A", the first address answered.
static int FirstAddress(const char* name) {
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  struct addrinfo* list = NULL;
  const int rc = getaddrinfo(name, NULL, &hints, &list);
  char text[INET_ADDRSTRLEN] = "none";
  if (rc == 0) {
    inet_ntop(AF_INET, &((const struct sockaddr_in*)list->ai_addr)->sin_addr, text, sizeof text);
    freeaddrinfo(list);
  }
  printf("dns-address %s\n", text);
  fflush(stdout);
  return 0;
}

// Looks `name` up (A) through the C library's resolver: "dns-answers N", the records answered.
static int CountAnswers(const char* name) {
  unsigned char reply[512];
  const int size = res_query(name, C_IN, T_A, reply, sizeof(reply));
  if (size >= 12) {
    printf("dns-answers %d\n", (reply[6] << 8) | reply[7]);
  } else {
    printf(h_errno == NO_DATA ? "dns-answers 0\n" : "dns-answers failed\n");
  }
  fflush(stdout);
  return 0;
}

// Asks its own resolver for the name made of `labels` as they are (a label may hold a dot).
static int AskLabels(int count, char** labels) {
  unsigned char query[300] = {0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t at = 12;
  for (int i = 0; i < count && at < 250; ++i) {
    const size_t length = strlen(labels[i]) < 60 ? strlen(labels[i]) : 60;
    query[at++] = (unsigned char)length;
    memcpy(query + at, labels[i], length);
    at += length;
  }
  const unsigned char tail[5] = {0, 0, 1, 0, 1};
  memcpy(query + at, tail, sizeof(tail));
  return Ask("own", query, at + sizeof(tail));
}

// Asks `server` for `name`.
static int AskResolver(const char* server, const char* name) {
  unsigned char query[300];
  return Ask(server, query, DnsQuery(name, 0x4242, query));
}

// Sends its own resolver queries for `name` as fast as it can from four threads, without reading
// the replies, after saying "flooding"; until it is stopped.
static void* Flood(void* arg) {
  const struct sockaddr_in to = Nameserver("own");
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (connect(fd, (const struct sockaddr*)&to, sizeof(to)) != 0) return NULL;
  unsigned char query[300];
  const size_t size = DnsQuery((const char*)arg, 7, query);
  for (;;) (void)send(fd, query, size, 0);
  return NULL;
}
static int DnsFlood(const char* name) {
  for (int i = 0; i < 4; ++i) {
    pthread_t thread;
    pthread_create(&thread, NULL, Flood, (void*)name);
  }
  sleep(1);
  printf("flooding\n");
  fflush(stdout);
  pause();
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* mode = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (strcmp(mode, "status") == 0) {
    PrintStatus();
    return 0;
  }
  if (strcmp(mode, "sleep") == 0) {
    signal(SIGTERM, OnTerm);
    printf("sleeping\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (strcmp(mode, "ignore-term") == 0) {
    signal(SIGTERM, SIG_IGN);
    printf("sleeping\n");
    fflush(stdout);
    for (;;) pause();
  }
  if (strcmp(mode, "exit") == 0) return atoi(arg);
  if (strcmp(mode, "mount-then-exit") == 0) {
    Result("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    return atoi(arg);
  }
  if (strcmp(mode, "abort") == 0) abort();
  if (strcmp(mode, "read") == 0) return Result(mode, open(arg, O_RDONLY));
  if (strcmp(mode, "write") == 0) {
    const int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    return Result(mode, fd < 0 ? -1 : (int)write(fd, "x", 1));
  }
  if (strcmp(mode, "ptrace") == 0) {
    const pid_t child = fork();
    if (child == 0) {
      pause();
      _exit(0);
    }
    const long rc = ptrace(PTRACE_ATTACH, child, NULL, NULL);
    kill(child, SIGKILL);
    return Result(mode, (int)rc);
  }
  if (strcmp(mode, "mount") == 0) return Result(mode, mount("none", "/tmp", "tmpfs", 0, NULL));
  if (strcmp(mode, "remount") == 0) {
    return Result(mode, mount(NULL, arg, NULL, MS_REMOUNT | MS_BIND, NULL));
  }
  if (strcmp(mode, "unshare") == 0) return Result(mode, unshare(CLONE_NEWUSER));
  if (strcmp(mode, "setns") == 0) {
    const int fd = open("/proc/self/ns/uts", O_RDONLY);
    return Result(mode, fd < 0 ? -1 : setns(fd, 0));
  }
  if (strcmp(mode, "clone-namespace") == 0) {
    const long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) _exit(0);
    return Result(mode, (int)pid);
  }
  if (strcmp(mode, "fork") == 0) {
    const pid_t pid = fork();
    if (pid == 0) _exit(7);
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WEXITSTATUS(status) == 7) {
      return Result(mode, 0);
    }
    return Result(mode, -1);
  }
  if (strcmp(mode, "module") == 0) {
    const int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    return Result(mode, (int)syscall(SYS_finit_module, fd, "", 0));
  }
  if (strcmp(mode, "raw-socket") == 0) return Result(mode, socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
  if (strcmp(mode, "packet-socket") == 0) {
    return Result(mode, socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
  }
  if (strcmp(mode, "unix-socket") == 0) {
    int pair[2];
    return Result(mode, socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
  }
  if (strcmp(mode, "open-by-handle") == 0) {
    // The classic container escape: a file handle names a file without a path, so a mount
    // namespace would not hide it.
    char buffer[sizeof(struct file_handle) + 128];
    struct file_handle* handle = (struct file_handle*)buffer;
    handle->handle_bytes = 128;
    int mount_id = 0;
    if (name_to_handle_at(AT_FDCWD, "/", handle, &mount_id, 0) != 0) return Result(mode, -1);
    return Result(mode, open_by_handle_at(AT_FDCWD, handle, O_RDONLY));
  }
  if (strcmp(mode, "setuid") == 0) {
    printf("euid %d\n", (int)geteuid());
    return Result(mode, setuid(0));
  }
  if (strcmp(mode, "exec") == 0) {
    execv(arg, argv + 2);
    return Result(mode, -1);
  }
  if (strcmp(mode, "proc-mem") == 0) return Result(mode, open("/proc/1/mem", O_RDWR));
  if (strcmp(mode, "chroot") == 0) return Result(mode, chroot("/tmp"));
  if (strcmp(mode, "fork-bomb") == 0) return ForkBomb();
  if (strcmp(mode, "memory") == 0) return Hog();
  if (strcmp(mode, "file-size") == 0) {
    // Writes `arg` KiB to a file in /tmp, a KiB at a time.
    const int fd = open("/tmp/big", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char kib[1024];
    memset(kib, 'x', sizeof(kib));
    for (int i = 0; fd >= 0 && i < atoi(arg); ++i) {
      if (write(fd, kib, sizeof(kib)) != (ssize_t)sizeof(kib)) return Result(mode, -1);
    }
    return Result(mode, fd);
  }
  if (strcmp(mode, "thread-connect") == 0) {
    // Socket calls from a thread other than the first.
    struct Target target = {arg, argv[3]};
    pthread_t thread;
    pthread_create(&thread, NULL, ConnectInThread, &target);
    pthread_join(thread, NULL);
    return 0;
  }
  if (strcmp(mode, "rthdr") == 0) {
    // An IPv6 routing header would send packets past the address aspisd checked.
    const int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    unsigned char header[24] = {0, 2, 4, 0, 0, 0, 0, 0};
    return Result(mode, setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, header, sizeof(header)));
  }
  if (strcmp(mode, "cmsg") == 0) {
    // A control message (here only a TTL) that aspisd would send with its own privileges.
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    inet_pton(AF_INET, arg, &to.sin_addr);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec data = {"ping", 4};
    struct msghdr m = {.msg_name = &to,
                       .msg_namelen = sizeof(to),
                       .msg_iov = &data,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof(control)};
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TTL;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int ttl = 5;
    memcpy(CMSG_DATA(c), &ttl, sizeof(ttl));
    return Result(mode, (int)sendmsg(fd, &m, 0));
  }
  if (strcmp(mode, "flood") == 0) {
    for (int i = 0; i < atoi(arg); ++i) syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
    return Result(mode, 0);
  }
  if (strcmp(mode, "fd-limit") == 0) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    printf("files %llu %llu\n", (unsigned long long)limit.rlim_cur,
           (unsigned long long)limit.rlim_max);
    limit.rlim_cur = limit.rlim_max = limit.rlim_max * 4;
    return Result(mode, setrlimit(RLIMIT_NOFILE, &limit));
  }
  if (strcmp(mode, "session") == 0) {
    printf("session %d pid %d\n", (int)getsid(0), (int)getpid());
    return Result(mode, open("/dev/tty", O_RDWR));
  }
  if (strcmp(mode, "connect-loop") == 0) {
    // For the benchmark: argv[4] connects to a literal IPv4 address, then the nanoseconds taken.
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    inet_pton(AF_INET, arg, &to.sin_addr);
    const int count = atoi(argv[4]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < count; ++i) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0 || connect(fd, (struct sockaddr*)&to, sizeof(to)) != 0) return Result(mode, -1);
      close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf("%lld\n",
           (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec));
    fflush(stdout);
    return 0;
  }
  if (strcmp(mode, "storage-write") == 0) {
    // Writes `arg` KiB into the mutable storage the broker passes.
    int fd = -1;
    const int error = BrokerCall("{\"call\": \"storage.open\"}", &fd, 1);
    if (error != 0) return BrokerResult(mode, error);
    char kib[1024];
    memset(kib, 's', sizeof(kib));
    for (int i = 0; i < atoi(arg); ++i) {
      if (write(fd, kib, sizeof(kib)) != (ssize_t)sizeof(kib)) return Result(mode, -1);
    }
    return Result(mode, 0);
  }
  if (strcmp(mode, "storage-size") == 0) {
    int fd = -1;
    const int error = BrokerCall("{\"call\": \"storage.open\"}", &fd, 1);
    if (error != 0) return BrokerResult(mode, error);
    printf("storage %lld\n", (long long)lseek(fd, 0, SEEK_END));
    return 0;
  }
  if (strcmp(mode, "storage-other") == 0) {
    // Another app's storage, by naming its component.
    int fd = -1;
    return BrokerResult(mode, BrokerCall("{\"call\": \"storage.open\", \"component_id\": "
                                         "\"6f1c2b1e-3a4d-4e5f-8a9b-0c1d2e3f4a5c\"}",
                                         &fd, 1));
  }
  if (strcmp(mode, "deviceauth") == 0) {
    int fds[2] = {-1, -1};
    const int error = BrokerCall("{\"call\": \"deviceauth.open\"}", fds, 2);
    if (error != 0) return BrokerResult(mode, error);
    char head[28] = {0};
    if (read(fds[0], head, sizeof(head) - 1) < 0) return Result(mode, -1);
    printf("%s\n", head);
    return Result(mode, 0);
  }
  if (strcmp(mode, "runtime-key") == 0) {
    int fd = -1;
    return BrokerResult(mode, BrokerCall("{\"call\": \"runtime.open\"}", &fd, 1));
  }
  if (strcmp(mode, "broker-flood") == 0) {
    // `arg` requests aspisd does not know, each with a name of its own.
    int refused = 0;
    for (int i = 0; i < atoi(arg); ++i) {
      char request[64];
      snprintf(request, sizeof(request), "{\"call\": \"flood.%d\"}", i);
      int none = -1;
      refused += BrokerCall(request, &none, 0) == EPERM;
    }
    printf("broker-flood refused %d\n", refused);
    return 0;
  }

  if (strcmp(mode, "zerocopy") == 0) return ZeroCopy(atoi(arg));
  if (strcmp(mode, "deny-flood") == 0) {
    // `argv[3]` connections refused by aspisd's policy, as fast as they go; then the time taken.
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, arg, &to.sin_addr);
    const int count = atoi(argv[3]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int refused = 0;
    for (int i = 0; i < count; ++i) {
      to.sin_port = htons((uint16_t)(1 + i % 60000));  // each a new address:port, a new report
      refused += connect(fd, (struct sockaddr*)&to, sizeof(to)) != 0 && errno == EACCES;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    printf(
        "deny-flood refused %d in %lld ms\n", refused,
        (long long)((end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000));
    fflush(stdout);
    return 0;
  }
  if (strcmp(mode, "reuseport") == 0) {
    // Joins whatever SO_REUSEPORT group holds 127.0.0.1:`arg`, then steers every connection of
    // the group to its own socket (a classic BPF program that answers "the second socket").
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(arg))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr*)&address, sizeof(address)) != 0 || listen(fd, 8) != 0) {
      return Result(mode, -1);
    }
    struct sock_filter code[] = {{BPF_RET | BPF_K, 0, 0, 1}};
    struct sock_fprog program = {1, code};
    const int steered =
        setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof(program));
    printf("reuseport allowed, steered %d\n", steered);
    fflush(stdout);
    for (;;) {
      const int client = accept(fd, NULL, NULL);
      send(client, "app", 3, MSG_NOSIGNAL);
      close(client);
    }
  }
  if (strcmp(mode, "send-zerocopy") == 0) {
    // A mediated send (sendmsg) to `arg`:`argv[3]` asking the kernel to send from the sender's
    // memory without a copy: aspisd's memory, since aspisd performs it.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    inet_pton(AF_INET, arg, &to.sin_addr);
    if (connect(fd, (struct sockaddr*)&to, sizeof(to)) != 0) return Result("connect", -1);
    struct iovec data = {"ping", 4};
    struct msghdr m = {.msg_iov = &data, .msg_iovlen = 1};
    return Result(mode, (int)sendmsg(fd, &m, MSG_ZEROCOPY));
  }
  if (strcmp(mode, "fionread") == 0) {
    // What a socket has queued, as an app may ask.
    int pair[2];
    int queued = -1;
    socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
    send(pair[0], "abc", 3, 0);
    const int rc = ioctl(pair[1], FIONREAD, &queued);
    printf("queued %d\n", queued);
    return Result(mode, rc);
  }
  if (strcmp(mode, "abstract-bind") == 0) {
    // Binds the abstract name `arg` on descriptor 3 (the broker's socket, which aspisd made in
    // the device's network namespace), then on a Unix socket of its own (its own namespace).
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strncpy(address.sun_path + 1, arg, sizeof(address.sun_path) - 2);
    const socklen_t size = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(arg));
    Result(mode, bind(3, (struct sockaddr*)&address, size));
    const int own = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    return Result("abstract-bind-own", bind(own, (struct sockaddr*)&address, size));
  }
  if (strcmp(mode, "ifconf") == 0) {
    // The device's interfaces, through an IPv4 socket aspisd made in the device's namespace.
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq list[16];
    struct ifconf conf = {.ifc_len = sizeof(list), .ifc_req = list};
    if (ioctl(fd, SIOCGIFCONF, &conf) != 0) return Result(mode, -1);
    for (size_t i = 0; i < conf.ifc_len / sizeof(struct ifreq); ++i) {
      char text[INET_ADDRSTRLEN] = {0};
      inet_ntop(AF_INET, &((struct sockaddr_in*)&list[i].ifr_addr)->sin_addr, text, sizeof(text));
      printf("interface %s %s\n", list[i].ifr_name, text);
    }
    return Result(mode, 0);
  }
  if (strcmp(mode, "stderr") == 0) {
    // What its standard error is, and what it can do to it.
    struct stat st;
    fstat(2, &st);
    printf("stderr %s flags %#x\n",
           S_ISSOCK(st.st_mode)   ? "socket"
           : S_ISFIFO(st.st_mode) ? "pipe"
           : S_ISREG(st.st_mode)  ? "file"
           : S_ISCHR(st.st_mode)  ? "char"
                                  : "other",
           fcntl(2, F_GETFL));
    fflush(stdout);
    if (strcmp(arg, "shutdown") == 0) Result("shutdown", shutdown(2, SHUT_RDWR));
    if (strcmp(arg, "truncate") == 0) {
      Result("truncate", ftruncate(2, 0));
      dprintf(2, "2030-01-01 00:00:00.000 [aspis] [info] update installed, all apps verified\n");
    }
    if (strcmp(arg, "nonblock") == 0) Result("nonblock", fcntl(2, F_SETFL, O_NONBLOCK));
    printf("sleeping\n");
    fflush(stdout);
    pause();
    return 0;
  }

  if (strcmp(mode, "sysevent") == 0) return SysEvents(atoi(arg), argc > 3 ? atoi(argv[3]) : 0);
  if (strcmp(mode, "connect") == 0) return Connect(arg, argv[3], SOCK_STREAM);
  if (strcmp(mode, "udp") == 0) return Connect(arg, argv[3], SOCK_DGRAM);
  if (strcmp(mode, "listen-tcp") == 0) return Serve(arg, SOCK_STREAM);
  if (strcmp(mode, "listen-udp") == 0) return Serve(arg, SOCK_DGRAM);
  if (strcmp(mode, "dns-query") == 0) return AskResolver(arg, argv[3]);
  if (strcmp(mode, "dns-flood") == 0) return DnsFlood(arg);
  if (strcmp(mode, "dns-labels") == 0) return AskLabels(argc - 2, argv + 2);
  if (strcmp(mode, "dns-answers") == 0) return CountAnswers(arg);
  if (strcmp(mode, "dns-address") == 0) return FirstAddress(arg);
  if (strcmp(mode, "connect-resolver") == 0) {
    const struct sockaddr_in to = Nameserver("own");
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    return Result(mode, connect(fd, (const struct sockaddr*)&to, sizeof(to)));
  }
  if (strcmp(mode, "bind-udp") == 0) {
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(argv[3]))};
    inet_pton(AF_INET, arg, &address.sin_addr);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    return Result(mode, bind(fd, (struct sockaddr*)&address, sizeof(address)));
  }
  if (strcmp(mode, "listen-anywhere") == 0) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    return Result(mode, listen(fd, 1));
  }
  if (strcmp(mode, "unix-connect") == 0) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strncpy(address.sun_path, arg, sizeof(address.sun_path) - 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    return Result(mode, connect(fd, (struct sockaddr*)&address, sizeof(address)));
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
