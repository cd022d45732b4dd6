#pragma once

#include <string>
#include <utility>

namespace aspis {

// The result of a security check. "Could not check" (a missing library, an allocation failure, an
// unsupported algorithm) is never a pass: only kValid may lead to installing, issuing or granting.
class [[nodiscard]] Verdict {
 public:
  enum class Outcome { kValid, kInvalid, kCouldNotCheck };

  static Verdict Valid() { return Verdict(Outcome::kValid, {}); }
  static Verdict Invalid(std::string reason) {
    return Verdict(Outcome::kInvalid, std::move(reason));
  }
  static Verdict CouldNotCheck(std::string reason) {
    return Verdict(Outcome::kCouldNotCheck, std::move(reason));
  }

  bool valid() const { return outcome_ == Outcome::kValid; }
  Outcome outcome() const { return outcome_; }
  // Empty when valid; otherwise why the check failed or could not be made.
  const std::string& reason() const { return reason_; }

 private:
  Verdict(Outcome outcome, std::string reason) : outcome_(outcome), reason_(std::move(reason)) {}

  Outcome outcome_;
  std::string reason_;
};

}  // namespace aspis
