#include "core/clock.hpp"

namespace aspis {

const SystemClock& SystemClock::Instance() {
  static const SystemClock clock;
  return clock;
}

}  // namespace aspis
