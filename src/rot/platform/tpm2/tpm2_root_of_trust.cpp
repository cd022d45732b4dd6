#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "core/log.hpp"
#include "rot/counter_rules.hpp"
#include "rot/errors.hpp"
#include "rot/platform/tpm2/tss_ptr.hpp"
#include "rot/tpm2b.hpp"

namespace aspis::rot::tpm2 {

namespace {

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

TPML_PCR_SELECTION Selection(std::uint32_t index) {
  TPML_PCR_SELECTION selection{};
  selection.count = 1;
  selection.pcrSelections[0].hash = TPM2_ALG_SHA256;
  selection.pcrSelections[0].sizeofSelect = 3;
  selection.pcrSelections[0].pcrSelect[index / 8] = static_cast<BYTE>(1u << (index % 8));
  return selection;
}

// An ECC P-256 key template; the unique field is left empty for the TPM to fill.
TPM2B_PUBLIC EccTemplate(TPMA_OBJECT attributes) {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& p = in.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                       TPMA_OBJECT_RESTRICTED | attributes;
  p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  return in;
}

TPM2B_PUBLIC IdentityTemplate() {
  TPM2B_PUBLIC in = EccTemplate(TPMA_OBJECT_SIGN_ENCRYPT);
  in.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  in.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  return in;
}

// The storage parent for sealed objects, re-derived from the owner seed on each use so no
// persistent slot is consumed.
TPM2B_PUBLIC StorageTemplate() {
  TPM2B_PUBLIC in = EccTemplate(TPMA_OBJECT_DECRYPT | TPMA_OBJECT_NODA);
  auto& symmetric = in.publicArea.parameters.eccDetail.symmetric;
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  return in;
}

bool IsIdentityKey(const TPMT_PUBLIC& p) {
  const TPMT_PUBLIC want = IdentityTemplate().publicArea;
  return p.type == want.type && p.nameAlg == want.nameAlg &&
         p.objectAttributes == want.objectAttributes &&
         p.parameters.eccDetail.curveID == want.parameters.eccDetail.curveID &&
         p.parameters.eccDetail.scheme.scheme == TPM2_ALG_ECDSA &&
         p.parameters.eccDetail.scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256;
}

std::string HandleName(std::uint32_t handle) { return fmt::format("0x{:08x}", handle); }

class Tpm2RootOfTrust final : public RootOfTrust {
 public:
  Tpm2RootOfTrust(TctiPtr tcti, EsysPtr esys, std::uint32_t register_index)
      : tcti_(std::move(tcti)), esys_(std::move(esys)), register_index_(register_index) {}

  ~Tpm2RootOfTrust() override {
    // Handles must be released while the ESAPI context still exists.
    identity_handle_ = EsysHandle();
    esys_.reset();
  }

  Expected<void> Start() {
    const TSS2_RC rc = Esys_Startup(ctx(), TPM2_SU_CLEAR);
    if (rc != TSS2_RC_SUCCESS && TpmCode(rc) != TPM2_RC_INITIALIZE) {
      return std::unexpected(TpmError("starting the TPM", rc));
    }
    return {};
  }

  Expected<void> LoadIdentity(bool create) {
    auto present = HandleExists(kIdentityHandle);
    if (!present) return std::unexpected(present.error());
    if (!*present) {
      if (!create) {
        return Fail(RotErrc::kBadState, "the TPM holds no identity key at " +
                                            HandleName(kIdentityHandle) +
                                            "; run `aspisd identity init`");
      }
      if (auto made = CreateIdentity(); !made) return made;
    }
    ESYS_TR handle = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(ctx(), kIdentityHandle, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &handle);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("opening the identity key", rc));
    identity_handle_ = EsysHandle(ctx(), handle, Release::kClose);

    TPM2B_PUBLIC* out = nullptr;
    rc = Esys_ReadPublic(ctx(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &out, nullptr,
                         nullptr);
    EsysOut<TPM2B_PUBLIC> pub(out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("reading the identity key", rc));
    if (!IsIdentityKey(pub->publicArea)) {
      return Fail(RotErrc::kBadState, "TPM handle " + HandleName(kIdentityHandle) +
                                          " holds an object that is not an Aspis identity key");
    }
    const TPMS_ECC_POINT& point = pub->publicArea.unique.ecc;
    auto key = crypto::PublicKey::FromEcPoint(ByteView(point.x.buffer, point.x.size),
                                              ByteView(point.y.buffer, point.y.size));
    if (!key) return std::unexpected(std::move(key.error()).WithContext("TPM identity key"));
    identity_.emplace(Identity{key->Fingerprint(), *key});
    return {};
  }

  Expected<void> ProvisionCounters() {
    for (std::uint32_t i = 0; i < kCounterCount; ++i) {
      if (auto ok = ProvisionCounter(i); !ok) {
        return std::unexpected(
            std::move(ok.error()).WithContext("provisioning counter " + std::to_string(i)));
      }
    }
    return {};
  }

  std::string_view Backend() const override { return "tpm2"; }
  std::uint32_t RegisterIndex() const override { return register_index_; }

  Expected<Identity> GetIdentity() override { return *identity_; }

  Expected<Bytes> Sign(ByteView data) override {
    auto hashed = HashWithTicket(data);
    if (!hashed) return std::unexpected(hashed.error());
    auto& [digest, ticket] = *hashed;
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    TPMT_SIGNATURE* out = nullptr;
    const TSS2_RC rc = Esys_Sign(ctx(), identity_handle_.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                 ESYS_TR_NONE, digest.get(), &scheme, ticket.get(), &out);
    EsysOut<TPMT_SIGNATURE> signature(out);
    if (rc != TSS2_RC_SUCCESS)
      return std::unexpected(TpmError("signing with the identity key", rc));
    const auto& r = signature->signature.ecdsa.signatureR;
    const auto& s = signature->signature.ecdsa.signatureS;
    return crypto::EcdsaRsToDer(ByteView(r.buffer, r.size), ByteView(s.buffer, s.size));
  }

  Expected<void> Extend(const Digest& measurement) override {
    TPML_DIGEST_VALUES values{};
    values.count = 1;
    values.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memcpy(values.digests[0].digest.sha256, measurement.data(), measurement.size());
    const TSS2_RC rc = Esys_PCR_Extend(ctx(), ESYS_TR_PCR0 + register_index_, ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE, &values);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("extending the PCR", rc));
    return {};
  }

  Expected<Digest> ReadRegister() override {
    const TPML_PCR_SELECTION selection = Selection(register_index_);
    TPML_DIGEST* out = nullptr;
    const TSS2_RC rc = Esys_PCR_Read(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &selection,
                                     nullptr, nullptr, &out);
    EsysOut<TPML_DIGEST> values(out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("reading the PCR", rc));
    Digest value{};
    if (values->count != 1 || values->digests[0].size != value.size()) {
      return Fail(RotErrc::kTpm,
                  "the TPM has no SHA-256 bank for PCR " + std::to_string(register_index_));
    }
    std::memcpy(value.data(), values->digests[0].buffer, value.size());
    return value;
  }

  Expected<Quote> CreateQuote(ByteView qualifying_data) override {
    if (qualifying_data.size() > kMaxQualifyingData) {
      return Fail(RotErrc::kInvalidArgument, "qualifying data is longer than 64 bytes");
    }
    TPM2B_DATA qualifying{};
    SetTpm2b(qualifying, qualifying_data);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_ECDSA;
    scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    const TPML_PCR_SELECTION selection = Selection(register_index_);
    TPM2B_ATTEST* quoted_out = nullptr;
    TPMT_SIGNATURE* signature_out = nullptr;
    const TSS2_RC rc =
        Esys_Quote(ctx(), identity_handle_.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                   &qualifying, &scheme, &selection, &quoted_out, &signature_out);
    EsysOut<TPM2B_ATTEST> quoted(quoted_out);
    EsysOut<TPMT_SIGNATURE> signature(signature_out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("quoting the PCR", rc));
    auto signature_bytes =
        MarshalTpm(*signature, Tss2_MU_TPMT_SIGNATURE_Marshal, "the quote signature");
    if (!signature_bytes) return std::unexpected(signature_bytes.error());
    return Quote{Bytes(quoted->attestationData, quoted->attestationData + quoted->size),
                 std::move(*signature_bytes)};
  }

  Expected<std::uint64_t> ReadCounter(std::uint32_t counter) override {
    if (auto ok = CheckCounterIndex(counter); !ok) return std::unexpected(ok.error());
    auto origin = ReadNv(kCounterOriginIndexBase + counter);
    if (!origin) return std::unexpected(origin.error());
    auto raw = ReadNv(kCounterIndexBase + counter);
    if (!raw) return std::unexpected(raw.error());
    if (*raw < *origin) {
      return Fail(RotErrc::kBadState,
                  "counter " + std::to_string(counter) + " is below its provisioned origin");
    }
    return *raw - *origin;
  }

  Expected<void> AdvanceCounter(std::uint32_t counter, std::uint64_t value) override {
    auto current = ReadCounter(counter);
    if (!current) return std::unexpected(current.error());
    if (auto ok = CheckCounterAdvance(counter, *current, value); !ok) return ok;
    for (std::uint64_t v = *current; v < value; ++v) {
      if (auto ok = IncrementNv(kCounterIndexBase + counter); !ok) return ok;
    }
    return {};
  }

  Expected<Bytes> Random(std::size_t count) override {
    Bytes out;
    out.reserve(count);
    while (out.size() < count) {
      TPM2B_DIGEST* chunk_out = nullptr;
      const auto want = static_cast<UINT16>(std::min<std::size_t>(count - out.size(), 32));
      const TSS2_RC rc =
          Esys_GetRandom(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &chunk_out);
      EsysOut<TPM2B_DIGEST> chunk(chunk_out);
      if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("getting random bytes", rc));
      out.insert(out.end(), chunk->buffer, chunk->buffer + chunk->size);
    }
    out.resize(count);
    return out;
  }

  Expected<Bytes> Seal(ByteView secret) override {
    if (secret.size() > kMaxSealedSecret) {
      return Fail(RotErrc::kInvalidArgument,
                  "secret to seal is larger than " + std::to_string(kMaxSealedSecret) + " bytes");
    }
    auto policy = PcrPolicyDigest();
    if (!policy) return std::unexpected(policy.error());
    auto parent = CreateStorageParent();
    if (!parent) return std::unexpected(parent.error());

    TPM2B_SENSITIVE_CREATE sensitive{};
    SetTpm2b(sensitive.sensitive.data, secret);
    TPM2B_PUBLIC in{};
    in.publicArea.type = TPM2_ALG_KEYEDHASH;
    in.publicArea.nameAlg = TPM2_ALG_SHA256;
    // No USERWITHAUTH: the object opens only through its PCR policy.
    in.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
    in.publicArea.authPolicy = *policy;
    in.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION no_pcrs{};
    TPM2B_PRIVATE* private_out = nullptr;
    TPM2B_PUBLIC* public_out = nullptr;
    const TSS2_RC rc =
        Esys_Create(ctx(), parent->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                    &in, &outside, &no_pcrs, &private_out, &public_out, nullptr, nullptr, nullptr);
    EsysOut<TPM2B_PRIVATE> sealed_private(private_out);
    EsysOut<TPM2B_PUBLIC> sealed_public(public_out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("sealing", rc));

    Bytes blob(sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_PUBLIC));
    std::size_t offset = 0;
    if (Tss2_MU_TPM2B_PRIVATE_Marshal(sealed_private.get(), blob.data(), blob.size(), &offset) !=
            TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Marshal(sealed_public.get(), blob.data(), blob.size(), &offset) !=
            TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kTpm, "marshaling the sealed object");
    }
    blob.resize(offset);
    return blob;
  }

  Expected<Bytes> Unseal(ByteView blob) override {
    TPM2B_PRIVATE sealed_private{};
    TPM2B_PUBLIC sealed_public{};
    std::size_t offset = 0;
    if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob.data(), blob.size(), &offset, &sealed_private) !=
            TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob.data(), blob.size(), &offset, &sealed_public) !=
            TSS2_RC_SUCCESS ||
        offset != blob.size()) {
      return Fail(RotErrc::kInvalidArgument, "sealed blob is not a TPM sealed object");
    }
    auto parent = CreateStorageParent();
    if (!parent) return std::unexpected(parent.error());
    ESYS_TR loaded = ESYS_TR_NONE;
    TSS2_RC rc = Esys_Load(ctx(), parent->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &sealed_private, &sealed_public, &loaded);
    if (rc != TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kPolicy,
                  "sealed blob does not load: it was altered or sealed by another TPM (" +
                      std::string(Tss2_RC_Decode(rc)) + ")");
    }
    EsysHandle object(ctx(), loaded, Release::kFlush);
    auto session = StartPolicySession(TPM2_SE_POLICY);
    if (!session) return std::unexpected(session.error());
    TPM2B_SENSITIVE_DATA* out = nullptr;
    rc = Esys_Unseal(ctx(), object.get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &out);
    EsysOut<TPM2B_SENSITIVE_DATA> secret(out);
    if (rc != TSS2_RC_SUCCESS) {
      if (TpmCode(rc) == TPM2_RC_POLICY_FAIL) {
        return Fail(RotErrc::kPolicy, "sealed secret does not open: PCR " +
                                          std::to_string(register_index_) +
                                          " differs from its value at sealing time");
      }
      return std::unexpected(TpmError("unsealing", rc));
    }
    return Bytes(secret->buffer, secret->buffer + secret->size);
  }

 private:
  ESYS_CONTEXT* ctx() const { return esys_.get(); }

  Expected<bool> HandleExists(std::uint32_t handle) {
    TPMS_CAPABILITY_DATA* out = nullptr;
    const TSS2_RC rc = Esys_GetCapability(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                          TPM2_CAP_HANDLES, handle, 1, nullptr, &out);
    EsysOut<TPMS_CAPABILITY_DATA> data(out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("listing TPM handles", rc));
    const TPML_HANDLE& handles = data->data.handles;
    return handles.count > 0 && handles.handle[0] == handle;
  }

  Expected<void> CreateIdentity() {
    const TPM2B_PUBLIC in = IdentityTemplate();
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION no_pcrs{};
    ESYS_TR transient = ESYS_TR_NONE;
    TSS2_RC rc = Esys_CreatePrimary(ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                    ESYS_TR_NONE, &sensitive, &in, &outside, &no_pcrs, &transient,
                                    nullptr, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("creating the identity key", rc));
    EsysHandle key(ctx(), transient, Release::kFlush);
    ESYS_TR persistent = ESYS_TR_NONE;
    rc = Esys_EvictControl(ctx(), ESYS_TR_RH_OWNER, key.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, kIdentityHandle, &persistent);
    if (rc != TSS2_RC_SUCCESS) {
      return std::unexpected(
          TpmError("persisting the identity key at " + HandleName(kIdentityHandle), rc));
    }
    EsysHandle close(ctx(), persistent, Release::kClose);
    log::Info("created TPM identity key at {}", HandleName(kIdentityHandle));
    return {};
  }

  struct HashResult {
    EsysOut<TPM2B_DIGEST> digest;
    EsysOut<TPMT_TK_HASHCHECK> ticket;
  };

  // A restricted key signs only digests the TPM computed itself, proven by a ticket.
  Expected<HashResult> HashWithTicket(ByteView data) {
    TPM2B_DIGEST* digest = nullptr;
    TPMT_TK_HASHCHECK* ticket = nullptr;
    if (data.size() <= TPM2_MAX_DIGEST_BUFFER) {
      TPM2B_MAX_BUFFER buffer{};
      SetTpm2b(buffer, data);
      const TSS2_RC rc = Esys_Hash(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &buffer,
                                   TPM2_ALG_SHA256, ESYS_TR_RH_OWNER, &digest, &ticket);
      HashResult result{EsysOut<TPM2B_DIGEST>(digest), EsysOut<TPMT_TK_HASHCHECK>(ticket)};
      if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("hashing in the TPM", rc));
      return result;
    }
    const TPM2B_AUTH no_auth{};
    ESYS_TR sequence_tr = ESYS_TR_NONE;
    TSS2_RC rc = Esys_HashSequenceStart(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &no_auth,
                                        TPM2_ALG_SHA256, &sequence_tr);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("starting a TPM hash", rc));
    EsysHandle sequence(ctx(), sequence_tr, Release::kFlush);
    TPM2B_MAX_BUFFER buffer{};
    while (data.size() > TPM2_MAX_DIGEST_BUFFER) {
      SetTpm2b(buffer, data.first(TPM2_MAX_DIGEST_BUFFER));
      rc = Esys_SequenceUpdate(ctx(), sequence.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &buffer);
      if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("hashing in the TPM", rc));
      data = data.subspan(buffer.size);
    }
    SetTpm2b(buffer, data);
    rc = Esys_SequenceComplete(ctx(), sequence.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               &buffer, ESYS_TR_RH_OWNER, &digest, &ticket);
    HashResult result{EsysOut<TPM2B_DIGEST>(digest), EsysOut<TPMT_TK_HASHCHECK>(ticket)};
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("finishing a TPM hash", rc));
    sequence.Forget();  // SequenceComplete flushed it
    return result;
  }

  Expected<EsysHandle> StartPolicySession(TPM2_SE type) {
    const TPMT_SYM_DEF symmetric{.algorithm = TPM2_ALG_NULL, .keyBits = {}, .mode = {}};
    ESYS_TR session = ESYS_TR_NONE;
    TSS2_RC rc =
        Esys_StartAuthSession(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              ESYS_TR_NONE, nullptr, type, &symmetric, TPM2_ALG_SHA256, &session);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("starting a policy session", rc));
    EsysHandle handle(ctx(), session, Release::kFlush);
    // An empty digest makes the TPM use the PCR's current value.
    const TPM2B_DIGEST current{};
    const TPML_PCR_SELECTION selection = Selection(register_index_);
    rc = Esys_PolicyPCR(ctx(), session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current,
                        &selection);
    if (rc != TSS2_RC_SUCCESS)
      return std::unexpected(TpmError("binding the policy to the PCR", rc));
    return handle;
  }

  Expected<TPM2B_DIGEST> PcrPolicyDigest() {
    auto session = StartPolicySession(TPM2_SE_TRIAL);
    if (!session) return std::unexpected(session.error());
    TPM2B_DIGEST* out = nullptr;
    const TSS2_RC rc =
        Esys_PolicyGetDigest(ctx(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &out);
    EsysOut<TPM2B_DIGEST> digest(out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("computing the PCR policy", rc));
    return *digest;
  }

  Expected<EsysHandle> CreateStorageParent() {
    const TPM2B_PUBLIC in = StorageTemplate();
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION no_pcrs{};
    ESYS_TR parent = ESYS_TR_NONE;
    const TSS2_RC rc = Esys_CreatePrimary(ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                          ESYS_TR_NONE, &sensitive, &in, &outside, &no_pcrs,
                                          &parent, nullptr, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("creating the storage key", rc));
    return EsysHandle(ctx(), parent, Release::kFlush);
  }

  // NV index public data, or nullopt when the index is not defined.
  Expected<std::optional<TPMS_NV_PUBLIC>> NvPublic(std::uint32_t index) {
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

  Expected<EsysHandle> OpenNv(std::uint32_t index) {
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

  Expected<void> DefineNv(std::uint32_t index, TPMA_NV attributes) {
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

  Expected<std::uint64_t> ReadNv(std::uint32_t index) {
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

  Expected<void> IncrementNv(std::uint32_t index) {
    auto handle = OpenNv(index);
    if (!handle) return std::unexpected(handle.error());
    const TSS2_RC rc = Esys_NV_Increment(ctx(), ESYS_TR_RH_OWNER, handle->get(), ESYS_TR_PASSWORD,
                                         ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS)
      return std::unexpected(TpmError("incrementing NV counter " + HandleName(index), rc));
    return {};
  }

  // Idempotent: each step checks what an interrupted earlier run left behind.
  Expected<void> ProvisionCounter(std::uint32_t i) {
    const std::uint32_t counter_index = kCounterIndexBase + i;
    const std::uint32_t origin_index = kCounterOriginIndexBase + i;
    auto counter = NvPublic(counter_index);
    if (!counter) return std::unexpected(counter.error());
    if (!*counter) {
      if (auto ok = DefineNv(counter_index, TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT); !ok)
        return ok;
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
      if (Tss2_MU_UINT64_Marshal(*raw, data.buffer, sizeof data.buffer, &offset) !=
          TSS2_RC_SUCCESS) {
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

  TctiPtr tcti_;
  EsysPtr esys_;
  std::uint32_t register_index_;
  EsysHandle identity_handle_;
  std::optional<Identity> identity_;
};

}  // namespace

Expected<std::unique_ptr<RootOfTrust>> Open(std::string_view tcti_conf,
                                            std::uint32_t register_index, bool create) {
  if (register_index > 23 || register_index == 16 || register_index == 23) {
    return Fail(RotErrc::kInvalidArgument,
                "PCR " + std::to_string(register_index) +
                    " cannot hold measurements: use 0-15 or 17-22 (16 and 23 can be reset by "
                    "software)");
  }
  const std::string conf(tcti_conf);
  TSS2_TCTI_CONTEXT* raw_tcti = nullptr;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(conf.c_str(), &raw_tcti);
  if (rc != TSS2_RC_SUCCESS) {
    return Fail(RotErrc::kUnavailable,
                "cannot reach the TPM through TCTI \"" + conf + "\": " + Tss2_RC_Decode(rc));
  }
  TctiPtr tcti(raw_tcti);
  ESYS_CONTEXT* raw_esys = nullptr;
  rc = Esys_Initialize(&raw_esys, tcti.get(), nullptr);
  if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("initializing ESAPI", rc));
  EsysPtr esys(raw_esys);
  auto rot = std::make_unique<Tpm2RootOfTrust>(std::move(tcti), std::move(esys), register_index);
  if (auto ok = rot->Start(); !ok) return std::unexpected(ok.error());
  if (auto ok = rot->LoadIdentity(create); !ok) return std::unexpected(ok.error());
  if (create) {
    if (auto ok = rot->ProvisionCounters(); !ok) return std::unexpected(ok.error());
  }
  return rot;
}

}  // namespace aspis::rot::tpm2
