// What aspisd reads of wpa_supplicant's answers (board/wifi.hpp); the commands themselves are
// tested against a real wpa_supplicant (integration ApplibsTest.*Wifi*).
#include "device/board/wifi.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace aspis::device::board {
namespace {

Bytes Of(const std::string& text) { return Bytes(text.begin(), text.end()); }

TEST(WifiTest, ScanResultsAreReadWithTheirEscapedSsids) {
  const auto seen = ParseScanResults(
      "bssid / frequency / signal level / flags / ssid\n"
      "02:00:00:00:01:00\t2412\t-45\t[WPA2-PSK-CCMP][ESS]\thome\n"
      "02:00:00:00:02:00\t5180\t-70\t[WPA2-EAP-CCMP][ESS]\tcorp \\\"wifi\\\"\\x00\\\\\n"
      "02:00:00:00:03:00\t2437\t-80\t[ESS]\t\n"
      "02:00:00:00:04:00\t2462\t-60\t[WEP][ESS]\told\n"
      "not a row\n");
  ASSERT_EQ(seen.size(), 4U);
  EXPECT_EQ(seen[0].ssid, Of("home"));
  EXPECT_EQ(seen[0].bssid, (std::array<std::uint8_t, 6>{2, 0, 0, 0, 1, 0}));
  EXPECT_EQ(seen[0].frequency_mhz, 2412U);
  EXPECT_EQ(seen[0].rssi, -45);
  EXPECT_EQ(seen[0].security, WifiSecurity::kWpa2Psk);
  EXPECT_EQ(seen[1].ssid, Of(std::string("corp \"wifi\"\0\\", 13)));
  EXPECT_EQ(seen[1].security, WifiSecurity::kWpa2EapTls);
  EXPECT_TRUE(seen[2].ssid.empty());
  EXPECT_EQ(seen[2].security, WifiSecurity::kOpen);
  EXPECT_EQ(seen[3].security, WifiSecurity::kUnknown);
}

TEST(WifiTest, AnSsidLongerThan32BytesIsNotTaken) {
  const auto seen = ParseScanResults("header\n02:00:00:00:01:00\t2412\t-45\t[ESS]\t" +
                                     std::string(33, 'x') + "\n");
  EXPECT_TRUE(seen.empty());
}

TEST(WifiTest, ANetworkValueIsAQuotedStringOrHex) {
  EXPECT_EQ(ParseNetworkValue("\"home\""), Of("home"));
  EXPECT_EQ(ParseNetworkValue("686f6d65"), Of("home"));
  EXPECT_EQ(ParseNetworkValue("WPA-PSK"), std::nullopt);
}

using std::chrono::sys_seconds;
constexpr sys_seconds kThen{std::chrono::seconds(1'800'000'000)};

// wpa_supplicant's current network, as STATUS names it.
std::function<std::optional<int>()> Current(std::optional<int> id) {
  return [id] { return id; };
}

TEST(WifiFailuresTest, AServerCertificateErrorIsTheFailureOfTheNetworkBeingAuthenticated) {
  WifiFailures failures;
  failures.OnEvent("<3>CTRL-EVENT-EAP-STARTED EAP authentication started", kThen, Current(2));
  failures.OnEvent(
      "<3>CTRL-EVENT-EAP-TLS-CERT-ERROR reason=1 depth=1 subject='/CN=ca' err='self-signed "
      "certificate in certificate chain'",
      kThen, Current(2));
  EXPECT_FALSE(failures.Of(2, true, false));  // not failed yet
  failures.OnEvent("<3>CTRL-EVENT-EAP-FAILURE EAP authentication failed", kThen, Current(2));
  auto failure = failures.Of(2, true, false);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->error, WifiFailure::kAuthenticationFailed);
  EXPECT_EQ(failure->cert_error, 19);  // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
  EXPECT_EQ(failure->cert_depth, 1);
  EXPECT_EQ(failure->cert_subject, "/CN=ca");
  EXPECT_EQ(failure->when, kThen);
  // The access point then lets the device go: the network is held back, for the same reason.
  failures.OnEvent(
      "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=2 ssid=\"corp\" auth_failures=1 duration=10 "
      "reason=AUTH_FAILED",
      kThen + std::chrono::seconds(1), Current(std::nullopt));
  failure = failures.Of(2, true, false);
  EXPECT_EQ(failure->cert_error, 19);
  EXPECT_EQ(failure->when, kThen + std::chrono::seconds(1));
  // The next attempt starts afresh: its failure carries no certificate.
  failures.OnEvent("<3>CTRL-EVENT-EAP-STARTED EAP authentication started", kThen, Current(2));
  failures.OnEvent("<3>CTRL-EVENT-EAP-FAILURE EAP authentication failed", kThen, Current(2));
  EXPECT_EQ(failures.Of(2, true, false)->cert_error, 0);
  EXPECT_EQ(failures.Of(2, true, false)->error, WifiFailure::kAuthenticationFailed);
  // A failure while wpa_supplicant names no network is no network's.
  failures.OnEvent("<3>CTRL-EVENT-EAP-FAILURE EAP authentication failed", kThen,
                   Current(std::nullopt));
  EXPECT_FALSE(failures.Of(0, true, false));
}

TEST(WifiFailuresTest, AHostileServersSubjectAndAnAppsSsidCannotForgeTheFieldsAfterThem) {
  WifiFailures failures;
  // The subject is the network's server's to choose; the SSID the app's.
  const std::string subject = "/CN=x' err='certificate has expired";
  failures.OnEvent("<3>CTRL-EVENT-EAP-TLS-CERT-ERROR reason=1 depth=0 subject='" + subject +
                       "' err='unable to get local issuer certificate'",
                   kThen, Current(std::nullopt));
  failures.OnEvent(
      "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=1 ssid=\"a id=7 reason=WRONG_KEY\" auth_failures=1 "
      "duration=10 reason=AUTH_FAILED",
      kThen, Current(std::nullopt));
  EXPECT_FALSE(failures.Of(7, true, false));
  const auto failure = failures.Of(1, true, false);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->error, WifiFailure::kAuthenticationFailed);
  EXPECT_EQ(failure->cert_error, 20);  // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
  EXPECT_EQ(failure->cert_subject, subject);
  // A subject longer than CertStore_SubjectName holds is cut; an error text OpenSSL never gives
  // is unspecified (0).
  failures.OnEvent("<3>CTRL-EVENT-EAP-STARTED EAP authentication started", kThen,
                   Current(std::nullopt));
  failures.OnEvent("<3>CTRL-EVENT-EAP-TLS-CERT-ERROR reason=1 depth=99999 subject='" +
                       std::string(1000, 'x') + "' err='made up'",
                   kThen, Current(1));
  failures.OnEvent("<3>CTRL-EVENT-SSID-TEMP-DISABLED id=1 ssid=\"a\" reason=AUTH_FAILED", kThen,
                   Current(std::nullopt));
  EXPECT_EQ(failures.Of(1, true, false)->cert_subject.size(), 300U);
  EXPECT_EQ(failures.Of(1, true, false)->cert_error, 0);
  EXPECT_EQ(failures.Of(1, true, false)->cert_depth, 100);
}

TEST(WifiFailuresTest, AWrongKeyAndAFailedConnectionAreTheirNetworksLastFailure) {
  WifiFailures failures;
  failures.OnEvent(
      "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"home\" auth_failures=1 duration=10 "
      "reason=WRONG_KEY",
      kThen, Current(std::nullopt));
  failures.OnEvent(
      "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=3 ssid=\"cafe\" auth_failures=1 duration=10 "
      "reason=CONN_FAILED",
      kThen, Current(std::nullopt));
  EXPECT_EQ(failures.Of(0, true, false)->error, WifiFailure::kWrongKey);
  EXPECT_EQ(failures.Of(3, true, false)->error, WifiFailure::kConnectionFailed);
  failures.OnEvent("<3>CTRL-EVENT-NETWORK-REMOVED 0", kThen, Current(std::nullopt));
  EXPECT_FALSE(failures.Of(0, true, false));
  failures.Forget(-1);
  EXPECT_FALSE(failures.Of(3, true, false));
}

TEST(WifiFailuresTest, AScanFindingNoNetworkIsTheFailureOfEveryEnabledOneNotConnected) {
  WifiFailures failures;
  failures.OnEvent(
      "<3>CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"home\" auth_failures=1 duration=10 "
      "reason=WRONG_KEY",
      kThen, Current(std::nullopt));
  failures.OnEvent("<3>CTRL-EVENT-NETWORK-NOT-FOUND", kThen + std::chrono::seconds(5),
                   Current(std::nullopt));
  EXPECT_EQ(failures.Of(0, true, false)->error, WifiFailure::kNetworkNotFound);
  EXPECT_EQ(failures.Of(1, true, false)->error, WifiFailure::kNetworkNotFound);
  EXPECT_EQ(failures.Of(0, false, false)->error, WifiFailure::kWrongKey);  // not looked for
  EXPECT_FALSE(failures.Of(1, true, true));                                // it is connected
  failures.OnEvent("<3>CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=1]",
                   kThen + std::chrono::seconds(6), Current(std::nullopt));
  EXPECT_FALSE(failures.Of(1, true, false));
}

}  // namespace
}  // namespace aspis::device::board
