// Offline verbs for publishers: publisher keys and image packages (docs/formats/aspkg.md). They
// need no login: a publisher's private key never reaches the service.
#include <fmt/format.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cmath>
#include <filesystem>
#include <memory>

#include "cli/command.hpp"
#include "core/file.hpp"
#include "crypto/encoding.hpp"
#include "crypto/key.hpp"
#include "package/archive.hpp"
#include "package/delta.hpp"
#include "package/hardware_definition.hpp"
#include "package/measure.hpp"
#include "package/package.hpp"
#include "package/payload_compression.hpp"

namespace aspis::cli {

namespace {

namespace fs = std::filesystem;
using json::Json;

Expected<crypto::PrivateKey> LoadKey(const std::string& path) {
  auto pem = file::Read(path, file::kSmallFileLimit);
  if (!pem) return std::unexpected(std::move(pem.error()).WithContext("reading the key " + path));
  auto key = crypto::PrivateKey::FromPem(AsString(*pem));
  if (!key) return std::unexpected(std::move(key.error()).WithContext(path + " is not a key"));
  return key;
}

class KeyGenerate final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--destination", destination_,
                     "The private key file to write (0600; its public half goes to FILE.pub)")
        ->required();
  }
  Expected<Json> Run() override {
    const fs::path public_path = destination_ + ".pub";
    if (fs::exists(destination_) || fs::exists(public_path)) {
      return Fail(CoreErrc::kAlreadyExists,
                  destination_ + " or its .pub exists; a publisher key is never overwritten");
    }
    auto key = crypto::PrivateKey::GenerateP256();
    if (!key) return std::unexpected(key.error());
    auto private_pem = key->ToPem();
    auto public_pem = key->Public().ToPem();
    if (!private_pem || !public_pem) {
      return std::unexpected(!private_pem ? private_pem.error() : public_pem.error());
    }
    if (auto ok = file::WriteDurably(destination_, AsBytes(*private_pem), 0600); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = file::WriteDurably(public_path, AsBytes(*public_pem), 0644); !ok) {
      return std::unexpected(ok.error());
    }
    return Json{{"key_id", key->Public().Fingerprint()},
                {"private_key", destination_},
                {"public_key", public_path.string()}};
  }
  Output Format() const override { return {.columns = {"key_id", "private_key", "public_key"}}; }

 private:
  std::string destination_;
};

// A file or directory that is removed when this goes out of scope.
class Scratch {
 public:
  explicit Scratch(fs::path path) : path_(std::move(path)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class PackApplication final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--package-directory", directory_,
                     "The app's directory: app_manifest.json, the executable named by its "
                     "EntryPoint, and its files")
        ->required();
    verb->add_option("--destination", destination_, "The .aspkg file to write")->required();
    verb->add_option("--key", key_, "The publisher's private key (aspis key generate)")->required();
    verb->add_option("--version", version_, "The app's version")->capture_default_str();
    verb->add_option("--security-version", security_version_,
                     "Raise it to keep devices from going back to older, vulnerable versions")
        ->capture_default_str();
    verb->add_option("--target-board", boards_, "A board the app is for (repeated; none: any)");
    verb->add_option("--hardware-definitions", hardware_definitions_,
                     "Directories holding hardware definitions, searched in order for the target "
                     "definition and its imports");
    verb->add_option("--target-definition-filename", target_definition_,
                     "The hardware definition that gives the peripherals app_manifest.json names "
                     "(\"$SAMPLE_LED\") their values, as sample_appliance.json");
  }

  Expected<Json> Run() override {
    auto key = LoadKey(key_);
    if (!key) return std::unexpected(key.error());
    auto manifest = AppManifest();
    if (!manifest) return std::unexpected(manifest.error());
    // With names resolved, the payload holds the manifest as signed: packed from a copy.
    const Scratch copy(destination_ + ".app-" + std::to_string(::getpid()));
    fs::path directory = directory_;
    if (resolved_) {
      std::error_code ec;
      fs::copy(directory_, copy.path(),
               fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
      if (ec) return Fail(CoreErrc::kIo, "copying " + directory_ + ": " + ec.message());
      if (auto ok = file::WriteDurably(copy.path() / "app_manifest.json",
                                       AsBytes(manifest->app_manifest), 0644);
          !ok) {
        return std::unexpected(ok.error());
      }
      directory = copy.path();
    }
    const Scratch payload(destination_ + ".payload-" + std::to_string(::getpid()));
    auto packed = package::PackDirectory(directory, payload.path());
    if (!packed) return std::unexpected(packed.error());
    manifest->payload.compression = package::Compression::kZstd;
    manifest->payload.unpacked_size = packed->unpacked_size;
    auto written = package::Write(*manifest, payload.path(), std::span(&*key, 1), destination_);
    if (!written) return std::unexpected(written.error());
    return Summary(*written);
  }
  Output Format() const override {
    return {.columns = {"image_id", "component_id", "name", "version"}};
  }

  static Json Summary(const package::Manifest& m) {
    Json measured = Json::object();
    for (const auto& [name, digest] : m.measurements) measured[name] = crypto::ToHex(digest);
    return {{"image_id", m.image_id},
            {"component_id", m.component_id},
            {"name", m.name},
            {"kind", package::KindName(m.kind)},
            {"version", m.version},
            {"security_version", m.security_version},
            {"target_boards", m.target_boards},
            {"payload",
             {{"sha256", crypto::ToHex(m.payload.sha256)},
              {"size", m.payload.size},
              {"compression", package::CompressionName(m.payload.compression)},
              {"unpacked_size", m.payload.unpacked_size}}},
            {"measurements", measured}};
  }

 private:
  // The package manifest from the directory's app_manifest.json (Azure Sphere's format).
  Expected<package::Manifest> AppManifest() {
    const fs::path path = fs::path(directory_) / "app_manifest.json";
    auto text = file::Read(path, file::kSmallFileLimit);
    if (!text) return std::unexpected(std::move(text.error()).WithContext(path.string()));
    auto app = json::Parse(AsString(*text));
    if (!app || !app->is_object()) {
      return Fail(CoreErrc::kParse, path.string() + " is not a JSON object");
    }
    const std::string name = app->value("Name", "");
    std::string component = app->value("ComponentId", "");
    const std::string entry_point = app->value("EntryPoint", "");
    std::transform(component.begin(), component.end(), component.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const fs::path executable = fs::path(directory_) / fs::path(entry_point).relative_path();
    if (entry_point.empty() || entry_point.front() != '/' ||
        entry_point.find("..") != std::string::npos || !fs::is_regular_file(executable) ||
        ::access(executable.c_str(), X_OK) != 0) {
      return Fail(CoreErrc::kInvalidArgument,
                  "app_manifest.json's EntryPoint \"" + entry_point +
                      "\" must name an executable file in the package directory, as /bin/app");
    }
    auto image_id = crypto::RandomUuid();
    if (!image_id) return std::unexpected(image_id.error());
    package::Manifest m;
    m.image_id = *image_id;
    m.component_id = component;
    m.name = name;
    m.kind = app->value("ApplicationType", "Default") == "RealTimeCapable" ? package::Kind::kRtApp
                                                                           : package::Kind::kApp;
    m.version = version_;
    m.security_version = security_version_;
    m.target_boards = boards_;
    if (auto ok = ResolvePeripherals(*app); !ok) {
      return std::unexpected(std::move(ok.error()).WithContext(path.string()));
    }
    m.app_manifest = json::Dump(*app);
    if (auto ok = package::Validate(m); !ok) {
      return std::unexpected(std::move(ok.error()).WithContext(path.string()));
    }
    return m;
  }

  // Replaces each "$NAME" a peripheral capability lists with the value the target definition
  // gives it (a GPIO's number, "ISU0"), as Azure Sphere's packing does.
  Expected<void> ResolvePeripherals(Json& app) {
    const auto capabilities = app.find("Capabilities");
    if (capabilities == app.end() || !capabilities->is_object()) return {};
    std::optional<package::HardwareDefinition> definition;
    for (const char* capability : {"Gpio", "Uart", "I2cMaster", "SpiMaster", "Adc", "Pwm"}) {
      const auto list = capabilities->find(capability);
      if (list == capabilities->end() || !list->is_array()) continue;
      for (auto& entry : *list) {
        if (!entry.is_string() || !entry.get<std::string>().starts_with('$')) continue;
        if (!definition) {
          auto loaded = TargetDefinition(entry.get<std::string>());
          if (!loaded) return std::unexpected(loaded.error());
          definition.emplace(std::move(*loaded));
        }
        auto value = definition->ManifestValue(entry.get<std::string>().substr(1), capability);
        if (!value) return std::unexpected(value.error());
        entry = std::string_view(capability) == "Gpio" ? Json(std::stoll(*value)) : Json(*value);
        resolved_ = true;
      }
    }
    return {};
  }
  Expected<package::HardwareDefinition> TargetDefinition(const std::string& named) const {
    if (target_definition_.empty() || hardware_definitions_.empty()) {
      return Fail(CoreErrc::kInvalidArgument,
                  "it names the peripheral " + named +
                      ": give --hardware-definitions and --target-definition-filename");
    }
    std::vector<fs::path> dirs(hardware_definitions_.begin(), hardware_definitions_.end());
    for (const auto& dir : dirs) {
      std::error_code ec;
      if (fs::is_regular_file(dir / target_definition_, ec)) {
        return package::HardwareDefinition::Load(dir / target_definition_, dirs);
      }
    }
    return Fail(CoreErrc::kNotFound, target_definition_ + " is in none of --hardware-definitions");
  }

  std::string directory_, destination_, key_, version_ = "1.0.0";
  std::uint64_t security_version_ = 0;
  std::vector<std::string> boards_;
  std::vector<std::string> hardware_definitions_;
  std::string target_definition_;
  bool resolved_ = false;
};

// The options OS and board packages share: they are the platform's, for named boards.
class PackPlatform : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--destination", destination_, "The .aspkg file to write")->required();
    verb->add_option("--key", key_, "The OS publisher's private key")->required();
    verb->add_option("--version", version_, "The version, as devices report it")->required();
    verb->add_option("--security-version", security_version_,
                     "Raise it to keep devices from going back to older, vulnerable versions")
        ->required();
    verb->add_option("--target-board", boards_, "A board the package is for (repeated)")
        ->required();
    verb->add_option("--component-id", component_id_,
                     "The component the package is a version of (a UUID; new when omitted)");
    verb->add_option("--name", name_, "The package's name")->capture_default_str();
  }

 protected:
  explicit PackPlatform(std::string name) : name_(std::move(name)) {}

  // Signs `payload` (a tar or an image of `format`, unpacking to `unpacked_size` bytes) as a
  // package of `kind` that measures to `measurements`.
  Expected<Json> Sign(package::Kind kind, const fs::path& payload, std::uint64_t unpacked_size,
                      std::map<std::string, crypto::Digest, std::less<>> measurements,
                      package::PayloadFormat format = package::PayloadFormat::kTar) const {
    auto key = LoadKey(key_);
    if (!key) return std::unexpected(key.error());
    auto image_id = crypto::RandomUuid();
    if (!image_id) return std::unexpected(image_id.error());
    std::string component = component_id_;
    if (component.empty()) {
      auto made = crypto::RandomUuid();
      if (!made) return std::unexpected(made.error());
      component = *made;
    }
    package::Manifest m;
    m.image_id = *image_id;
    m.component_id = component;
    m.name = name_;
    m.kind = kind;
    m.version = version_;
    m.security_version = security_version_;
    m.target_boards = boards_;
    m.measurements = std::move(measurements);
    m.payload.compression = package::Compression::kZstd;
    m.payload.unpacked_size = unpacked_size;
    m.payload.format = format;
    auto written = package::Write(std::move(m), payload, std::span(&*key, 1), destination_);
    if (!written) return std::unexpected(written.error());
    return PackApplication::Summary(*written);
  }

  fs::path Temporary(std::string_view what) const {
    return destination_ + "." + std::string(what) + "-" + std::to_string(::getpid());
  }

 private:
  std::string destination_, key_, version_, component_id_, name_;
  std::uint64_t security_version_ = 0;
  std::vector<std::string> boards_;
};

// An OS package from a root file system (a directory, or a tar of one), recording the digests
// aspisd will measure when running it; with --image, the package carries that file system image
// of the root file system instead, for boards whose OS slots are partitions.
class PackOs final : public PackPlatform {
 public:
  PackOs() : PackPlatform("Aspis OS") {}
  void AddOptions(CLI::App* verb) override {
    PackPlatform::AddOptions(verb);
    verb->add_option("--rootfs", rootfs_,
                     "The root file system: a directory, or a tar of one (plain or zstd)")
        ->required();
    verb->add_option("--image", image_,
                     "A file system image of the root file system, for partition slots (U-Boot, "
                     "GRUB): the package carries it and devices measure it whole");
  }
  Expected<Json> Run() override {
    fs::path tree = rootfs_;
    std::optional<Scratch> unpacked;
    if (!fs::is_directory(tree)) {
      unpacked.emplace(Temporary("rootfs"));
      if (auto ok = package::UnpackArchive(rootfs_, unpacked->path(), package::kMaxPayloadSize,
                                           {.symlinks = true});
          !ok) {
        return std::unexpected(std::move(ok.error()).WithContext(rootfs_));
      }
      tree = unpacked->path();
    }
    auto measured = package::MeasureOsTree(tree);
    if (!measured) return std::unexpected(measured.error());
    const Scratch payload(Temporary("payload"));
    if (!image_.empty()) {
      auto os = package::MeasurePath(image_);
      if (!os) return std::unexpected(std::move(os.error()).WithContext(image_));
      (*measured)["os"] = *os;
      auto size = package::CompressFile(image_, payload.path());
      if (!size) return std::unexpected(size.error());
      return Sign(package::Kind::kOs, payload.path(), *size, std::move(*measured),
                  package::PayloadFormat::kImage);
    }
    auto packed = package::PackDirectory(tree, payload.path(), {.symlinks = true});
    if (!packed) return std::unexpected(packed.error());
    return Sign(package::Kind::kOs, payload.path(), packed->unpacked_size, std::move(*measured));
  }
  Output Format() const override {
    return {.columns = {"image_id", "component_id", "name", "version"}};
  }

 private:
  std::string rootfs_, image_;
};

// A board package: the board definition aspisd measures at launch, as board.json.
class PackBoard final : public PackPlatform {
 public:
  PackBoard() : PackPlatform("Board definition") {}
  void AddOptions(CLI::App* verb) override {
    PackPlatform::AddOptions(verb);
    verb->add_option("--board", board_, "The board definition (JSON)")->required();
  }
  Expected<Json> Run() override {
    auto definition = file::Read(board_, file::kSmallFileLimit);
    if (!definition) return std::unexpected(std::move(definition.error()).WithContext(board_));
    if (auto parsed = json::Parse(AsString(*definition)); !parsed || !parsed->is_object()) {
      return Fail(CoreErrc::kParse, board_ + " is not a JSON object");
    }
    auto digest = package::MeasurePath(board_);
    if (!digest) return std::unexpected(digest.error());
    const Scratch tree(Temporary("board"));
    std::error_code ec;
    fs::create_directory(tree.path(), ec);
    if (ec) return Fail(CoreErrc::kIo, "creating " + tree.path().string() + ": " + ec.message());
    if (auto ok = file::WriteDurably(tree.path() / "board.json", *definition, 0644); !ok) {
      return std::unexpected(ok.error());
    }
    const Scratch payload(Temporary("payload"));
    auto packed = package::PackDirectory(tree.path(), payload.path());
    if (!packed) return std::unexpected(packed.error());
    return Sign(package::Kind::kBoard, payload.path(), packed->unpacked_size, {{"board", *digest}});
  }
  Output Format() const override {
    return {.columns = {"image_id", "component_id", "name", "version"}};
  }

 private:
  std::string board_;
};

void PrintPackage(std::ostream& out, const Json& p) {
  out << "Image ID:          " << p.value("image_id", "") << "\n"
      << "Component ID:      " << p.value("component_id", "") << "\n"
      << "Name:              " << p.value("name", "") << "\n"
      << "Kind:              " << p.value("kind", "") << "\n"
      << "Version:           " << p.value("version", "") << "\n"
      << "Security version:  " << p.value("security_version", 0) << "\n"
      << "Target boards:     ";
  const Json boards = p.value("target_boards", Json::array());
  out << (boards.empty() ? "any" : "") << "\n";
  for (const auto& board : boards) out << "  " << board.get<std::string>() << "\n";
  const Json payload = p.value("payload", Json::object());
  out << "Payload:           " << payload.value("size", 0) << " bytes, "
      << payload.value("compression", "") << " (" << payload.value("unpacked_size", 0)
      << " unpacked), SHA-256 " << payload.value("sha256", "") << "\n"
      << "Payload check:     " << p.value("payload_check", "") << "\n";
  const Json measurements = p.value("measurements", Json::object());
  for (const auto& [name, digest] : measurements.items()) {
    out << "Measures:          " << name << " " << digest.get<std::string>() << "\n";
  }
  out << "Signed by key ID:  ";
  for (const auto& id : p.value("signed_by", Json::array())) out << id.get<std::string>() << " ";
  out << "\n"
      << "Signature:         " << p.value("signature", "") << "\n";
}

class PackageShow final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--image-package", path_, "The .aspkg file")->required();
    verb->add_option("--key", public_key_,
                     "A publisher's public key (FILE.pub of aspis key generate) to verify the "
                     "signature with; without it the signature is not checked");
  }
  Expected<Json> Run() override {
    auto source = package::FileSource::Open(path_);
    if (!source) return std::unexpected(source.error());
    std::string signature = "not verified (give --key)";
    crypto::dsse::TrustedKeys trusted;
    Expected<package::Reader> reader = std::unexpected(Error(CoreErrc::kInvalidArgument, ""));
    if (public_key_.empty()) {
      reader = package::Reader::Inspect(*source);
    } else {
      auto pem = file::Read(public_key_, file::kSmallFileLimit);
      auto key = pem ? crypto::PublicKey::FromPem(AsString(*pem))
                     : Expected<crypto::PublicKey>(std::unexpected(pem.error()));
      if (!key) return std::unexpected(std::move(key.error()).WithContext(public_key_));
      trusted.Add(*key);
      reader = package::Reader::Open(*source, {.os = &trusted, .apps = &trusted});
      signature = "verified with key ID " + key->Fingerprint();
    }
    if (!reader) return std::unexpected(reader.error());
    Json shown = PackApplication::Summary(reader->manifest());
    shown["signature"] = signature;
    Json signers = Json::array();
    for (const auto& s : reader->envelope().signatures) signers.push_back(s.keyid);
    shown["signed_by"] = signers;
    auto payload = reader->VerifyPayload();
    shown["payload_check"] = payload ? "matches the manifest" : payload.error().message();
    if (!reader->manifest().app_manifest.empty()) {
      shown["app_manifest"] = *json::Parse(reader->manifest().app_manifest);
    }
    return shown;
  }
  Output Format() const override { return {.table = PrintPackage}; }

 private:
  std::string path_, public_key_;
};

// A delta that rebuilds NEW from OLD (docs/formats/aspkg.md, "Deltas"), proven before it is
// written: applied to OLD, it must give NEW byte for byte.
class PackageDelta final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--from", from_, "The old version's .aspkg")->required();
    verb->add_option("--to", to_, "The new version's .aspkg (the same component)")->required();
    verb->add_option("--destination", destination_, "The delta file to write")->required();
  }
  Expected<Json> Run() override {
    auto made = package::MakeDelta(from_, to_, destination_);
    if (!made) return std::unexpected(made.error());
    const double percent = made->full_size == 0 ? 0.0
                                                : 100.0 * static_cast<double>(made->delta_size) /
                                                      static_cast<double>(made->full_size);
    return Json{
        {"destination", destination_},          {"full_size", made->full_size},
        {"delta_size", made->delta_size},       {"percent", std::round(percent * 100.0) / 100.0},
        {"tar_size", made->tar_size},           {"copied_files", made->copied_files},
        {"patched_files", made->patched_files}, {"literal_files", made->literal_files}};
  }
  Output Format() const override {
    return {.table = [](std::ostream& out, const Json& d) {
      out << "Delta:        " << d.value("destination", "") << "\n"
          << "Full package: " << d.value("full_size", 0) << " bytes\n"
          << "Delta:        " << d.value("delta_size", 0) << " bytes ("
          << fmt::format("{:.2f}", d.value("percent", 0.0)) << " % of the full package)\n"
          << "Files:        " << d.value("copied_files", 0) << " copied, "
          << d.value("patched_files", 0) << " patched, " << d.value("literal_files", 0)
          << " sent whole\n";
    }};
  }

 private:
  std::string from_, to_, destination_;
};

// Rebuilds a package from a delta and the old version (its package, or the directory it was
// unpacked to), checked against the digest and size an update manifest gives.
class PackageApplyDelta final : public Command {
 public:
  void AddOptions(CLI::App* verb) override {
    verb->add_option("--from", from_,
                     "The old version: its .aspkg, or the directory it is installed in")
        ->required();
    verb->add_option("--delta", delta_, "The delta file")->required();
    verb->add_option("--destination", destination_, "The .aspkg file to write")->required();
    verb->add_option("--sha256", sha256_,
                     "The SHA-256 the rebuilt package must have (from an update manifest); "
                     "without it, the delta's own claim is checked");
    verb->add_option("--size", size_, "The size in bytes the rebuilt package must have");
  }
  Expected<Json> Run() override {
    auto source = package::FileSource::Open(delta_);
    if (!source) return std::unexpected(source.error());
    auto expected = Target();
    if (!expected) return std::unexpected(expected.error());
    std::unique_ptr<package::DeltaBase> base;
    if (fs::is_directory(from_)) {
      auto tree = package::TreeBase::Create(from_);
      if (!tree) return std::unexpected(tree.error());
      base = std::move(*tree);
    } else {
      auto old = package::PackageBase::Create(from_);
      if (!old) return std::unexpected(old.error());
      base = std::move(*old);
    }
    auto header = package::ApplyDelta(*source, *base, *expected, destination_);
    if (!header) return std::unexpected(header.error());
    return Json{{"destination", destination_},
                {"image_id", header->new_image_id},
                {"sha256", crypto::ToHex(expected->sha256)},
                {"size", expected->size},
                {"checked_against", sha256_.empty() ? "the delta's own header (give --sha256 "
                                                      "and --size from an update manifest)"
                                                    : "--sha256 and --size"}};
  }
  Output Format() const override {
    return {.columns = {"destination", "image_id", "sha256", "size", "checked_against"}};
  }

 private:
  // The caller's digest and size, or the delta's own when none was given.
  Expected<package::DeltaTarget> Target() const {
    if (sha256_.empty() != (size_ == 0)) {
      return Fail(CoreErrc::kInvalidArgument, "give both --sha256 and --size, or neither");
    }
    package::DeltaTarget target;
    if (sha256_.empty()) {
      auto source = package::FileSource::Open(delta_);
      if (!source) return std::unexpected(source.error());
      auto header = package::ReadDeltaHeader(*source);
      if (!header) return std::unexpected(std::move(header.error()).WithContext(delta_));
      return package::DeltaTarget{header->target_sha256, header->target_size};
    }
    auto digest = HexDecode(sha256_);
    if (!digest || digest->size() != target.sha256.size()) {
      return Fail(CoreErrc::kInvalidArgument, "--sha256 must be 64 hex digits");
    }
    std::copy(digest->begin(), digest->end(), target.sha256.begin());
    target.size = size_;
    return target;
  }

  std::string from_, delta_, destination_, sha256_;
  std::uint64_t size_ = 0;
};

}  // namespace

void AddPackageCommands(CLI::App& app, Registry& r) {
  auto* key = app.add_subcommand("key", "Publisher keys (kept by their owner, never uploaded)")
                  ->require_subcommand(1);
  r.Add<KeyGenerate>(key->add_subcommand("generate", "Make a publisher key pair (ECDSA P-256)"));

  auto* image_package =
      app.add_subcommand("image-package", "Image packages (.aspkg)")->require_subcommand(1);
  r.Add<PackApplication>(image_package->add_subcommand(
      "pack-application", "Pack and sign an app from its directory (app_manifest.json)"));
  r.Add<PackOs>(image_package->add_subcommand(
      "pack-os", "Pack and sign an OS root file system (OS publishers only)"));
  r.Add<PackBoard>(image_package->add_subcommand(
      "pack-board", "Pack and sign a board definition (OS publishers only)"));
  r.Add<PackageShow>(image_package->add_subcommand(
      "show",
      "Show what a package says about itself, check its payload, and verify its "
      "signature with --key"));
  r.Add<PackageDelta>(image_package->add_subcommand(
      "delta", "Make a delta that rebuilds a package from its previous version"));
  r.Add<PackageApplyDelta>(image_package->add_subcommand(
      "apply-delta", "Rebuild a package from a delta and the previous version"));
}

}  // namespace aspis::cli
