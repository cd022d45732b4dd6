// aspisd's resolver for apps reads what an app sends it (device/apps/sandbox/dns_message.hpp):
// any bytes give either no question, or one whose reply is a well-formed DNS message of at most
// 512 bytes that answers that one question.
#include <arpa/nameser.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "device/apps/sandbox/dns_message.hpp"

using aspis::device::apps::sandbox::DnsReply;
using aspis::device::apps::sandbox::IpAddress;
using aspis::device::apps::sandbox::ParseDnsQuery;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> query(data, size);
  const auto question = ParseDnsQuery(query);
  if (!question) return 0;
  // The name as text: escapes (\002) make it longer than on the wire, never past NS_MAXDNAME.
  if (question->end < 12 || question->end > size || question->name.size() >= NS_MAXDNAME) {
    __builtin_trap();
  }
  const std::array<IpAddress, 2> addresses{
      IpAddress{false, {192, 0, 2, 1}},
      IpAddress{true, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}};
  for (const int rcode : {ns_r_noerror, ns_r_refused}) {
    const auto reply = DnsReply(query, *question, rcode, addresses, std::chrono::seconds(300));
    ns_msg message{};
    if (reply.size() > 512 ||
        ::ns_initparse(reply.data(), static_cast<int>(reply.size()), &message) != 0 ||
        ns_msg_getflag(message, ns_f_qr) != 1 || ns_msg_count(message, ns_s_qd) != 1 ||
        ns_msg_getflag(message, ns_f_rcode) != rcode) {
      __builtin_trap();
    }
    for (int i = 0; i < ns_msg_count(message, ns_s_an); ++i) {
      ns_rr answer{};
      if (::ns_parserr(&message, ns_s_an, i, &answer) != 0 ||
          ns_rr_type(answer) != question->type) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
