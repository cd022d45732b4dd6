#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace aspis::testing {

// A DHCPACK as a server sends it (RFC 2131): the fixed fields (the address leased `yiaddr`, the
// sname and file fields holding `sname` and `file`), the magic cookie, then `options`.
inline std::vector<std::uint8_t> DhcpAck(const std::vector<std::uint8_t>& options,
                                         std::array<std::uint8_t, 4> yiaddr = {},
                                         const std::vector<std::uint8_t>& file = {},
                                         const std::vector<std::uint8_t>& sname = {}) {
  std::vector<std::uint8_t> message(236, 0);
  message[0] = 2;
  std::copy(yiaddr.begin(), yiaddr.end(), message.begin() + 16);
  std::copy(sname.begin(), sname.end(), message.begin() + 44);
  std::copy(file.begin(), file.end(), message.begin() + 108);
  message.insert(message.end(), {99, 130, 83, 99});
  message.insert(message.end(), options.begin(), options.end());
  return message;
}

}  // namespace aspis::testing
