#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "device/apps/sandbox/network_policy.hpp"

// The DNS messages aspisd's resolver for apps reads and writes (app_resolver.hpp): what an app
// sends is untrusted, so reading it is a parser of its own, fuzzed (fuzz/dns_fuzz.cpp).
namespace aspis::device::apps::sandbox {

// The one question of a DNS query.
struct DnsQuestion {
  std::string name;  // lowercase, without the final dot
  int type = 0;
  int record_class = 0;
  std::size_t end = 0;  // where the question ends in the query: what a reply repeats
};

// The question of `query`; nullopt for anything else than a query with exactly one question
// (nothing a C library's resolver sends).
std::optional<DnsQuestion> ParseDnsQuery(std::span<const std::uint8_t> query);

// The reply to `query` (whose question ends at question.end) with `rcode` and, for a type A or
// AAAA question, `addresses` as answers of that type, each to live `ttl`. At most kMaxDnsAnswers
// are answered, so a reply fits in 512 bytes and is never truncated.
inline constexpr std::size_t kMaxDnsAnswers = 8;
std::vector<std::uint8_t> DnsReply(std::span<const std::uint8_t> query, const DnsQuestion& question,
                                   int rcode, std::span<const IpAddress> addresses,
                                   std::chrono::seconds ttl);

}  // namespace aspis::device::apps::sandbox
