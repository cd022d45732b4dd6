#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>

#include "core/bytes.hpp"

// Internal to src/rot: filling TPM2B_* structures (size + buffer) from bytes.
namespace aspis::rot {

// Sets `out` to `data`. Callers check sizes against the TPM's limits first, so data that does not
// fit is a bug in Aspis. An empty `data` is fine (no copy from a null pointer).
template <class Tpm2b>
void SetTpm2b(Tpm2b& out, ByteView data) {
  static_assert(sizeof(out.buffer) <= UINT16_MAX);
  assert(data.size() <= sizeof(out.buffer));
  out.size = static_cast<std::uint16_t>(data.size());
  std::copy(data.begin(), data.end(), out.buffer);
}

}  // namespace aspis::rot
