#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>

#include <tss2/tss2_common.h>
#include <tss2/tss2_tpm2_types.h>

#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "rot/errors.hpp"

// Internal to src/rot: TPM structures to and from bytes.
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

// The TPM 2.0 wire encoding of `value` through one of tpm2-tss's Tss2_MU_*_Marshal functions.
template <class T>
Expected<Bytes> MarshalTpm(const T& value,
                           TSS2_RC (*marshal)(const T*, std::uint8_t*, std::size_t, std::size_t*),
                           std::string_view what) {
  Bytes out(sizeof(T));
  std::size_t offset = 0;
  if (marshal(&value, out.data(), out.size(), &offset) != TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kBadState, "marshaling " + std::string(what));
  }
  out.resize(offset);
  return out;
}

// A marshaled TPM2B_PUBLIC from an untrusted source, parsed strictly: the size field must cover
// exactly one well-formed TPMT_PUBLIC (tss2-mu's own TPM2B unmarshaler checks neither). `what`
// names it in errors (kInvalidArgument).
Expected<TPMT_PUBLIC> UnmarshalPublic(ByteView tpm2b_public, std::string_view what);

}  // namespace aspis::rot
