#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "wire/peripheral.hpp"

// How applibs reaches aspisd: the broker socket (descriptor 3 in the sandbox,
// device/apps/broker.hpp) and the peripheral channels it hands out (wire/peripheral.hpp). Each
// function returns what the applibs call returns, with errno set, so a caller can pass it on.
namespace aspis::applibs {

// Sends `request` (a JSON object) and waits for the answer. Returns 0 with up to `fds.size()`
// descriptors received (the rest closed), or -1 with errno: the broker's, or EIO when there is no
// broker (not run by aspisd).
// `answer`, when given, receives the answer's text (what an ok answer says besides "ok").
int BrokerCall(const std::string& request, std::span<int> fds, std::string* answer = nullptr);

// The same, for a call that answers one descriptor: it, or -1 with errno.
int BrokerOpen(const std::string& request);

// The string or whole number (either sign) `key` has in the flat JSON object `text` (aspisd's own
// messages), or empty / -1 when it has none.
std::string JsonString(std::string_view text, std::string_view key);
// The bytes of the lowercase hex string `key` holds in `text`, at most `max` of them.
std::string JsonBytes(std::string_view text, std::string_view key, std::size_t max);
// `size` bytes at `data` as lowercase hex (how requests carry bytes an app gives).
std::string HexOf(const void* data, std::size_t size);
long long JsonNumber(std::string_view text, std::string_view key);

// One request on a peripheral channel. Returns the reply's value (as a non-negative int; the
// caller reads `value` when it needs all 32 bits), or -1 with errno: the reply's error, or EBADF
// when `fd` is not a peripheral channel. `in` is the request's data, `out` receives the reply's.
int ChannelCall(int fd, wire::peripheral::Op op, std::uint32_t a0, std::uint32_t a1,
                std::uint32_t a2, std::uint32_t a3, std::span<const std::uint8_t> in,
                std::span<std::uint8_t> out, std::uint32_t* value = nullptr);

}  // namespace aspis::applibs
