// Reading the DNS and NTP servers out of dhcpcd's dump of a lease (board/network.hpp): what a DHCP
// server wrote is the network's to choose, and a hostile one's must not point the device's
// questions at itself.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "device/board/network.hpp"

namespace aspis::device::board {
namespace {

TEST(ParseLease, TheLeasesDnsAndNtpServersAreReadInOrder) {
  const LeaseServers servers = ParseLease(
      "reason=BOUND\ninterface=eth1\nip_address=192.168.77.58\nrouters=192.168.77.1\n"
      "domain_name_servers=192.168.77.1 10.1.2.3\nntp_servers=192.168.77.1\n"
      "dhcp_lease_time=3600\n");
  EXPECT_EQ(AsText(servers.dns), (std::vector<std::string>{"192.168.77.1", "10.1.2.3"}));
  EXPECT_EQ(AsText(servers.ntp), std::vector<std::string>{"192.168.77.1"});
  EXPECT_TRUE(ParseLease("reason=BOUND\nip_address=192.168.77.58\n").dns.empty());
}

TEST(ParseLease, ALeaseNeverPointsTheDevicesQuestionsAtItselfItsLinkOrNowhere) {
  const LeaseServers servers = ParseLease(
      "domain_name_servers=127.0.0.1 169.254.1.1 0.0.0.0 224.0.0.251 255.255.255.255 "
      "192.0.2.1 192.0.2.1 1.2.3 192.0.2.300 ::1 192.0.2.2\n"
      "ntp_servers=127.0.0.53 192.0.2.9\n");
  EXPECT_EQ(AsText(servers.dns), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(AsText(servers.ntp), std::vector<std::string>{"192.0.2.9"});
}

TEST(ParseLease, AtMostThreeDnsAndFourNtpServersAreTaken) {
  const LeaseServers servers = ParseLease(
      "domain_name_servers=192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4\n"
      "ntp_servers=192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5\n");
  EXPECT_EQ(servers.dns.size(), kMaxDnsServers);
  EXPECT_EQ(servers.ntp.size(), kMaxLeaseNtpServers);
}

// A string option the server chose (a domain name, say) that smuggled in a line of its own: dhcpcd
// escapes control characters, and a name given twice is taken as no servers at all.
TEST(ParseLease, AServersListGivenTwiceGivesNoServers) {
  const LeaseServers servers = ParseLease(
      "domain_name_servers=192.0.2.1\ndomain_name=evil\ndomain_name_servers=198.51.100.1\n"
      "ntp_servers=192.0.2.9\n");
  EXPECT_TRUE(servers.dns.empty());
  EXPECT_TRUE(servers.ntp.empty());
  EXPECT_TRUE(ParseLease("xdomain_name_servers=192.0.2.1\n").dns.empty());
}

}  // namespace
}  // namespace aspis::device::board
