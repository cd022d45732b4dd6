#include "rot/root_of_trust.hpp"

#include "core/file.hpp"
#include "core/json.hpp"
#include "rot/errors.hpp"
#include "rot/platform/software/software_root_of_trust.hpp"
#include "rot/platform/tpm2/tpm2_root_of_trust.hpp"

namespace aspis::rot {

namespace {

constexpr char kConfigFile[] = "rot.json";

std::string Describe(const Config& c) {
  return c.backend == "tpm2" ? "tpm2 (" + c.tcti + ")" : "software";
}

Expected<Config> ReadConfig(const std::filesystem::path& state_dir) {
  const auto path = state_dir / kConfigFile;
  auto text = file::Read(path, file::kSmallFileLimit);
  if (!text) {
    if (text.error() == CoreErrc::kNotFound) {
      return Fail(RotErrc::kBadState, "no root of trust in " + state_dir.string() + " (" +
                                          path.string() +
                                          " is missing); run `aspisd identity init`");
    }
    return std::unexpected(text.error());
  }
  auto doc = json::Parse(AsString(*text));
  if (!doc) return std::unexpected(std::move(doc.error()).WithContext(path.string()));
  auto backend = json::GetString(*doc, "backend");
  if (!backend) {
    return Fail(RotErrc::kBadState, path.string() + " is damaged: it must name a backend");
  }
  Config config{*backend, state_dir, ""};
  if (*backend == "tpm2") {
    auto tcti = json::GetString(*doc, "tcti");
    if (!tcti) return Fail(RotErrc::kBadState, path.string() + " is damaged: it names no tcti");
    config.tcti = *tcti;
  }
  return config;
}

Expected<std::unique_ptr<RootOfTrust>> OpenBackend(const Config& config, bool create) {
  if (config.backend == "software") {
    return software::Open(config.state_dir, create, config.boot_id_file);
  }
  if (config.backend == "tpm2") return tpm2::Open(config.tcti, create);
  return Fail(RotErrc::kInvalidArgument,
              "unknown root-of-trust backend \"" + config.backend + "\" (use software or tpm2)");
}

}  // namespace

Expected<std::unique_ptr<RootOfTrust>> Initialize(const Config& config) {
  if (config.state_dir.empty()) return Fail(RotErrc::kInvalidArgument, "no state directory given");
  auto existing = ReadConfig(config.state_dir);
  if (existing) {
    const bool same = existing->backend == config.backend &&
                      (config.backend != "tpm2" || existing->tcti == config.tcti);
    if (!same) {
      return Fail(RotErrc::kInvalidArgument,
                  config.state_dir.string() + " already holds a " + Describe(*existing) +
                      " root of trust; refusing to switch it to " + Describe(config));
    }
  }
  if (auto ok = file::EnsureDirectory(config.state_dir, 0700); !ok)
    return std::unexpected(ok.error());
  auto rot = OpenBackend(config, /*create=*/true);
  if (!rot || existing) return rot;
  json::Json doc{{"backend", config.backend}};
  if (config.backend == "tpm2") doc["tcti"] = config.tcti;
  if (auto ok =
          file::WriteDurably(config.state_dir / kConfigFile, AsBytes(doc.dump(2) + "\n"), 0600);
      !ok) {
    return std::unexpected(ok.error());
  }
  return rot;
}

Expected<std::unique_ptr<RootOfTrust>> Open(const std::filesystem::path& state_dir,
                                            const std::filesystem::path& boot_id_file) {
  auto config = ReadConfig(state_dir);
  if (!config) return std::unexpected(config.error());
  config->boot_id_file = boot_id_file;
  return OpenBackend(*config, /*create=*/false);
}

}  // namespace aspis::rot
