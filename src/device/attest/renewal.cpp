#include "device/attest/renewal.hpp"

#include <algorithm>
#include <memory>
#include <random>

namespace aspis::device::attest {

Uniform SystemUniform() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

Clock::TimePoint RenewalTime(Clock::TimePoint not_before, Clock::TimePoint not_after,
                             const Uniform& uniform) {
  const auto life = std::max<std::chrono::system_clock::duration>(
      not_after - not_before, std::chrono::system_clock::duration::zero());
  const auto interval =
      std::min<std::chrono::system_clock::duration>(life * 3 / 4, kMaxRenewalInterval);
  const auto jitter =
      std::chrono::duration_cast<std::chrono::system_clock::duration>(interval * uniform() / 10);
  return not_before + interval - jitter;
}

std::chrono::milliseconds Backoff::NextDelay(std::optional<std::chrono::seconds> retry_after) {
  const unsigned doublings = std::min(failures_, 30u);
  ++failures_;
  const auto ceiling = std::min(cap_, base_ * (std::int64_t{1} << doublings));
  const std::chrono::milliseconds jittered(
      static_cast<std::int64_t>(static_cast<double>(ceiling.count()) * uniform_()));
  if (!retry_after) return jittered;
  // Compared in seconds first: a huge Retry-After must not overflow in milliseconds.
  const std::chrono::milliseconds asked =
      *retry_after >= std::chrono::ceil<std::chrono::seconds>(cap_)
          ? cap_
          : std::min<std::chrono::milliseconds>(cap_, *retry_after);
  return std::max(jittered, asked);
}

}  // namespace aspis::device::attest
