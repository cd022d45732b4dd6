#pragma once

#include <tss2/tss2_esys.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "rot/platform/tpm2/tss_ptr.hpp"

// Internal to the tpm2 backend: TPM errors as Errors, and NV indices of one ESAPI context.
namespace aspis::rot::tpm2 {

// A TPM or TSS failure as an Error: kUnavailable when the TPM cannot be reached, kTpm otherwise.
Error TpmError(std::string_view what, TSS2_RC rc);
// The TPM's own error number with parameter, handle and session numbers masked off.
TSS2_RC TpmCode(TSS2_RC rc);
// "0x01d10300".
std::string HandleName(std::uint32_t handle);

// NV indices (and other handles) through one ESAPI context. Not thread-safe, like the context; the
// context must outlive it.
class Nv {
 public:
  explicit Nv(ESYS_CONTEXT* esys) : esys_(esys) {}

  Expected<bool> HandleExists(std::uint32_t handle);
  // The index's public data, or nullopt when it is not defined.
  Expected<std::optional<TPMS_NV_PUBLIC>> NvPublic(std::uint32_t index);
  Expected<EsysHandle> OpenNv(std::uint32_t index);
  // An owner-authorized 8-byte index with `attributes`.
  Expected<void> DefineNv(std::uint32_t index, TPMA_NV attributes);
  Expected<std::uint64_t> ReadNv(std::uint32_t index);
  Expected<void> IncrementNv(std::uint32_t index);
  // Defines monotonic counter `i` and its write-locked origin record if missing. Idempotent: each
  // step checks what an interrupted earlier run left behind.
  Expected<void> ProvisionCounter(std::uint32_t i);

 private:
  ESYS_CONTEXT* ctx() const { return esys_; }

  ESYS_CONTEXT* esys_;
};

}  // namespace aspis::rot::tpm2
