/* An app written against libaspis-applibs, as a publisher writes one, for the tests: each mode
 * exercises one part of the API on the board aspisd gives it and prints what happened, one line
 * each ("gpio-open 8: ok", "gpio-open 9: EACCES"), then waits to be stopped. */
#define _GNU_SOURCE
#include <applibs/adc.h>
#include <applibs/applibs_versions.h>
#include <applibs/application.h>
#include <applibs/certstore.h>
#include <applibs/eventloop.h>
#include <applibs/gpio.h>
#include <applibs/i2c.h>
#include <applibs/log.h>
#include <applibs/networking.h>
#include <applibs/powermanagement.h>
#include <applibs/pwm.h>
#include <applibs/rtc.h>
#include <applibs/spi.h>
#include <applibs/storage.h>
#include <applibs/sysevent.h>
#include <applibs/uart.h>
#include <applibs/wificonfig.h>
#include <arpa/inet.h>
#include <aspis/intercore.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <tlsutils/deviceauth.h>
#include <unistd.h>

static void Report(const char* what, int result) {
  if (result < 0) {
    Log_Debug("%s: %s\n", what, strerrorname_np(errno));
  } else {
    Log_Debug("%s: ok\n", what);
  }
}

/* Applies a static address (dotted quads) to `name` and reports it as `what`. */
static void ApplyStatic(const char* name, const char* what, const char* address, const char* mask,
                        const char* gateway) {
  Networking_IpConfig config;
  Networking_IpConfig_Init(&config);
  struct in_addr a, m, g;
  inet_pton(AF_INET, address, &a);
  inet_pton(AF_INET, mask, &m);
  inet_pton(AF_INET, gateway, &g);
  Networking_IpConfig_EnableStaticIp(&config, a, m, g);
  Report(what, Networking_IpConfig_Apply(name, &config));
  Networking_IpConfig_Destroy(&config);
}

/* Applies 192.0.2.10/24 through 192.0.2.1 to `name` with custom DNS servers `first` and `second`
 * (dotted quads) and reports it as `what`. */
static void ApplyWithDns(const char* name, const char* what, const char* first,
                         const char* second) {
  Networking_IpConfig config;
  Networking_IpConfig_Init(&config);
  struct in_addr a, m, g, dns[2];
  inet_pton(AF_INET, "192.0.2.10", &a);
  inet_pton(AF_INET, "255.255.255.0", &m);
  inet_pton(AF_INET, "192.0.2.1", &g);
  inet_pton(AF_INET, first, &dns[0]);
  inet_pton(AF_INET, second, &dns[1]);
  Networking_IpConfig_EnableStaticIp(&config, a, m, g);
  if (Networking_IpConfig_EnableCustomDns(&config, dns, 2) == 0) {
    Report(what, Networking_IpConfig_Apply(name, &config));
  }
  Networking_IpConfig_Destroy(&config);
}

/* Configures interface `name` as aspisd manages it: up, 192.0.2.10/24 through 192.0.2.1, hardware
 * address 02:00:00:00:00:42; and tries what aspisd does not do or refuses. */
static void NetConfig(const char* name) {
  Report("up", Networking_SetInterfaceState(name, true));
  ApplyStatic(name, "static", "192.0.2.10", "255.255.255.0", "192.0.2.1");
  /* What is refused leaves the address just set as it is. */
  ApplyStatic(name, "holey-mask", "192.0.2.10", "255.0.255.0", "192.0.2.1");
  ApplyStatic(name, "zero-mask", "192.0.2.10", "0.0.0.0", "192.0.2.1");
  ApplyStatic(name, "loopback", "127.0.0.5", "255.255.255.0", "192.0.2.1");
  ApplyStatic(name, "broadcast", "192.0.2.255", "255.255.255.0", "192.0.2.1");
  ApplyStatic(name, "off-link-gateway", "192.0.2.10", "255.255.255.0", "198.51.100.1");
  ApplyWithDns(name, "custom-dns", "192.0.2.53", "198.51.100.53");
  ApplyWithDns(name, "custom-dns-multicast", "192.0.2.53", "224.0.0.251");
  Report("release-static", Networking_IpConfig_ReleaseIp(name));
  Report("renew-static", Networking_IpConfig_RenewIp(name));
  const uint8_t mac[HARDWARE_ADDRESS_LENGTH] = {0x02, 0, 0, 0, 0, 0x42};
  Report("set-mac", Networking_SetHardwareAddress(name, mac, sizeof mac));
  const uint8_t multicast[HARDWARE_ADDRESS_LENGTH] = {0x01, 0, 0x5e, 0, 0, 1};
  Report("multicast-mac", Networking_SetHardwareAddress(name, multicast, sizeof multicast));
  Networking_Interface_HardwareAddress read;
  Report("get-mac", Networking_GetHardwareAddress(name, &read));
  Log_Debug("mac: %02x:%02x:%02x:%02x:%02x:%02x\n", read.address[0], read.address[1],
            read.address[2], read.address[3], read.address[4], read.address[5]);
  Report("unmanaged", Networking_SetInterfaceState("lo", false));
  Report("injected", Networking_SetInterfaceState("n0\",\"up\":true,\"x", false));
}

/* Puts interface `name` in dynamic mode, gives its lease back and asks for one again. */
static void Dhcp(const char* name) {
  Report("up", Networking_SetInterfaceState(name, true));
  Networking_IpConfig config;
  Networking_IpConfig_Init(&config);
  Networking_IpConfig_EnableDynamicIp(&config);
  Report("dynamic", Networking_IpConfig_Apply(name, &config));
  Networking_IpConfig_Destroy(&config);
  Report("release", Networking_IpConfig_ReleaseIp(name));
  Report("renew", Networking_IpConfig_RenewIp(name));
}

/* Serves DHCP on interface `name`, a private network's, after giving it 192.168.100.1/24: one
 * address, 192.168.100.10, with no router and 192.168.100.1 as NTP server (and tries leases the
 * server must refuse); then serves the time there. */
static void DhcpServe(const char* name) {
  Report("up", Networking_SetInterfaceState(name, true));
  ApplyStatic(name, "static", "192.168.100.1", "255.255.255.0", "0.0.0.0");
  Networking_DhcpServerConfig config;
  Networking_DhcpServerConfig_Init(&config);
  struct in_addr start, mask, none, own, other_mask;
  inet_aton("192.168.100.10", &start);
  inet_aton("255.255.255.0", &mask);
  inet_aton("0.0.0.0", &none);
  inet_aton("192.168.100.1", &own);
  inet_aton("255.255.0.0", &other_mask);
  Networking_DhcpServerConfig_SetLease(&config, own, 1, mask, none, 24);
  Report("lease-of-its-own-address", Networking_DhcpServer_Start(name, &config));
  Networking_DhcpServerConfig_SetLease(&config, start, 1, other_mask, none, 24);
  Report("lease-in-another-subnet", Networking_DhcpServer_Start(name, &config));
  Networking_DhcpServerConfig_SetLease(&config, start, 250, mask, none, 24);
  Report("lease-past-the-subnet", Networking_DhcpServer_Start(name, &config));
  Networking_DhcpServerConfig_SetLease(&config, start, 1, mask, none, 24);
  Report("ntp", Networking_DhcpServerConfig_SetNtpServerAddresses(&config, &own, 1));
  Report("dhcp-start", Networking_DhcpServer_Start(name, &config));
  Networking_DhcpServerConfig_Destroy(&config);
  Networking_SntpServerConfig sntp;
  Networking_SntpServerConfig_Init(&sntp);
  Report("sntp-start", Networking_SntpServer_Start(name, &sntp));
  Networking_SntpServerConfig_Destroy(&sntp);
}

/* Stores a WPA2 network "home" named "home-net" (and tries what wpa_supplicant's configuration
 * must not take: a key and a name that would add a line to its file), then prints what is stored,
 * seen and connected, and forgets it unless `keep` is "keep". */
/* The file at `path` in the app's image package, NUL-terminated in `buffer`: its length, or 0. */
static size_t ImageFile(const char* path, char* buffer, size_t size) {
  const int fd = Storage_OpenFileInImagePackage(path);
  size_t length = 0;
  for (ssize_t got = 1; fd >= 0 && got > 0 && length + 1 < size; length += (size_t)got) {
    got = read(fd, buffer + length, size - length - 1);
    if (got <= 0) break;
  }
  if (fd >= 0) close(fd);
  buffer[length] = '\0';
  return length;
}

/* The certificates an app installs, from its image package: certs/ca.pem, certs/client.pem and
 * its key certs/client-key.pem, encrypted with "sesame". */
static char ca_pem[8192], client_pem[8192], client_key[8192];
static size_t ca_length, client_length, key_length;

static void ReadCertificates(void) {
  ca_length = ImageFile("certs/ca.pem", ca_pem, sizeof ca_pem);
  client_length = ImageFile("certs/client.pem", client_pem, sizeof client_pem);
  key_length = ImageFile("certs/client-key.pem", client_key, sizeof client_key);
}

static void CertStoreManage(void) {
  ReadCertificates();
  Report("install-ca", CertStore_InstallRootCACertificate("radius-ca", ca_pem, ca_length));
  Report("install-escaping-id", CertStore_InstallRootCACertificate("../ca", ca_pem, ca_length));
  Report("install-long-id",
         CertStore_InstallRootCACertificate("seventeen-chars-x", ca_pem, ca_length));
  Report("install-not-pem", CertStore_InstallRootCACertificate("junk", "hello", 5));
  Report("install-wrong-password",
         CertStore_InstallClientCertificate("device", client_pem, client_length, client_key,
                                            key_length, "open sesame"));
  Report("install-no-password",
         CertStore_InstallClientCertificate("device", client_pem, client_length, client_key,
                                            key_length, NULL));
  Report("install-key-of-another",
         CertStore_InstallClientCertificate("device", ca_pem, ca_length, client_key, key_length,
                                            "sesame"));
  Report("install-client", CertStore_InstallClientCertificate("device", client_pem, client_length,
                                                              client_key, key_length, "sesame"));
  const ssize_t count = CertStore_GetCertificateCount();
  Log_Debug("count: %zd\n", count);
  for (ssize_t i = 0; i < count; ++i) {
    CertStore_Identifier id;
    if (CertStore_GetCertificateIdentifierAt((size_t)i, &id) == 0) {
      Log_Debug("at %zd: %s\n", i, id.identifier);
    }
  }
  CertStore_Identifier past;
  Report("at-past-the-end", CertStore_GetCertificateIdentifierAt((size_t)count, &past));
  CertStore_SubjectName subject;
  if (CertStore_GetCertificateSubjectName("device", &subject) == 0) {
    Log_Debug("subject: %s\n", subject.name);
  }
  CertStore_IssuerName issuer;
  if (CertStore_GetCertificateIssuerName("device", &issuer) == 0) {
    Log_Debug("issuer: %s\n", issuer.name);
  }
  struct tm not_before, not_after;
  if (CertStore_GetCertificateNotBefore("device", &not_before) == 0 &&
      CertStore_GetCertificateNotAfter("device", &not_after) == 0) {
    Log_Debug("valid for hours: %ld\n", (long)((timegm(&not_after) - timegm(&not_before)) / 3600));
  }
  Report("subject-unknown", CertStore_GetCertificateSubjectName("nothing", &subject));
  const ssize_t space = CertStore_GetAvailableSpace();
  Log_Debug("space: %s\n", space > 0 && space < 24 * 1024 ? "some used" : "wrong");
  Report("move", CertStore_MoveCertificate("device", "device-2"));
  Report("move-unknown", CertStore_MoveCertificate("device", "device-3"));
  Report("delete", CertStore_DeleteCertificate("device-2"));
  Report("delete-unknown", CertStore_DeleteCertificate("device-2"));
  Log_Debug("count: %zd\n", CertStore_GetCertificateCount());
  Log_Debug("space: %s\n", CertStore_GetAvailableSpace() > space ? "freed" : "not freed");
}

/* An EAP-TLS network whose certificates the app installs in the store. */
static void EapTls(void) {
  ReadCertificates();
  Report("install-ca", CertStore_InstallRootCACertificate("radius-ca", ca_pem, ca_length));
  Report("install-client", CertStore_InstallClientCertificate("device", client_pem, client_length,
                                                              client_key, key_length, "sesame"));
  const int id = WifiConfig_AddNetwork();
  Report("add", id);
  Report("ssid", WifiConfig_SetSSID(id, (const uint8_t*)"corp", 4));
  Report("security", WifiConfig_SetSecurityType(id, WifiConfig_Security_Wpa2_EAP_TLS));
  Report("identity", WifiConfig_SetClientIdentity(id, "device-7"));
  Report("client-cert", WifiConfig_SetClientCertStoreIdentifier(id, "device"));
  Report("root-ca-escaping", WifiConfig_SetRootCACertStoreIdentifier(id, "../../etc/ca"));
  Report("root-ca", WifiConfig_SetRootCACertStoreIdentifier(id, "radius-ca"));
  WifiConfig_ClientIdentity identity;
  CertStore_Identifier client, root;
  if (WifiConfig_GetClientIdentity(id, &identity) == 0 &&
      WifiConfig_GetClientCertStoreIdentifier(id, &client) == 0 &&
      WifiConfig_GetRootCACertStoreIdentifier(id, &root) == 0) {
    Log_Debug("set: %s %s %s\n", identity.identity, client.identifier, root.identifier);
  }
  Report("enable", WifiConfig_SetNetworkEnabled(id, true));
}

/* Waits up to 20 s for the network to fail, and reports why it did. */
static void Diagnose(int id) {
  WifiConfig_NetworkDiagnostics why;
  int got = -1;
  for (int i = 0; i < 200 && got != 0; ++i) {
    got = WifiConfig_GetNetworkDiagnostics(id, &why);
    const struct timespec pause = {0, 100 * 1000 * 1000};
    if (got != 0) nanosleep(&pause, NULL);
  }
  if (got != 0) {
    Report("diagnostics", got);
    return;
  }
  Log_Debug("diagnostics: error %d cert %d depth %d subject %s enabled %d connected %d recent %d\n",
            why.error, why.certError, why.certDepth, why.certSubject.name, why.isEnabled,
            why.isConnected, why.timestamp > time(NULL) - 60 && why.timestamp <= time(NULL));
}

/* Has the device's time taken from NTP server `server`, then reads the last sync, and disables
 * time sync. */
static void TimeSyncCustom(const char* server) {
  Report("custom", Networking_TimeSync_EnableCustomNtp(
                       server, NULL, Networking_NtpOption_FallbackServerDisabled));
  Report("custom-injected",
         Networking_TimeSync_EnableCustomNtp("a\nserver 192.0.2.1", NULL,
                                             Networking_NtpOption_FallbackServerDisabled));
  char name[64];
  size_t length = sizeof name;
  struct tm before, ntp;
  int got = -1;
  for (int i = 0; i < 100 && got != 0; ++i) {
    length = sizeof name;
    got = Networking_TimeSync_GetLastNtpSyncInfo(name, &length, &before, &ntp);
    if (got != 0 && errno != ENOENT) break;  /* no sync can come */
    const struct timespec pause = {0, 100 * 1000 * 1000};
    if (got != 0) nanosleep(&pause, NULL);
  }
  if (got == 0) {
    Log_Debug("last-sync: %s this-century %d\n", name, ntp.tm_year >= 100 && before.tm_year >= 100);
  } else {
    Report("last-sync", got);
  }
  size_t tiny = 3;
  Report("last-sync-small", Networking_TimeSync_GetLastNtpSyncInfo(name, &tiny, &before, &ntp));
  Log_Debug("needs: %d\n", (int)tiny == (int)strlen(server) + 1);
  Report("disable", Networking_TimeSync_SetEnabled(false));
  bool enabled = true;
  Report("get-enabled", Networking_TimeSync_GetEnabled(&enabled));
  Log_Debug("enabled: %d\n", enabled);
  length = sizeof name;
  Report("last-sync-disabled",
         Networking_TimeSync_GetLastNtpSyncInfo(name, &length, &before, &ntp));
}

/* Duplicates a network, and what diagnostics say of a network enabled without its key. */
static void WifiDuplicate(void) {
  const int id = WifiConfig_AddNetwork();
  Report("ssid", WifiConfig_SetSSID(id, (const uint8_t*)"home", 4));
  Report("security", WifiConfig_SetSecurityType(id, WifiConfig_Security_Wpa2_Psk));
  WifiConfig_NetworkDiagnostics why;
  Report("diagnostics-before", WifiConfig_GetNetworkDiagnostics(id, &why));
  Report("enable-without-key", WifiConfig_SetNetworkEnabled(id, true));
  if (WifiConfig_GetNetworkDiagnostics(id, &why) == 0) {
    Log_Debug("diagnostics: error %d enabled %d\n", why.error, why.isEnabled);
  }
  Report("psk", WifiConfig_SetPSK(id, "correct horse", 13));
  Report("name", WifiConfig_SetConfigName(id, "home-net"));
  const int copy = WifiConfig_AddDuplicateNetwork(id, "home-backup");
  Log_Debug("duplicate: %d\n", copy);
  Report("duplicate-long-name", WifiConfig_AddDuplicateNetwork(id, "seventeen-chars-x"));
  Report("duplicate-quoted-name", WifiConfig_AddDuplicateNetwork(id, "a\"b"));
  Report("duplicate-unknown", WifiConfig_AddDuplicateNetwork(99, "x"));
  Report("diagnostics-of-copy", WifiConfig_GetNetworkDiagnostics(copy, &why));
  Report("diagnostics-unknown", WifiConfig_GetNetworkDiagnostics(99, &why));
  Report("diagnostics-negative", WifiConfig_GetNetworkDiagnostics(-1, &why));
  Report("diagnostics-null", WifiConfig_GetNetworkDiagnostics(id, NULL));
  Log_Debug("count: %d by-name: %d\n", (int)WifiConfig_GetStoredNetworkCount(),
            WifiConfig_GetNetworkIdByConfigName("home-backup"));
  Report("persist", WifiConfig_PersistConfig());
}

static void WifiConfigure(const char* keep) {
  const int id = WifiConfig_AddNetwork();
  Log_Debug("add: %d\n", id);
  Report("ssid-comment", WifiConfig_SetSSID(id, (const uint8_t*)"x\"y#", 4));
  Report("ssid", WifiConfig_SetSSID(id, (const uint8_t*)"home", 4));
  Report("security", WifiConfig_SetSecurityType(id, WifiConfig_Security_Wpa2_Psk));
  const char injected[] = "abcdefgh\"\npriority=9\n#";
  Report("psk-injected", WifiConfig_SetPSK(id, injected, sizeof injected - 1));
  Report("psk", WifiConfig_SetPSK(id, "correct horse", 13));
  Report("name-injected", WifiConfig_SetConfigName(id, "x\npriority=9\n#"));
  Report("name", WifiConfig_SetConfigName(id, "home-net"));
  Report("enable", WifiConfig_SetNetworkEnabled(id, true));
  Report("persist", WifiConfig_PersistConfig());
  uint8_t too_long[33] = {0};
  Report("ssid-33", WifiConfig_SetSSID(id, too_long, sizeof too_long));
  Report("forget-unknown", WifiConfig_ForgetNetworkById(99));
  Report("enable-unknown", WifiConfig_SetNetworkEnabled(99, true));
  Log_Debug("count: %d\n", (int)WifiConfig_GetStoredNetworkCount());
  WifiConfig_StoredNetwork stored[4];
  const ssize_t n = WifiConfig_GetStoredNetworks(stored, 4);
  for (ssize_t i = 0; i < n; ++i) {
    Log_Debug("stored: %.*s security %d enabled %d connected %d\n", stored[i].ssidLength,
              (const char*)stored[i].ssid, stored[i].security, stored[i].isEnabled,
              stored[i].isConnected);
  }
  Log_Debug("by-name: %d\n", WifiConfig_GetNetworkIdByConfigName("home-net"));
  WifiConfig_ConnectedNetwork current;
  Report("current", WifiConfig_GetCurrentNetwork(&current));
  Report("scan", (int)WifiConfig_TriggerScanAndGetScannedNetworkCount());
  if (strcmp(keep, "keep") != 0) {
    Report("forget", WifiConfig_ForgetNetworkById(id));
    Log_Debug("count: %d\n", (int)WifiConfig_GetStoredNetworkCount());
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

/* The LSM6DS3 as the public samples read it: WHO_AM_I, a software reset until it clears, the
 * accelerometer on at 104 Hz and 2 g, then its Z axis once STATUS_REG says data is ready.
 * A Transfer writes `length` bytes and reads `read_length` after them. */
typedef ssize_t Transfer(int fd, const uint8_t* write, size_t length, uint8_t* read,
                         size_t read_length);
static int i2c_address;
static ssize_t I2cTransfer(int fd, const uint8_t* write, size_t length, uint8_t* read,
                           size_t read_length) {
  if (read_length == 0) return I2CMaster_Write(fd, (I2C_DeviceAddress)i2c_address, write, length);
  return I2CMaster_WriteThenRead(fd, (I2C_DeviceAddress)i2c_address, write, length, read,
                                 read_length);
}
static ssize_t SpiTransfer(int fd, const uint8_t* write, size_t length, uint8_t* read,
                           size_t read_length) {
  uint8_t command[8];
  memcpy(command, write, length);
  if (read_length == 0) {
    SPIMaster_Transfer transfer;
    SPIMaster_InitTransfers(&transfer, 1);
    transfer.flags = SPI_TransferFlags_Write;
    transfer.writeData = command;
    transfer.length = length;
    return SPIMaster_TransferSequential(fd, &transfer, 1);
  }
  command[0] |= 0x80; /* read */
  return SPIMaster_WriteThenRead(fd, command, length, read, read_length);
}

static void ReadSensor(int fd, Transfer* transfer) {
  uint8_t reg = 0x0f;
  uint8_t value = 0;
  Report("who-am-i", (int)transfer(fd, &reg, 1, &value, 1));
  Log_Debug("who-am-i: 0x%02x\n", value);
  const uint8_t reset[] = {0x12, 0x01};
  Report("reset", (int)transfer(fd, reset, 2, NULL, 0));
  reg = 0x12;
  do {
    if (transfer(fd, &reg, 1, &value, 1) < 0) break;
  } while ((value & 0x01) != 0);
  Log_Debug("ctrl3-c: 0x%02x\n", value);
  const uint8_t enable[] = {0x10, 0x40};
  Report("enable", (int)transfer(fd, enable, 2, NULL, 0));
  reg = 0x1e;
  Report("status", (int)transfer(fd, &reg, 1, &value, 1));
  Log_Debug("status: 0x%02x\n", value);
  uint8_t xyz[6] = {0};
  reg = 0x28;
  Log_Debug("read-xyz: %d\n", (int)transfer(fd, &reg, 1, xyz, sizeof xyz));
  Log_Debug("z: %d\n", (int16_t)(xyz[4] | (xyz[5] << 8)));
}

static void Echo(EventLoop* el, int fd, EventLoop_IoEvents events, void* context) {
  (void)el;
  (void)events;
  (void)context;
  char buffer[64];
  const ssize_t got = read(fd, buffer, sizeof buffer);
  if (got > 0 && write(fd, buffer, (size_t)got) != got) Report("echo", -1);
}

static bool defer_updates = false;

static void Notified(SysEvent_Events event, SysEvent_Status status, const SysEvent_Info* info,
                     void* context) {
  (void)context;
  SysEvent_Info_UpdateData data = {0, SysEvent_UpdateType_Invalid};
  const int has_data = SysEvent_Info_GetUpdateData(info, &data);
  Log_Debug("event %u status %u minutes %u type %u%s\n", event, status,
            data.max_deferral_time_in_minutes, data.update_type, has_data == 0 ? "" : " (no data)");
  if (defer_updates && status == SysEvent_Status_Pending) {
    Report("defer", SysEvent_DeferEvent(SysEvent_Events_UpdateReadyForInstall, 5));
    Report("defer-started", SysEvent_DeferEvent(SysEvent_Events_UpdateStarted, 5));
  }
}

/* The real-time side: echoes each message back to its sender with "echo:" before it. */
static int EchoRealTime(void) {
  const int channel = Intercore_OpenChannel();
  Report("channel", channel);
  if (channel < 0) return 1;
  for (;;) {
    unsigned char in[INTERCORE_HEADER_SIZE + INTERCORE_MAX_PAYLOAD];
    const ssize_t got = recv(channel, in, sizeof in, 0);
    if (got < INTERCORE_HEADER_SIZE) continue;
    unsigned char out[sizeof in + 5];
    memcpy(out, in, INTERCORE_HEADER_SIZE);
    memcpy(out + INTERCORE_HEADER_SIZE, "echo:", 5);
    memcpy(out + INTERCORE_HEADER_SIZE + 5, in + INTERCORE_HEADER_SIZE,
           (size_t)got - INTERCORE_HEADER_SIZE);
    const unsigned char* id = in;
    Log_Debug("from %02x%02x%02x%02x: %.*s\n", id[3], id[2], id[1], id[0],
              (int)(got - INTERCORE_HEADER_SIZE), (const char*)in + INTERCORE_HEADER_SIZE);
    send(channel, out, (size_t)got + 5, 0);
  }
}

/* The high-level side: connects to `component`, sends `message` until an answer comes (the
 * real-time app may not run yet), prints the answer. */
static void Talk(const char* component, const char* message) {
  const int fd = Application_Connect(component);
  Report("connect", fd);
  if (fd < 0) return;
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (send(fd, message, strlen(message), 0) < 0) {
      Report("send", -1);
      return;
    }
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    if (poll(&ready, 1, 200) != 1) continue;
    char reply[INTERCORE_MAX_PAYLOAD + 1];
    const ssize_t got = recv(fd, reply, sizeof reply - 1, 0);
    if (got < 0) {
      Report("reply", -1);
    } else {
      Log_Debug("reply: %.*s\n", (int)got, reply);
    }
    return;
  }
  Log_Debug("reply: none\n");
}

/* How the app is scheduled, and whether it can change that. */
static void Schedule(void) {
  const int policy = sched_getscheduler(0);
  Log_Debug("policy: %s\n", policy == SCHED_FIFO ? "fifo" : policy == SCHED_OTHER ? "other" : "?");
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  sched_getaffinity(0, sizeof cpus, &cpus);
  char list[256] = "";
  for (int cpu = 0, at = 0; cpu < CPU_SETSIZE && at < (int)sizeof list - 8; ++cpu) {
    if (CPU_ISSET(cpu, &cpus)) at += snprintf(list + at, sizeof list - at, at ? ",%d" : "%d", cpu);
  }
  Log_Debug("cpus: %s\n", list);
  const struct sched_param param = {.sched_priority = 90};
  Report("set-fifo-90", sched_setscheduler(0, SCHED_FIFO, &param));
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int cpu = 0; cpu < 2; ++cpu) CPU_SET(cpu, &all);
  Report("set-affinity", sched_setaffinity(0, sizeof all, &all));
  Report("sched-core", prctl(PR_SCHED_CORE, PR_SCHED_CORE_CREATE, 0, 1 /* PIDTYPE_TGID */, 0));
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
  } else if (strcmp(mode, "i2c") == 0 && argc == 4) {
    const int fd = I2CMaster_Open((I2C_InterfaceId)atoi(argv[2]));
    Report("i2c-open", fd);
    Report("i2c-speed", I2CMaster_SetBusSpeed(fd, I2C_BUS_SPEED_STANDARD));
    Report("i2c-speed-12345", I2CMaster_SetBusSpeed(fd, 12345));
    i2c_address = atoi(argv[3]);
    ReadSensor(fd, I2cTransfer);
    uint8_t byte = 0;
    Report("i2c-nobody", (int)I2CMaster_Read(fd, 0x11, &byte, 1));
  } else if (strcmp(mode, "spi") == 0 && argc == 4) {
    SPIMaster_Config config;
    SPIMaster_InitConfig(&config);
    const int fd = SPIMaster_Open(atoi(argv[2]), atoi(argv[3]), &config);
    Report("spi-open", fd);
    Report("spi-mode", SPIMaster_SetMode(fd, SPI_Mode_3));
    Report("spi-speed-1", SPIMaster_SetBusSpeed(fd, 1));
    Report("spi-speed", SPIMaster_SetBusSpeed(fd, 400000));
    ReadSensor(fd, SpiTransfer);
  } else if (strcmp(mode, "uart") == 0 && argc == 3) {
    UART_Config config;
    UART_InitConfig(&config);
    config.baudRate = 9600;
    const int fd = UART_Open(atoi(argv[2]), &config);
    Report("uart-open", fd);
    EventLoop* loop = EventLoop_Create();
    if (fd < 0 || loop == NULL ||
        EventLoop_RegisterIo(loop, fd, EventLoop_Input, Echo, NULL) == NULL) {
      Report("uart-loop", -1);
      return 1;
    }
    Log_Debug("done\n");
    for (;;) {
      if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) return 1;
    }
  } else if (strcmp(mode, "sysevent") == 0) {
    defer_updates = argc > 2 && strcmp(argv[2], "defer") == 0;
    EventLoop* loop = EventLoop_Create();
    EventRegistration* reg = SysEvent_RegisterForEventNotifications(
        loop, SysEvent_Events_UpdateReadyForInstall | SysEvent_Events_NoUpdateAvailable, Notified,
        NULL);
    Report("register", reg == NULL ? -1 : 0);
    Report("register-nothing", SysEvent_RegisterForEventNotifications(loop, SysEvent_Events_None,
                                                                      Notified, NULL) == NULL
                                   ? -1
                                   : 0);
    Log_Debug("done\n");
    for (;;) {
      if (EventLoop_Run(loop, -1, true) == EventLoop_Run_Failed && errno != EINTR) return 1;
    }
  } else if (strcmp(mode, "deviceauth") == 0) {
    bool ready = false;
    Report("ready", Application_IsDeviceAuthReady(&ready));
    Log_Debug("ready: %d\n", ready ? 1 : 0);
    const char* path = DeviceAuth_GetCertificatePath();
    Report("certificate-path", path == NULL ? -1 : 0);
    FILE* certificate = path == NULL ? NULL : fopen(path, "r");
    char line[64] = "";
    if (certificate != NULL && fgets(line, sizeof line, certificate) != NULL) Log_Debug("%s", line);
    const char* key = DeviceAuth_GetPrivateKeyPath();
    Report("key-path-stable", key != NULL && DeviceAuth_GetPrivateKeyPath() != NULL &&
                                      strcmp(path, DeviceAuth_GetCertificatePath()) == 0
                                  ? 0
                                  : -1);
  } else if (strcmp(mode, "networking") == 0) {
    bool ready = false;
    Report("ready", Networking_IsNetworkingReady(&ready));
    const ssize_t count = Networking_GetInterfaceCount();
    Log_Debug("interfaces: %zd\n", count);
    Networking_NetworkInterface interfaces[64];
    const ssize_t filled = Networking_GetInterfaces(interfaces, 64);
    for (ssize_t i = 0; i < filled; ++i) {
      Networking_InterfaceConnectionStatus status = 0;
      Report(interfaces[i].interfaceName,
             Networking_GetInterfaceConnectionStatus(interfaces[i].interfaceName, &status));
    }
    Report("no-such-interface", Networking_GetInterfaceConnectionStatus("nosuch0", NULL));
    Networking_InterfaceConnectionStatus status = 0;
    Report("no-such-interface", Networking_GetInterfaceConnectionStatus("nosuch0", &status));
  } else if (strcmp(mode, "uart-reopen") == 0 && argc == 3) {
    /* Opening a descriptor again through /proc reaches what it is: for a terminal's master, a
     * new terminal each time. */
    UART_Config config;
    UART_InitConfig(&config);
    const int fd = UART_Open(atoi(argv[2]), &config);
    Report("uart-open", fd);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    Report("uart-reopen", open(path, O_RDWR | O_NOCTTY));
    const int own = open("/tmp/own", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    snprintf(path, sizeof path, "/proc/self/fd/%d", own);
    Report("own-file-reopen", open(path, O_RDONLY));
  } else if (strcmp(mode, "power") == 0) {
    Report("profile", PowerManagement_SetSystemPowerProfile(PowerManagement_PowerSaver));
    Report("profile-7", PowerManagement_SetSystemPowerProfile(7));
    Report("rtc", clock_systohc());
    bool synced = false;
    Report("timesync", Networking_TimeSync_GetEnabled(&synced));
    Report("power-down", PowerManagement_ForceSystemPowerDown(30));
    Report("reboot", PowerManagement_ForceSystemReboot());
  } else if (strcmp(mode, "echo") == 0) {
    return EchoRealTime();
  } else if (strcmp(mode, "talk") == 0 && argc == 4) {
    Talk(argv[2], argv[3]);
  } else if (strcmp(mode, "network-config") == 0) {
    Report("set-interface-state", Networking_SetInterfaceState("eth0", true));
    Networking_IpConfig ip;
    Networking_IpConfig_Init(&ip);
    const struct in_addr address = {htonl(0xc0a86414)}, mask = {htonl(0xffffff00)};
    Networking_IpConfig_EnableStaticIp(&ip, address, mask, address);
    const struct in_addr servers[4] = {address, address, address, address};
    Report("custom-dns-4", Networking_IpConfig_EnableCustomDns(&ip, servers, 4));
    Report("ip-apply", Networking_IpConfig_Apply("eth0", &ip));
    Networking_IpConfig_Destroy(&ip);
    Networking_DhcpServerConfig dhcp;
    Networking_DhcpServerConfig_Init(&dhcp);
    Report("dhcp-lease",
           Networking_DhcpServerConfig_SetLease(&dhcp, address, 1, mask, address, 24));
    Report("dhcp-start", Networking_DhcpServer_Start("eth0", &dhcp));
    Networking_DhcpServerConfig_Destroy(&dhcp);
    Networking_SntpServerConfig sntp;
    Networking_SntpServerConfig_Init(&sntp);
    Report("sntp-start", Networking_SntpServer_Start("eth0", &sntp));
    Networking_SntpServerConfig_Destroy(&sntp);
    Report("timesync-set", Networking_TimeSync_SetEnabled(false));
  } else if (strcmp(mode, "reboot") == 0) {
    Report("reboot", PowerManagement_ForceSystemReboot());
  } else if (strcmp(mode, "power-down-long") == 0) {
    Report("power-down", PowerManagement_ForceSystemPowerDown(2147483647));
  } else if (strcmp(mode, "wifi") == 0) {
    Report("wifi-add", WifiConfig_AddNetwork());
    Report("wifi-eap-tls", WifiConfig_SetSecurityType(0, WifiConfig_Security_Wpa2_EAP_TLS));
    Report("wifi-identity", WifiConfig_SetClientIdentity(0, "device-7"));
    Report("certstore-count", (int)CertStore_GetCertificateCount());
  } else if (strcmp(mode, "dhcp-server") == 0 && argc == 3) {
    DhcpServe(argv[2]);
  } else if (strcmp(mode, "dhcp") == 0 && argc == 3) {
    Dhcp(argv[2]);
  } else if (strcmp(mode, "certstore") == 0) {
    CertStoreManage();
  } else if (strcmp(mode, "eap-tls") == 0) {
    EapTls();
    if (argc > 2 && strcmp(argv[2], "diagnose") == 0) Diagnose(0);
  } else if (strcmp(mode, "timesync") == 0 && argc == 3) {
    TimeSyncCustom(argv[2]);
  } else if (strcmp(mode, "wifi-duplicate") == 0) {
    WifiDuplicate();
  } else if (strcmp(mode, "wifi-duplicate-first") == 0) {
    Report("duplicate", WifiConfig_AddDuplicateNetwork(0, "copy"));
    Log_Debug("count: %d\n", (int)WifiConfig_GetStoredNetworkCount());
  } else if (strcmp(mode, "netconfig") == 0 && argc == 3) {
    NetConfig(argv[2]);
  } else if (strcmp(mode, "wifi-count") == 0) {
    Log_Debug("asking\n");
    const ssize_t count = WifiConfig_GetStoredNetworkCount();
    if (count < 0) {
      Report("wifi-count", -1);
    } else {
      Log_Debug("wifi-count: %zd\n", count);
    }
  } else if (strcmp(mode, "wifi-configure") == 0) {
    WifiConfigure(argc > 2 ? argv[2] : "");
  } else if (strcmp(mode, "schedule") == 0) {
    Schedule();
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
