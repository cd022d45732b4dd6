#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "core/log.hpp"
#include "crypto/encoding.hpp"
#include "rot/counter_rules.hpp"
#include "rot/errors.hpp"
#include "rot/platform/tpm2/nv.hpp"
#include "rot/platform/tpm2/tss_ptr.hpp"
#include "rot/tpm2b.hpp"

namespace aspis::rot::tpm2 {

namespace {

using Release = EsysHandle::Release;

// What one TPM2_NV_Read may ask for (the reference TPM's MAX_NV_BUFFER_SIZE is 1024).
constexpr std::size_t kMaxNvRead = 768;

// The SHA-256 bank's PCRs in `mask` (bit i = PCR i).
TPML_PCR_SELECTION Selection(std::uint32_t mask) {
  TPML_PCR_SELECTION selection{};
  selection.count = 1;
  selection.pcrSelections[0].hash = TPM2_ALG_SHA256;
  selection.pcrSelections[0].sizeofSelect = 3;
  for (std::uint32_t i = 0; i < 3; ++i) {
    selection.pcrSelections[0].pcrSelect[i] = static_cast<BYTE>(mask >> (8 * i));
  }
  return selection;
}

TPMT_SIG_SCHEME EcdsaScheme() {
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_ECDSA;
  scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  return scheme;
}

// A signed attestation structure as the TPM returned it.
Expected<Quote> ToQuote(const TPM2B_ATTEST& attest, const TPMT_SIGNATURE& signature) {
  auto signature_bytes = MarshalTpm(signature, Tss2_MU_TPMT_SIGNATURE_Marshal, "a signature");
  if (!signature_bytes) return std::unexpected(signature_bytes.error());
  return Quote{Bytes(attest.attestationData, attest.attestationData + attest.size),
               std::move(*signature_bytes)};
}

TPM2B_PUBLIC IdentityTemplateStruct() {
  TPM2B_PUBLIC in{};
  const Bytes marshaled = *rot::IdentityTemplate();
  std::size_t offset = 0;
  Tss2_MU_TPM2B_PUBLIC_Unmarshal(marshaled.data(), marshaled.size(), &offset, &in);
  return in;
}

// The storage parent for sealed objects, re-derived from the owner seed on each use so no
// persistent slot is consumed: the identity key's P-256 template, as a restricted decryption key.
TPM2B_PUBLIC StorageTemplate() {
  TPM2B_PUBLIC in = IdentityTemplateStruct();
  in.publicArea.objectAttributes = (in.publicArea.objectAttributes & ~TPMA_OBJECT_SIGN_ENCRYPT) |
                                   TPMA_OBJECT_DECRYPT | TPMA_OBJECT_NODA;
  in.publicArea.parameters.eccDetail.scheme = {};
  in.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  auto& symmetric = in.publicArea.parameters.eccDetail.symmetric;
  symmetric.algorithm = TPM2_ALG_AES;
  symmetric.keyBits.aes = 128;
  symmetric.mode.aes = TPM2_ALG_CFB;
  return in;
}

bool IsIdentityKey(const TPMT_PUBLIC& p) {
  const TPMT_PUBLIC want = IdentityTemplateStruct().publicArea;
  return p.type == want.type && p.nameAlg == want.nameAlg &&
         p.objectAttributes == want.objectAttributes &&
         p.parameters.eccDetail.curveID == want.parameters.eccDetail.curveID &&
         p.parameters.eccDetail.scheme.scheme == TPM2_ALG_ECDSA &&
         p.parameters.eccDetail.scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256;
}

class Tpm2RootOfTrust final : public RootOfTrust {
 public:
  Tpm2RootOfTrust(TctiPtr tcti, EsysPtr esys) : tcti_(std::move(tcti)), esys_(std::move(esys)) {}

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
    auto present = nv_.HandleExists(kIdentityHandle);
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
      if (auto ok = nv_.ProvisionCounter(i); !ok) {
        return std::unexpected(
            std::move(ok.error()).WithContext("provisioning counter " + std::to_string(i)));
      }
    }
    return {};
  }

  // Defines the Aspis NvPCR if it is missing and `create` is set; refuses an index at its handle
  // that was defined otherwise.
  Expected<void> LoadNvPcr(bool create) {
    auto pub = nv_.NvPublic(kNvPcrIndex);
    if (!pub) return std::unexpected(pub.error());
    if (!*pub) {
      if (!create) {
        return Fail(RotErrc::kBadState, "the TPM has no Aspis NvPCR at " + HandleName(kNvPcrIndex) +
                                            "; run `aspisd identity init`");
      }
      if (auto made = DefineNvPcr(); !made) return made;
      pub = nv_.NvPublic(kNvPcrIndex);
      if (!pub) return std::unexpected(pub.error());
    }
    auto policy = NvPcrPolicy();
    if (!policy) return std::unexpected(policy.error());
    const TPMS_NV_PUBLIC& p = **pub;
    if (p.nameAlg != TPM2_ALG_SHA256 || (p.attributes & ~TPMA_NV_WRITTEN) != NvPcrAttributes() ||
        p.dataSize != policy->size() ||
        !crypto::ConstantTimeEquals(ByteView(p.authPolicy.buffer, p.authPolicy.size), *policy)) {
      return Fail(RotErrc::kBadState,
                  fmt::format("NV index {} is not an Aspis NvPCR (attributes 0x{:08x}, size {}); "
                              "it must be redefined by the platform hierarchy",
                              HandleName(kNvPcrIndex), p.attributes, p.dataSize));
    }
    return {};
  }

  std::string_view Backend() const override { return "tpm2"; }
  std::string RegisterName() const override { return "NvPCR " + HandleName(kNvPcrIndex); }

  Expected<Identity> GetIdentity() override { return *identity_; }

  Expected<Bytes> Sign(ByteView data) override {
    auto hashed = HashWithTicket(data);
    if (!hashed) return std::unexpected(hashed.error());
    auto& [digest, ticket] = *hashed;
    const TPMT_SIG_SCHEME scheme = EcdsaScheme();
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
    auto nv = nv_.OpenNv(kNvPcrIndex);
    if (!nv) return std::unexpected(nv.error());
    TPM2B_MAX_NV_BUFFER data{};
    SetTpm2b(data, measurement);
    const TSS2_RC rc = Esys_NV_Extend(ctx(), nv->get(), nv->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                      ESYS_TR_NONE, &data);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("extending the NvPCR", rc));
    return {};
  }

  Expected<Digest> ReadRegister() override {
    auto pub = nv_.NvPublic(kNvPcrIndex);
    if (!pub) return std::unexpected(pub.error());
    if (!*pub) return Fail(RotErrc::kBadState, "the Aspis NvPCR is missing");
    Digest value{};
    // Unwritten since the TPM reset: the first extend starts from zeros.
    if (((*pub)->attributes & TPMA_NV_WRITTEN) == 0) return value;
    auto nv = nv_.OpenNv(kNvPcrIndex);
    if (!nv) return std::unexpected(nv.error());
    TPM2B_MAX_NV_BUFFER* out = nullptr;
    const TSS2_RC rc = Esys_NV_Read(ctx(), nv->get(), nv->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                    ESYS_TR_NONE, value.size(), 0, &out);
    EsysOut<TPM2B_MAX_NV_BUFFER> data(out);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("reading the NvPCR", rc));
    if (data->size != value.size()) return Fail(RotErrc::kTpm, "the NvPCR is not 32 bytes");
    std::memcpy(value.data(), data->buffer, value.size());
    return value;
  }

  Expected<Attestation> Attest(ByteView qualifying_data) override {
    if (qualifying_data.size() > kMaxQualifyingData) {
      return Fail(RotErrc::kInvalidArgument, "qualifying data is longer than 64 bytes");
    }
    TPM2B_DATA qualifying{};
    SetTpm2b(qualifying, qualifying_data);
    auto quoted = QuoteBootPcrs(qualifying);
    if (!quoted) return std::unexpected(quoted.error());
    auto certified = CertifyNvPcr(qualifying);
    if (!certified) return std::unexpected(certified.error());
    quoted->register_certification = std::move(*certified);
    return quoted;
  }

  Expected<std::optional<Endorsement>> Endorse() override {
    auto ek = FindEk();
    if (!ek) return std::unexpected(ek.error());
    auto handle = CreateEk(ek->kind);
    if (!handle) return std::unexpected(handle.error());
    auto ek_public = ReadPublicArea(handle->get(), "the EK");
    if (!ek_public) return std::unexpected(ek_public.error());
    auto identity_public = ReadPublicArea(identity_handle_.get(), "the identity key");
    if (!identity_public) return std::unexpected(identity_public.error());
    return Endorsement{std::move(ek->certificate), std::move(*ek_public),
                       std::move(*identity_public)};
  }

  Expected<Bytes> ActivateCredential(ByteView credential_blob, ByteView encrypted_secret) override {
    TPM2B_ID_OBJECT blob{};
    TPM2B_ENCRYPTED_SECRET secret{};
    std::size_t blob_offset = 0;
    std::size_t secret_offset = 0;
    if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credential_blob.data(), credential_blob.size(),
                                          &blob_offset, &blob) != TSS2_RC_SUCCESS ||
        blob_offset != credential_blob.size() ||
        Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(encrypted_secret.data(), encrypted_secret.size(),
                                                 &secret_offset, &secret) != TSS2_RC_SUCCESS ||
        secret_offset != encrypted_secret.size()) {
      return Fail(RotErrc::kInvalidArgument, "the credential is not a TPM credential");
    }
    auto ek = FindEk();
    if (!ek) return std::unexpected(ek.error());
    auto handle = CreateEk(ek->kind);
    if (!handle) return std::unexpected(handle.error());
    // The EK's policy: PolicySecret with the endorsement hierarchy's (empty) authorization.
    const TPMT_SYM_DEF symmetric{.algorithm = TPM2_ALG_NULL, .keyBits = {}, .mode = {}};
    ESYS_TR session_tr = ESYS_TR_NONE;
    TSS2_RC rc = Esys_StartAuthSession(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, ESYS_TR_NONE, nullptr, TPM2_SE_POLICY,
                                       &symmetric, TPM2_ALG_SHA256, &session_tr);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("starting a policy session", rc));
    EsysHandle session(ctx(), session_tr, Release::kFlush);
    rc = Esys_PolicySecret(ctx(), ESYS_TR_RH_ENDORSEMENT, session.get(), ESYS_TR_PASSWORD,
                           ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr,
                           nullptr);
    if (rc != TSS2_RC_SUCCESS) {
      return std::unexpected(TpmError("satisfying the EK's policy", rc));
    }
    TPM2B_DIGEST* out = nullptr;
    rc = Esys_ActivateCredential(ctx(), identity_handle_.get(), handle->get(), ESYS_TR_PASSWORD,
                                 session.get(), ESYS_TR_NONE, &blob, &secret, &out);
    EsysOut<TPM2B_DIGEST> activated(out);
    if (rc != TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kPolicy, std::string("the credential does not activate on this TPM "
                                                "for this identity key (") +
                                        Tss2_RC_Decode(rc) + ")");
    }
    return Bytes(activated->buffer, activated->buffer + activated->size);
  }

  Expected<std::uint64_t> ReadCounter(std::uint32_t counter) override {
    if (auto ok = CheckCounterIndex(counter); !ok) return std::unexpected(ok.error());
    auto origin = nv_.ReadNv(kCounterOriginIndexBase + counter);
    if (!origin) return std::unexpected(origin.error());
    auto raw = nv_.ReadNv(kCounterIndexBase + counter);
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
      if (auto ok = nv_.IncrementNv(kCounterIndexBase + counter); !ok) return ok;
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
    auto measured = ReadRegister();
    if (!measured) return std::unexpected(measured.error());
    if (*measured == Digest{}) {
      return Fail(RotErrc::kBadState,
                  "nothing is measured this boot: there is no state to seal to");
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
        return Fail(RotErrc::kPolicy,
                    "sealed secret does not open: the NvPCR differs from its value at sealing "
                    "time");
      }
      return std::unexpected(TpmError("unsealing", rc));
    }
    return Bytes(secret->buffer, secret->buffer + secret->size);
  }

 private:
  ESYS_CONTEXT* ctx() const { return esys_.get(); }

  Expected<std::vector<Digest>> ReadPcrs(std::uint32_t mask) {
    std::vector<Digest> values;
    // PCR_Read returns at most eight values per call; ask again for what it left out.
    while (mask != 0) {
      const TPML_PCR_SELECTION selection = Selection(mask);
      TPML_PCR_SELECTION* selected_out = nullptr;
      TPML_DIGEST* out = nullptr;
      const TSS2_RC rc = Esys_PCR_Read(ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &selection,
                                       nullptr, &selected_out, &out);
      EsysOut<TPML_PCR_SELECTION> selected(selected_out);
      EsysOut<TPML_DIGEST> digests(out);
      if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("reading the boot PCRs", rc));
      std::uint32_t read = 0;
      if (selected->count == 1 && selected->pcrSelections[0].hash == TPM2_ALG_SHA256) {
        for (std::uint32_t i = 0; i < 3; ++i) {
          read |= static_cast<std::uint32_t>(selected->pcrSelections[0].pcrSelect[i]) << (8 * i);
        }
      }
      read &= mask;
      if (read == 0 || static_cast<std::uint32_t>(std::popcount(read)) != digests->count) {
        return Fail(RotErrc::kTpm, "the TPM has no SHA-256 bank for the boot PCRs");
      }
      for (std::uint32_t i = 0; i < digests->count; ++i) {
        Digest value{};
        if (digests->digests[i].size != value.size()) {
          return Fail(RotErrc::kTpm, "the TPM returned a boot PCR that is not 32 bytes");
        }
        std::memcpy(value.data(), digests->digests[i].buffer, value.size());
        values.push_back(value);
      }
      mask &= ~read;
    }
    return values;
  }

  // A quote over the boot PCRs and their values. The values are read beside the quote; should a
  // PCR move in between, both are taken again.
  Expected<Attestation> QuoteBootPcrs(const TPM2B_DATA& qualifying) {
    constexpr int kAttempts = 3;
    const TPMT_SIG_SCHEME scheme = EcdsaScheme();
    const TPML_PCR_SELECTION selection = Selection(BootPcrMask());
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      auto values = ReadPcrs(BootPcrMask());
      if (!values) return std::unexpected(values.error());
      TPM2B_ATTEST* quoted_out = nullptr;
      TPMT_SIGNATURE* signature_out = nullptr;
      const TSS2_RC rc =
          Esys_Quote(ctx(), identity_handle_.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                     &qualifying, &scheme, &selection, &quoted_out, &signature_out);
      EsysOut<TPM2B_ATTEST> quoted(quoted_out);
      EsysOut<TPMT_SIGNATURE> signature(signature_out);
      if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("quoting the boot PCRs", rc));
      auto quote = ToQuote(*quoted, *signature);
      if (!quote) return std::unexpected(quote.error());
      auto body = ParseAttest(quote->attest);
      if (!body) return std::unexpected(body.error());
      if (CheckQuoteCovers(*body, BootPcrMask(), *values).valid()) {
        return Attestation{.quote = std::move(*quote),
                           .boot_pcrs = std::move(*values),
                           .register_certification = std::nullopt};
      }
    }
    return Fail(RotErrc::kTpm, "the boot PCRs kept changing while being quoted");
  }

  Expected<Quote> CertifyNvPcr(const TPM2B_DATA& qualifying) {
    auto nv = nv_.OpenNv(kNvPcrIndex);
    if (!nv) return std::unexpected(nv.error());
    const TPMT_SIG_SCHEME scheme = EcdsaScheme();
    TPM2B_ATTEST* certified_out = nullptr;
    TPMT_SIGNATURE* signature_out = nullptr;
    const TSS2_RC rc = Esys_NV_Certify(
        ctx(), identity_handle_.get(), nv->get(), nv->get(), ESYS_TR_PASSWORD, ESYS_TR_PASSWORD,
        ESYS_TR_NONE, &qualifying, &scheme, static_cast<UINT16>(std::tuple_size_v<Digest>), 0,
        &certified_out, &signature_out);
    EsysOut<TPM2B_ATTEST> certified(certified_out);
    EsysOut<TPMT_SIGNATURE> signature(signature_out);
    if (rc != TSS2_RC_SUCCESS) {
      if (TpmCode(rc) == TPM2_RC_NV_UNINITIALIZED) {
        return Fail(RotErrc::kBadState, "the NvPCR holds no measurement this boot");
      }
      return std::unexpected(TpmError("certifying the NvPCR", rc));
    }
    return ToQuote(*certified, *signature);
  }

  Expected<void> DefineNvPcr() {
    auto policy = NvPcrPolicy();
    if (!policy) return std::unexpected(policy.error());
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = kNvPcrIndex;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = NvPcrAttributes();
    SetTpm2b(pub.nvPublic.authPolicy, *policy);
    pub.nvPublic.dataSize = static_cast<UINT16>(policy->size());
    const TPM2B_AUTH no_auth{};
    ESYS_TR handle = ESYS_TR_NONE;
    const TSS2_RC rc = Esys_NV_DefineSpace(ctx(), ESYS_TR_RH_PLATFORM, ESYS_TR_PASSWORD,
                                           ESYS_TR_NONE, ESYS_TR_NONE, &no_auth, &pub, &handle);
    if (rc != TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kTpm,
                  "defining the Aspis NvPCR " + HandleName(kNvPcrIndex) +
                      " through the platform hierarchy failed (" + Tss2_RC_Decode(rc) +
                      "); where firmware disables that hierarchy, define the index at "
                      "provisioning (docs/threat-model.md)");
    }
    EsysHandle close(ctx(), handle, Release::kClose);
    log::Info("defined the Aspis NvPCR at {}", HandleName(kNvPcrIndex));
    return {};
  }

  struct EkCertificate {
    EkKind kind;
    Bytes certificate;
  };

  // The EK certificate the TPM holds, ECC P-256 before RSA 2048.
  Expected<EkCertificate> FindEk() {
    for (const auto& [kind, index] : {std::pair{EkKind::kEccP256, kEkCertificateEccP256},
                                      std::pair{EkKind::kRsa2048, kEkCertificateRsa2048}}) {
      auto pub = nv_.NvPublic(index);
      if (!pub) return std::unexpected(pub.error());
      if (!*pub) continue;
      auto nv = nv_.OpenNv(index);
      if (!nv) return std::unexpected(nv.error());
      Bytes contents;
      const std::uint16_t size = (*pub)->dataSize;
      const ESYS_TR auth =
          ((*pub)->attributes & TPMA_NV_AUTHREAD) != 0 ? nv->get() : ESYS_TR_RH_OWNER;
      // NV_Read returns at most TPM2_MAX_NV_BUFFER_SIZE bytes at a time.
      while (contents.size() < size) {
        const auto chunk =
            static_cast<UINT16>(std::min<std::size_t>(size - contents.size(), kMaxNvRead));
        TPM2B_MAX_NV_BUFFER* out = nullptr;
        const TSS2_RC rc =
            Esys_NV_Read(ctx(), auth, nv->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         chunk, static_cast<UINT16>(contents.size()), &out);
        EsysOut<TPM2B_MAX_NV_BUFFER> data(out);
        if (rc != TSS2_RC_SUCCESS) {
          return std::unexpected(TpmError("reading the EK certificate " + HandleName(index), rc));
        }
        contents.insert(contents.end(), data->buffer, data->buffer + data->size);
      }
      auto der = LeadingDer(contents);
      if (!der) return std::unexpected(der.error());
      return EkCertificate{kind, std::move(*der)};
    }
    return Fail(RotErrc::kBadState, "the TPM holds no EK certificate (TCG NV index " +
                                        HandleName(kEkCertificateEccP256) + " or " +
                                        HandleName(kEkCertificateRsa2048) +
                                        "): the verifier cannot tell it from a software TPM");
  }

  // The EK, re-created from its default template under the endorsement hierarchy.
  Expected<EsysHandle> CreateEk(EkKind kind) {
    auto marshaled = EkTemplate(kind);
    if (!marshaled) return std::unexpected(marshaled.error());
    TPM2B_PUBLIC in{};
    std::size_t offset = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(marshaled->data(), marshaled->size(), &offset, &in) !=
        TSS2_RC_SUCCESS) {
      return Fail(RotErrc::kBadState, "unmarshaling the EK template");
    }
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_DATA outside{};
    const TPML_PCR_SELECTION no_pcrs{};
    ESYS_TR handle = ESYS_TR_NONE;
    const TSS2_RC rc = Esys_CreatePrimary(ctx(), ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
                                          ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in, &outside,
                                          &no_pcrs, &handle, nullptr, nullptr, nullptr, nullptr);
    if (rc != TSS2_RC_SUCCESS) return std::unexpected(TpmError("creating the EK", rc));
    return EsysHandle(ctx(), handle, Release::kFlush);
  }

  Expected<Bytes> ReadPublicArea(ESYS_TR handle, std::string_view what) {
    TPM2B_PUBLIC* out = nullptr;
    const TSS2_RC rc = Esys_ReadPublic(ctx(), handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       &out, nullptr, nullptr);
    EsysOut<TPM2B_PUBLIC> pub(out);
    if (rc != TSS2_RC_SUCCESS) {
      return std::unexpected(TpmError("reading " + std::string(what), rc));
    }
    return MarshalTpm(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal, what);
  }

  Expected<void> CreateIdentity() {
    const TPM2B_PUBLIC in = IdentityTemplateStruct();
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
    auto value = ReadRegister();
    if (!value) return std::unexpected(value.error());
    auto nv = nv_.OpenNv(kNvPcrIndex);
    if (!nv) return std::unexpected(nv.error());
    TPM2B_OPERAND operand{};
    SetTpm2b(operand, *value);
    rc = Esys_PolicyNV(ctx(), nv->get(), nv->get(), session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                       ESYS_TR_NONE, &operand, 0, TPM2_EO_EQ);
    if (rc != TSS2_RC_SUCCESS) {
      return std::unexpected(TpmError("binding the policy to the NvPCR", rc));
    }
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

  TctiPtr tcti_;
  EsysPtr esys_;
  Nv nv_{esys_.get()};
  EsysHandle identity_handle_;
  std::optional<Identity> identity_;
};

}  // namespace

Expected<std::unique_ptr<RootOfTrust>> Open(std::string_view tcti_conf, bool create) {
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
  auto rot = std::make_unique<Tpm2RootOfTrust>(std::move(tcti), std::move(esys));
  if (auto ok = rot->Start(); !ok) return std::unexpected(ok.error());
  if (auto ok = rot->LoadIdentity(create); !ok) return std::unexpected(ok.error());
  if (auto ok = rot->LoadNvPcr(create); !ok) return std::unexpected(ok.error());
  if (create) {
    if (auto ok = rot->ProvisionCounters(); !ok) return std::unexpected(ok.error());
  }
  return rot;
}

}  // namespace aspis::rot::tpm2
