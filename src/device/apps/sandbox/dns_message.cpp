#include "device/apps/sandbox/dns_message.hpp"

#include <arpa/nameser.h>
#include <resolv.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace aspis::device::apps::sandbox {

namespace {

constexpr std::size_t kHeader = 12;

}  // namespace

std::optional<DnsQuestion> ParseDnsQuery(std::span<const std::uint8_t> query) {
  ns_msg message{};
  ns_rr question{};
  if (query.size() < kHeader || query.size() > NS_MAXMSG ||
      ::ns_initparse(query.data(), static_cast<int>(query.size()), &message) != 0 ||
      ::ns_msg_getflag(message, ns_f_qr) != 0 || ns_msg_count(message, ns_s_qd) != 1 ||
      ::ns_parserr(&message, ns_s_qd, 0, &question) != 0) {
    return std::nullopt;
  }
  const int name_size = ::dn_skipname(query.data() + kHeader, query.data() + query.size());
  if (name_size < 0) return std::nullopt;
  // Written out, label by label: a reply repeats the question, and a compression pointer in it
  // would point into the header the reply rewrites (a query's one name has nothing else to point
  // at), making the reply's names unreadable.
  for (std::size_t at = kHeader; query[at] != 0; at += query[at] + std::size_t{1}) {
    if ((query[at] & NS_CMPRSFLGS) != 0) return std::nullopt;
  }
  DnsQuestion out;
  out.end = kHeader + static_cast<std::size_t>(name_size) + 4;
  if (out.end > query.size()) return std::nullopt;
  out.name = ns_rr_name(question);
  std::transform(out.name.begin(), out.name.end(), out.name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.name.empty() && out.name.back() == '.') out.name.pop_back();
  out.type = ns_rr_type(question);
  out.record_class = ns_rr_class(question);
  return out;
}

std::vector<std::uint8_t> DnsReply(std::span<const std::uint8_t> query, const DnsQuestion& question,
                                   int rcode, std::span<const IpAddress> addresses,
                                   std::chrono::seconds ttl) {
  std::vector<std::uint8_t> out(query.begin(),
                                query.begin() + static_cast<std::ptrdiff_t>(question.end));
  const bool rd = (query[2] & 0x01) != 0;
  out[2] = static_cast<std::uint8_t>(0x80 | (query[2] & 0x78) | (rd ? 0x01 : 0));  // QR, opcode
  out[3] = static_cast<std::uint8_t>(0x80 | (rcode & 0x0f));                       // RA, rcode
  const bool typed =
      question.record_class == ns_c_in && (question.type == ns_t_a || question.type == ns_t_aaaa);
  std::size_t answered = 0;
  for (const auto& address : addresses) {
    if (!typed || answered == kMaxDnsAnswers || address.v6 != (question.type == ns_t_aaaa)) {
      continue;
    }
    const std::size_t length = address.v6 ? 16 : 4;
    std::array<std::uint8_t, 12> record{};
    ::ns_put16(0xc000 | kHeader, record.data());  // the question's name
    ::ns_put16(static_cast<unsigned>(question.type), record.data() + 2);
    ::ns_put16(ns_c_in, record.data() + 4);
    ::ns_put32(static_cast<unsigned long>(ttl.count()), record.data() + 6);
    ::ns_put16(static_cast<unsigned>(length), record.data() + 10);
    out.insert(out.end(), record.begin(), record.end());
    out.insert(out.end(), address.bytes.begin(),
               address.bytes.begin() + static_cast<std::ptrdiff_t>(length));
    ++answered;
  }
  ::ns_put16(static_cast<unsigned>(answered), out.data() + 6);  // answers
  ::ns_put16(0, out.data() + 8);                                // authority
  ::ns_put16(0, out.data() + 10);                               // additional (no EDNS)
  return out;
}

}  // namespace aspis::device::apps::sandbox
