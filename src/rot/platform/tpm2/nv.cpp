#include "rot/platform/tpm2/nv.hpp"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <fmt/format.h>

#include "rot/errors.hpp"
#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"

namespace aspis::rot::tpm2 {

using Release = EsysHandle::Release;

Error TpmError(std::string_view what, TSS2_RC rc) {
  const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
  const bool unreachable =
      layer == TSS2_TCTI_RC_LAYER ||
      (layer == TSS2_ESAPI_RC_LAYER && (rc & ~TSS2_RC_LAYER_MASK) == TSS2_BASE_RC_IO_ERROR);
  return Error(unreachable ? RotErrc::kUnavailable : RotErrc::kTpm,
               std::string(what) + ": " + Tss2_RC_Decode(rc));
}

// The TPM's own error number with parameter, handle and session numbers masked off.
TSS2_RC TpmCode(TSS2_RC rc) {
  if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) return rc;
  return (rc & TPM2_RC_FMT1) != 0 ? (rc & (TPM2_RC_FMT1 | 0x3f)) : rc;
}

std::string HandleName(std::uint32_t handle) { return fmt::format("0x{:08x}", handle); }

Expected<bool> Nv::HandleExists(std::uint32_t handle) {
  TPMS_CAPABILITY_DATA* out = nullptr;
  const TSS2_RC rc = Esys_GetCapability(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                        TPM2_CAP_HANDLES, handle, 1, nullptr, &out);
  EsysOut<TPMS_CAPABILITY_DATA> data(out);
  if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("listing TPM handles", rc));
  const TPML_HANDLE& handles = data->data.handles;
  return handles.count > 0 && handles.handle[0] == handle;
}

// NV index public data, or nullopt when the index is not defined.
Expected<std::optional<TPMS_NV_PUBLIC>> Nv::NvPublic(std::uint32_t index) {
  auto defined = HandleExists(index);
  if (!defined) return std::unexpected(defined.error());
  if (!*defined) return std::optional<TPMS_NV_PUBLIC>();
  auto handle = OpenNv(index);
  if (!handle) return std::unexpected(handle.error());
  TPM2B_NV_PUBLIC* out = nullptr;
  const TSS2_RC rc = Esys_NV_ReadPublic(ctx(), handle->get(), ESYS_TR_NONE, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &out, nullptr);
  EsysOut<TPM2B_NV_PUBLIC> pub(out);
  if (rc != TSS2_RC_SUCCESS) {
    return std::unexpected(TpmError("reading NV index " + HandleName(index), rc));
  }
  return std::optional<TPMS_NV_PUBLIC>(pub->nvPublic);
}

Expected<EsysHandle> Nv::OpenNv(std::uint32_t index) {
  ESYS_TR handle = ESYS_TR_NONE;
  const TSS2_RC rc =
      Esys_TR_FromTPMPublic(ctx(), index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &handle);
  if (rc != TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kBadState, "NV index " + HandleName(index) +
                                        " is not provisioned; run `aspisd identity init` (" +
                                        Tss2_RC_Decode(rc) + ")");
  }
  return EsysHandle(ctx(), handle, Release::kClose);
}

Expected<void> Nv::DefineNv(std::uint32_t index, TPMA_NV attributes) {
  TPM2B_NV_PUBLIC pub{};
  pub.nvPublic.nvIndex = index;
  pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
  pub.nvPublic.attributes = attributes | TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD;
  pub.nvPublic.dataSize = 8;
  const TPM2B_AUTH no_auth{};
  ESYS_TR handle = ESYS_TR_NONE;
  const TSS2_RC rc = Esys_NV_DefineSpace(ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                         ESYS_TR_NONE, &no_auth, &pub, &handle);
  if (rc != TSS2_RC_SUCCESS)
    return std::unexpected(TpmError("defining NV index " + HandleName(index), rc));
  EsysHandle close(ctx(), handle, Release::kClose);
  return {};
}

Expected<std::uint64_t> Nv::ReadNv(std::uint32_t index) {
  auto handle = OpenNv(index);
  if (!handle) return std::unexpected(handle.error());
  TPM2B_MAX_NV_BUFFER* out = nullptr;
  const TSS2_RC rc = Esys_NV_Read(ctx(), ESYS_TR_RH_OWNER, handle->get(), ESYS_TR_PASSWORD,
                                  ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &out);
  EsysOut<TPM2B_MAX_NV_BUFFER> data(out);
  if (rc != TSS2_RC_SUCCESS)
    return std::unexpected(TpmError("reading NV index " + HandleName(index), rc));
  std::uint64_t value = 0;
  std::size_t offset = 0;
  if (Tss2_MU_UINT64_Unmarshal(data->buffer, data->size, &offset, &value) != TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kBadState, "NV index " + HandleName(index) + " does not hold 8 bytes");
  }
  return value;
}

Expected<void> Nv::IncrementNv(std::uint32_t index) {
  auto handle = OpenNv(index);
  if (!handle) return std::unexpected(handle.error());
  const TSS2_RC rc = Esys_NV_Increment(ctx(), ESYS_TR_RH_OWNER, handle->get(), ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS)
    return std::unexpected(TpmError("incrementing NV counter " + HandleName(index), rc));
  return {};
}

// Idempotent: each step checks what an interrupted earlier run left behind.
Expected<void> Nv::ProvisionCounter(std::uint32_t i) {
  const std::uint32_t counter_index = kCounterIndexBase + i;
  const std::uint32_t origin_index = kCounterOriginIndexBase + i;
  auto counter = NvPublic(counter_index);
  if (!counter) return std::unexpected(counter.error());
  if (!*counter) {
    if (auto ok = DefineNv(counter_index, TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT); !ok) return ok;
    counter = NvPublic(counter_index);
    if (!counter) return std::unexpected(counter.error());
  }
  if (((*counter)->attributes & TPMA_NV_WRITTEN) == 0) {
    // A counter has no value until its first increment; the TPM then starts it at the highest
    // value any counter has had, which the origin record below absorbs.
    if (auto ok = IncrementNv(counter_index); !ok) return ok;
  }
  auto origin = NvPublic(origin_index);
  if (!origin) return std::unexpected(origin.error());
  if (!*origin) {
    if (auto ok = DefineNv(origin_index, TPMA_NV_WRITEDEFINE); !ok) return ok;
    origin = NvPublic(origin_index);
    if (!origin) return std::unexpected(origin.error());
  }
  auto handle = OpenNv(origin_index);
  if (!handle) return std::unexpected(handle.error());
  if (((*origin)->attributes & TPMA_NV_WRITTEN) == 0) {
    auto raw = ReadNv(counter_index);
    if (!raw) return std::unexpected(raw.error());
    TPM2B_MAX_NV_BUFFER data{};
    std::size_t offset = 0;
    if (Tss2_MU_UINT64_Marshal(*raw, data.buffer, sizeof data.buffer, &offset) != TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kTpm, "marshaling counter origin");
    }
    data.size = static_cast<UINT16>(offset);
    const TSS2_RC rc = Esys_NV_Write(ctx(), ESYS_TR_RH_OWNER, handle->get(), ESYS_TR_PASSWORD,
                                     ESYS_TR_NONE, ESYS_TR_NONE, &data, 0);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("recording counter origin", rc));
  }
  if (((*origin)->attributes & TPMA_NV_WRITELOCKED) == 0) {
    const TSS2_RC rc = Esys_NV_WriteLock(ctx(), ESYS_TR_RH_OWNER, handle->get(), ESYS_TR_PASSWORD,
                                         ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("locking counter origin", rc));
  }
  return {};
}

}  // namespace aspis::rot::tpm2
