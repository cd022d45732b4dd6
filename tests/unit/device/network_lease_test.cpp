// Reading the DNS and NTP servers out of a DHCP lease as dhcpcd keeps it (board/dhcp_lease.hpp):
// every byte of it is the network's to choose, and a hostile one's must not point the device's
// questions at itself.
#include "device/board/dhcp_lease.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "device/board/network.hpp"
#include "support/dhcp_message.hpp"

namespace aspis::device::board {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes Message(const Bytes& options, const Bytes& file = {}, const Bytes& sname = {}) {
  return testing::DhcpAck(options, {}, file, sname);
}

TEST(ParseLease, TheLeasesDnsAndNtpServersAreReadInOrder) {
  const LeaseServers servers =
      ParseLease(Message({53, 1, 5,  1, 4, 255, 255, 255, 0,   6,   8,  192, 168,
                          77, 1, 10, 1, 2, 3,   42,  4,   192, 168, 77, 1,   255}));
  EXPECT_EQ(AsText(servers.dns), (std::vector<std::string>{"192.168.77.1", "10.1.2.3"}));
  EXPECT_EQ(AsText(servers.ntp), std::vector<std::string>{"192.168.77.1"});
  EXPECT_TRUE(ParseLease(Message({53, 1, 5, 255})).dns.empty());
  EXPECT_EQ(
      AsText(std::vector<in_addr>{ParseLease(testing::DhcpAck({255}, {192, 168, 77, 58})).address}),
      std::vector<std::string>{"192.168.77.58"});
}

TEST(ParseLease, ALeaseNeverPointsTheDevicesQuestionsAtItselfItsLinkOrNowhere) {
  const LeaseServers servers =
      ParseLease(Message({6,   32, 127, 0,   0,   1,   169, 254, 1, 1,  0,   0,   0, 0, 224,
                          0,   0,  251, 255, 255, 255, 255, 192, 0, 2,  1,   192, 0, 2, 1,
                          192, 0,  2,   2,   42,  8,   127, 0,   0, 53, 192, 0,   2, 9, 255}));
  EXPECT_EQ(AsText(servers.dns), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(AsText(servers.ntp), std::vector<std::string>{"192.0.2.9"});
}

TEST(ParseLease, AtMostThreeDnsAndFourNtpServersAreTaken) {
  Bytes options = {6, 20};
  for (std::uint8_t i = 1; i <= 5; ++i) options.insert(options.end(), {192, 0, 2, i});
  options.insert(options.end(), {42, 20});
  for (std::uint8_t i = 1; i <= 5; ++i) options.insert(options.end(), {192, 0, 2, i});
  options.push_back(255);
  const LeaseServers servers = ParseLease(Message(options));
  EXPECT_EQ(servers.dns.size(), kMaxLeaseDnsServers);
  EXPECT_EQ(servers.ntp.size(), kMaxLeaseNtpServers);
}

TEST(ParseLease, AnOptionInPartsAndOptionsInTheFileAndSnameFieldsAreReadOnlyWhenOverloaded) {
  const Bytes file = {6, 4, 192, 0, 2, 3, 255};
  const Bytes sname = {42, 4, 192, 0, 2, 9, 255};
  const LeaseServers overloaded =
      ParseLease(Message({52, 1, 3, 6, 4, 192, 0, 2, 1, 6, 4, 192, 0, 2, 2, 255}, file, sname));
  EXPECT_EQ(AsText(overloaded.dns),
            (std::vector<std::string>{"192.0.2.1", "192.0.2.2", "192.0.2.3"}));
  EXPECT_EQ(AsText(overloaded.ntp), std::vector<std::string>{"192.0.2.9"});
  // The same fields without option 52 are a boot file's name and a server's host name.
  const LeaseServers plain = ParseLease(Message({6, 4, 192, 0, 2, 1, 255}, file, sname));
  EXPECT_EQ(AsText(plain.dns), std::vector<std::string>{"192.0.2.1"});
  EXPECT_TRUE(plain.ntp.empty());
  // A list split mid-address is whole once joined.
  EXPECT_EQ(AsText(ParseLease(Message({6, 2, 192, 0, 6, 2, 2, 7, 255})).dns),
            std::vector<std::string>{"192.0.2.7"});
}

TEST(ParseLease, AMalformedLeaseGivesNoServers) {
  const Bytes good = Message({6, 4, 192, 0, 2, 1, 42, 4, 192, 0, 2, 9, 255});
  ASSERT_EQ(ParseLease(good).dns.size(), 1U);
  EXPECT_TRUE(ParseLease(Bytes(good.begin(), good.begin() + 239)).dns.empty());
  Bytes no_cookie = good;
  no_cookie[236] = 0;
  EXPECT_TRUE(ParseLease(no_cookie).dns.empty());
  // An option that runs past the message: nothing of it is believed.
  const LeaseServers past = ParseLease(Message({42, 4, 192, 0, 2, 9, 6, 8, 192, 0, 2, 1}));
  EXPECT_TRUE(past.dns.empty());
  EXPECT_TRUE(past.ntp.empty());
  // A list whose length is not a multiple of 4 gives none of its option, and only of it.
  const LeaseServers ragged = ParseLease(Message({6, 5, 192, 0, 2, 1, 7, 42, 4, 192, 0, 2, 9}));
  EXPECT_TRUE(ragged.dns.empty());
  EXPECT_EQ(AsText(ragged.ntp), std::vector<std::string>{"192.0.2.9"});
}

}  // namespace
}  // namespace aspis::device::board
