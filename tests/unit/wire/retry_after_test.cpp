#include <gtest/gtest.h>

#include "wire/https_client.hpp"

namespace aspis::wire {
namespace {

using namespace std::chrono_literals;

TEST(ParseRetryAfter, ReadsDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("120"), 120s);
  EXPECT_EQ(ParseRetryAfter("0"), 0s);
  EXPECT_EQ(ParseRetryAfter(" 7\t"), 7s) << "optional whitespace around the field value";
}

TEST(ParseRetryAfter, SaturatesHugeValuesInsteadOfOverflowing) {
  EXPECT_EQ(ParseRetryAfter("86401"), kMaxRetryAfter);
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999999"), kMaxRetryAfter);
}

TEST(ParseRetryAfter, RefusesAnythingButDigits) {
  for (const char* value :
       {"", " ", "-5", "+5", "1.5", "5s", "0x10", "Wed, 21 Oct 2015 07:28:00 GMT"}) {
    EXPECT_FALSE(ParseRetryAfter(value)) << value;
  }
}

TEST(RetryAfter, MeansSomethingOnlyOn429And503) {
  HttpResponse response{.status = 429, .retry_after = 30s};
  EXPECT_EQ(RetryAfter(response), 30s);
  response.status = 503;
  EXPECT_EQ(RetryAfter(response), 30s);
  for (int status : {200, 301, 403, 500}) {
    response.status = status;
    EXPECT_FALSE(RetryAfter(response)) << status;
  }
  EXPECT_FALSE(RetryAfter(HttpResponse{.status = 429}));
}

}  // namespace
}  // namespace aspis::wire
