#include "rot/platform/software/software_root_of_trust.hpp"

#include <array>
#include <chrono>
#include <functional>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "crypto/aead.hpp"
#include "crypto/encoding.hpp"
#include "rot/counter_rules.hpp"
#include "rot/errors.hpp"

namespace aspis::rot::software {

namespace {

namespace fs = std::filesystem;

constexpr char kKeyFile[] = "identity-key.pem";
constexpr char kRegisterFile[] = "register.bin";
constexpr char kRegisterBootFile[] = "register-boot-id";
constexpr char kCountersFile[] = "counters.json";
constexpr char kSealKeyFile[] = "seal-key.bin";
constexpr std::string_view kSealContext = "aspis-software-seal-v1";

Error BadState(const fs::path& path, std::string_view what) {
  return Error(RotErrc::kBadState, "software root of trust state " + path.string() + " " +
                                       std::string(what) +
                                       "; restore it from backup or re-provision the device");
}

// Reads an existing state file, or, when it is missing and `create` is set, makes it with `make`.
Expected<Bytes> ReadOrCreate(const fs::path& path, bool create, mode_t mode,
                             const std::function<Expected<Bytes>()>& make) {
  auto existing = file::Read(path, file::kSmallFileLimit);
  if (existing) return existing;
  if (existing.error() != CoreErrc::kNotFound || !create) {
    return std::unexpected(std::move(existing.error()).WithContext("software root of trust"));
  }
  auto fresh = make();
  if (!fresh) return fresh;
  if (auto written = file::WriteDurably(path, *fresh, mode); !written) {
    return std::unexpected(written.error());
  }
  return fresh;
}

using Counters = std::array<std::uint64_t, kCounterCount>;

Bytes EncodeCounters(const Counters& counters) {
  return ToBytes(json::Json{{"counters", counters}}.dump());
}

class SoftwareRootOfTrust final : public RootOfTrust {
 public:
  SoftwareRootOfTrust(fs::path dir, crypto::PrivateKey key, Digest register_value,
                      Counters counters, Bytes seal_key)
      : dir_(std::move(dir)),
        key_(std::move(key)),
        register_(register_value),
        counters_(counters),
        seal_key_(std::move(seal_key)) {}

  std::string_view Backend() const override { return "software"; }
  std::string RegisterName() const override { return "software register"; }

  Expected<Identity> GetIdentity() override {
    return Identity{key_.Public().Fingerprint(), key_.Public()};
  }

  Expected<Bytes> Sign(ByteView data) override { return key_.Sign(data); }

  Expected<void> Extend(const Digest& measurement) override {
    Bytes chain(register_.begin(), register_.end());
    chain.insert(chain.end(), measurement.begin(), measurement.end());
    auto next = crypto::Sha256Of(chain);
    if (!next) return std::unexpected(next.error());
    if (auto ok = file::WriteDurably(dir_ / kRegisterFile, *next, 0600); !ok) {
      return std::unexpected(std::move(ok.error()).WithContext("extending register"));
    }
    register_ = *next;
    return {};
  }

  Expected<Digest> ReadRegister() override { return register_; }

  Expected<Attestation> Attest(ByteView qualifying_data) override {
    const auto clock_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
    auto attest = MarshalQuoteAttest(key_.Public(), qualifying_data, kSoftwareRegister, register_,
                                     static_cast<std::uint64_t>(clock_ms));
    if (!attest) return std::unexpected(attest.error());
    auto der = key_.Sign(*attest);
    if (!der) return std::unexpected(der.error());
    auto signature = MarshalEcdsaSignature(*der);
    if (!signature) return std::unexpected(signature.error());
    return Attestation{.quote = {std::move(*attest), std::move(*signature)},
                       .boot_pcrs = {},
                       .register_certification = std::nullopt};
  }

  Expected<std::optional<Endorsement>> Endorse() override { return std::nullopt; }

  Expected<Bytes> ActivateCredential(ByteView, ByteView) override {
    return Fail(RotErrc::kInvalidArgument,
                "a software root of trust has no TPM to activate a credential with");
  }

  Expected<std::uint64_t> ReadCounter(std::uint32_t counter) override {
    if (auto ok = CheckCounterIndex(counter); !ok) return std::unexpected(ok.error());
    return counters_[counter];
  }

  Expected<void> AdvanceCounter(std::uint32_t counter, std::uint64_t value) override {
    if (auto ok = CheckCounterIndex(counter); !ok) return ok;
    if (auto ok = CheckCounterAdvance(counter, counters_[counter], value); !ok) return ok;
    if (value == counters_[counter]) return {};
    Counters next = counters_;
    next[counter] = value;
    if (auto ok = file::WriteDurably(dir_ / kCountersFile, EncodeCounters(next), 0600); !ok) {
      return ok;
    }
    counters_ = next;
    return {};
  }

  Expected<Bytes> Random(std::size_t count) override { return crypto::RandomBytes(count); }

  Expected<Bytes> Seal(ByteView secret) override {
    if (secret.size() > kMaxSealedSecret) {
      return Fail(RotErrc::kInvalidArgument,
                  "secret to seal is larger than " + std::to_string(kMaxSealedSecret) + " bytes");
    }
    if (register_ == Digest{}) {
      return Fail(RotErrc::kBadState,
                  "nothing is measured this boot: there is no state to seal to");
    }
    return crypto::aead::Seal(seal_key_, secret, SealContext());
  }

  Expected<Bytes> Unseal(ByteView blob) override {
    auto secret = crypto::aead::Open(seal_key_, blob, SealContext());
    if (!secret) {
      return Fail(RotErrc::kPolicy,
                  "sealed secret does not open: the register differs from sealing time, or the "
                  "blob was altered or sealed by another device");
    }
    return secret;
  }

 private:
  Bytes SealContext() const {
    Bytes aad = ToBytes(kSealContext);
    aad.insert(aad.end(), register_.begin(), register_.end());
    return aad;
  }

  fs::path dir_;
  crypto::PrivateKey key_;
  Digest register_;
  Counters counters_;
  Bytes seal_key_;
};

Expected<crypto::PrivateKey> LoadKey(const fs::path& dir, bool create) {
  const fs::path path = dir / kKeyFile;
  auto pem = ReadOrCreate(path, create, 0600, []() -> Expected<Bytes> {
    auto key = crypto::PrivateKey::GenerateP256();
    if (!key) return std::unexpected(key.error());
    auto text = key->ToPem();
    if (!text) return std::unexpected(text.error());
    return ToBytes(*text);
  });
  if (!pem) return std::unexpected(pem.error());
  if (auto private_only = file::RequireOwnerOnly(path); !private_only) {
    return std::unexpected(std::move(private_only.error()).WithContext("identity key"));
  }
  auto key = crypto::PrivateKey::FromPem(AsString(*pem));
  if (!key)
    return std::unexpected(BadState(path, "is not a P-256 private key: " + key.error().message()));
  return key;
}

Expected<Digest> LoadRegister(const fs::path& dir, bool create) {
  const fs::path path = dir / kRegisterFile;
  auto bytes = ReadOrCreate(path, create, 0600, [] { return Expected<Bytes>(Bytes(32, 0)); });
  if (!bytes) return std::unexpected(bytes.error());
  Digest value{};
  if (bytes->size() != value.size()) {
    return std::unexpected(
        BadState(path, "is " + std::to_string(bytes->size()) + " bytes, not 32"));
  }
  std::copy(bytes->begin(), bytes->end(), value.begin());
  return value;
}

// A new boot starts the register from zero. The zeros are written before the boot ID, so a crash
// between the two resets again on the next open, never keeps a stale register.
Expected<Digest> ResetOnNewBoot(const fs::path& dir, const Digest& value,
                                const fs::path& boot_id_file) {
  auto boot = file::Read(boot_id_file, file::kSmallFileLimit);
  if (!boot) {
    return std::unexpected(std::move(boot.error()).WithContext("reading the boot ID"));
  }
  const fs::path recorded_path = dir / kRegisterBootFile;
  auto recorded = file::Read(recorded_path, file::kSmallFileLimit);
  if (recorded && *recorded == *boot) return value;
  if (!recorded && recorded.error() != CoreErrc::kNotFound) {
    return std::unexpected(recorded.error());
  }
  const Digest zero{};
  if (value != zero) {
    log::Info("software root of trust: new boot; the measurement register starts from zero");
    if (auto ok = file::WriteDurably(dir / kRegisterFile, zero, 0600); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (auto ok = file::WriteDurably(recorded_path, *boot, 0600); !ok) {
    return std::unexpected(ok.error());
  }
  return zero;
}

Expected<Counters> LoadCounters(const fs::path& dir, bool create) {
  const fs::path path = dir / kCountersFile;
  Counters counters{};
  auto text = ReadOrCreate(path, create, 0600,
                           [&]() -> Expected<Bytes> { return EncodeCounters(counters); });
  if (!text) return std::unexpected(text.error());
  auto doc = json::Parse(AsString(*text));
  if (!doc) return std::unexpected(BadState(path, "is not JSON"));
  auto list = json::GetArray(*doc, "counters");
  if (!list || (*list)->size() != kCounterCount) {
    return std::unexpected(
        BadState(path, "does not hold " + std::to_string(kCounterCount) + " counters"));
  }
  for (std::size_t i = 0; i < kCounterCount; ++i) {
    const auto& value = (**list)[i];
    if (!value.is_number_unsigned())
      return std::unexpected(BadState(path, "holds a counter that is not a number"));
    counters[i] = value.get<std::uint64_t>();
  }
  return counters;
}

Expected<Bytes> LoadSealKey(const fs::path& dir, bool create) {
  const fs::path path = dir / kSealKeyFile;
  auto key =
      ReadOrCreate(path, create, 0600, [] { return crypto::RandomBytes(crypto::aead::kKeySize); });
  if (!key) return key;
  if (auto private_only = file::RequireOwnerOnly(path); !private_only) {
    return std::unexpected(std::move(private_only.error()).WithContext("sealing key"));
  }
  if (key->size() != crypto::aead::kKeySize)
    return std::unexpected(BadState(path, "is not 32 bytes"));
  return key;
}

}  // namespace

Expected<std::unique_ptr<RootOfTrust>> Open(const fs::path& state_dir, bool create,
                                            const fs::path& boot_id_file) {
  if (create) {
    if (auto ok = file::EnsureDirectory(state_dir, 0700); !ok) return std::unexpected(ok.error());
  }
  auto key = LoadKey(state_dir, create);
  if (!key) return std::unexpected(key.error());
  auto stored_register = LoadRegister(state_dir, create);
  if (!stored_register) return std::unexpected(stored_register.error());
  auto register_value = ResetOnNewBoot(state_dir, *stored_register, boot_id_file);
  if (!register_value) return std::unexpected(register_value.error());
  auto counters = LoadCounters(state_dir, create);
  if (!counters) return std::unexpected(counters.error());
  auto seal_key = LoadSealKey(state_dir, create);
  if (!seal_key) return std::unexpected(seal_key.error());
  log::Warning(
      "software root of trust in {}: keys are plain files; it offers no hardware protection",
      state_dir.string());
  return std::make_unique<SoftwareRootOfTrust>(state_dir, std::move(*key), *register_value,
                                               *counters, std::move(*seal_key));
}

}  // namespace aspis::rot::software
