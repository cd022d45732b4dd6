// What aspisd reads of wpa_supplicant's answers (board/wifi.hpp); the commands themselves are
// tested against a real wpa_supplicant (integration ApplibsTest.*Wifi*).
#include "device/board/wifi.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace aspis::device::board
