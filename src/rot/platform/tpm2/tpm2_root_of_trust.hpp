#pragma once

#include <memory>
#include <string_view>

#include "rot/root_of_trust.hpp"

namespace aspis::rot::tpm2 {

// The identity key: a restricted ECDSA P-256 signing key under the owner hierarchy, persisted here.
inline constexpr std::uint32_t kIdentityHandle = 0x81000a5d;
// Owner-range NV indices: the monotonic counters, and beside each a write-locked record of the
// counter's raw value when it was provisioned (a TPM may start a new counter above zero).
inline constexpr std::uint32_t kCounterIndexBase = 0x0100a500;
inline constexpr std::uint32_t kCounterOriginIndexBase = 0x0100a510;

// Opens the TPM through the tpm2-tss TCTI configuration `tcti` ("device:/dev/tpmrm0",
// "swtpm:host=127.0.0.1,port=2321"). With `create`, provisions the identity key and counters that
// are missing; otherwise their absence is kBadState. `register_index` must be a PCR that software
// cannot reset: 16 and 23 (resettable by TPM2_PCR_Reset) and values above 23 are refused.
Expected<std::unique_ptr<RootOfTrust>> Open(std::string_view tcti, std::uint32_t register_index,
                                            bool create);

}  // namespace aspis::rot::tpm2
