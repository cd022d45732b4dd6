#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/sha256.hpp"
#include "rot/endorsement.hpp"
#include "rot/quote.hpp"

// The device's root of trust: an identity key that never leaves it, a measurement register that
// software can extend but not reset (on the TPM, the Aspis NvPCR), signed evidence, monotonic
// counters, random bytes and sealing.
//
// Implementations are not thread-safe: one owner (aspisd) serializes calls. Every method reports
// failures of the backend (TPM errors, damaged state) as Errors; none aborts.
namespace aspis::rot {

using crypto::Digest;

struct Identity {
  // Lowercase hex SHA-256 of the identity key's DER SubjectPublicKeyInfo (64 characters).
  std::string device_id;
  crypto::PublicKey public_key;
};

// What a root of trust signs for the verifier.
struct Attestation {
  // TPM: a quote over kBootPcrs. Software: a quote over its register, as PCR kSoftwareRegister.
  Quote quote;
  // TPM: the values of kBootPcrs when quoted, in that order. Software: empty.
  std::vector<Digest> boot_pcrs;
  // TPM: TPM2_NV_Certify of the Aspis NvPCR (kNvPcrIndex), which holds the register. Software:
  // none.
  std::optional<Quote> register_certification;
};

class RootOfTrust {
 public:
  virtual ~RootOfTrust() = default;

  // "software" or "tpm2".
  virtual std::string_view Backend() const = 0;
  // The measurement register, for people: "NvPCR 0x01d10300" or "software register".
  virtual std::string RegisterName() const = 0;

  virtual Expected<Identity> GetIdentity() = 0;
  // ECDSA-SHA256 with the identity key over `data`, DER-encoded.
  virtual Expected<Bytes> Sign(ByteView data) = 0;

  // register := SHA-256(register || measurement). The register is all zeros at each boot.
  virtual Expected<void> Extend(const Digest& measurement) = 0;
  virtual Expected<Digest> ReadRegister() = 0;
  // The evidence the verifier requires (rot/quote.hpp), signed by the identity key over
  // `qualifying_data` (at most kMaxQualifyingData bytes; callers pass a hash of their nonce and
  // what they bind to it). On the TPM, an error when nothing was measured this boot.
  virtual Expected<Attestation> Attest(ByteView qualifying_data) = 0;

  // The hardware binding of the identity key: on the TPM, the EK certificate from the TPM's NV (ECC
  // P-256 or RSA 2048), the EK's and the identity key's public areas; on the software backend,
  // nullopt (nothing vouches for it). kBadState when the TPM has no EK certificate.
  virtual Expected<std::optional<Endorsement>> Endorse() = 0;
  // TPM2_ActivateCredential with the identity key and the EK of Endorse: the secret the verifier
  // sealed in the credential (a TPM2B_ID_OBJECT and a TPM2B_ENCRYPTED_SECRET, marshaled), which
  // only this TPM can open, and only for this identity key. kInvalidArgument on software.
  virtual Expected<Bytes> ActivateCredential(ByteView credential_blob,
                                             ByteView encrypted_secret) = 0;

  // Monotonic counters, numbered 0..kCounterCount-1, starting at 0.
  virtual Expected<std::uint64_t> ReadCounter(std::uint32_t counter) = 0;
  // Raises the counter to `value`; lowering it is refused (kCounterBackwards), equal is a no-op.
  virtual Expected<void> AdvanceCounter(std::uint32_t counter, std::uint64_t value) = 0;

  virtual Expected<Bytes> Random(std::size_t count) = 0;

  // Seals a secret of at most kMaxSealedSecret bytes to the current register value: Unseal
  // succeeds only while the register holds that value (kPolicy otherwise). Sealing needs a
  // measurement this boot (kBadState before the first Extend).
  virtual Expected<Bytes> Seal(ByteView secret) = 0;
  virtual Expected<Bytes> Unseal(ByteView blob) = 0;
};

inline constexpr std::uint32_t kCounterCount = 8;
inline constexpr std::size_t kMaxSealedSecret = 128;
// The largest increase AdvanceCounter accepts in one call. TPM counters move one step per
// command, and security versions grow by small steps.
inline constexpr std::uint64_t kMaxCounterStep = 4096;

// Where Linux publishes the ID of the current boot.
inline constexpr char kBootIdFile[] = "/proc/sys/kernel/random/boot_id";

struct Config {
  std::string backend = "software";         // "software" or "tpm2"
  std::filesystem::path state_dir;          // software: key, register and counters; both: rot.json
  std::string tcti = "device:/dev/tpmrm0";  // tpm2 only, tpm2-tss TCTI configuration string
  // Software only: the register resets when the ID in this file changes, as a PCR resets at
  // reboot (a simulator may point it elsewhere to simulate a reboot). Not recorded in rot.json.
  std::filesystem::path boot_id_file = kBootIdFile;
};

// Creates the root of trust described by `config` if it does not exist yet (identity key, counters,
// the state directory and its rot.json), or opens the existing one; the same identity results on
// every call. Fails if `state_dir` already belongs to a different configuration.
Expected<std::unique_ptr<RootOfTrust>> Initialize(const Config& config);

// Opens the root of trust recorded in `state_dir`/rot.json by Initialize.
Expected<std::unique_ptr<RootOfTrust>> Open(
    const std::filesystem::path& state_dir,
    const std::filesystem::path& boot_id_file = kBootIdFile);

}  // namespace aspis::rot
