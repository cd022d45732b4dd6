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
// "swtpm:host=127.0.0.1,port=2321"). With `create`, provisions the identity key, the counters and
// the Aspis NvPCR (rot/quote.hpp) that are missing; otherwise their absence is kBadState. Defining
// the NvPCR needs the platform hierarchy: where firmware has disabled it, the index must be defined
// at provisioning. An index at kNvPcrIndex with other attributes or policy is refused.
Expected<std::unique_ptr<RootOfTrust>> Open(std::string_view tcti, bool create);

}  // namespace aspis::rot::tpm2
