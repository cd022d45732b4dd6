#pragma once

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>
#include <vector>

#include "wire/peripheral.hpp"

// Raw requests on a peripheral channel (wire/peripheral.hpp), as applibs sends them or a hostile
// app could.
namespace aspis::testing {

// A request for `op` with arguments `args` (the rest zero) and `data`.
inline std::vector<std::uint8_t> PeripheralRequest(wire::peripheral::Op op,
                                                   std::initializer_list<std::uint32_t> args = {},
                                                   const std::vector<std::uint8_t>& data = {}) {
  wire::peripheral::Request request{op, {0, 0, 0, 0}, static_cast<std::uint32_t>(data.size())};
  std::size_t i = 0;
  for (const std::uint32_t arg : args) request.arg[i++] = arg;
  std::vector<std::uint8_t> message(sizeof request);
  std::memcpy(message.data(), &request, sizeof request);
  message.insert(message.end(), data.begin(), data.end());
  return message;
}

// Sends `message` raw on `fd` and returns the reply's error and value.
inline std::pair<int, std::uint32_t> Exchange(int fd, const std::vector<std::uint8_t>& message) {
  EXPECT_EQ(::send(fd, message.data(), message.size(), 0), static_cast<ssize_t>(message.size()));
  std::vector<std::uint8_t> answer(sizeof(wire::peripheral::Reply) + wire::peripheral::kMaxData);
  const ssize_t got = ::recv(fd, answer.data(), answer.size(), 0);
  EXPECT_GE(got, static_cast<ssize_t>(sizeof(wire::peripheral::Reply)));
  wire::peripheral::Reply reply{};
  std::memcpy(&reply, answer.data(), sizeof reply);
  return {reply.error, reply.value};
}

}  // namespace aspis::testing
