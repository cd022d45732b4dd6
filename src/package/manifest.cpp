#include "package/manifest.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "core/json.hpp"
#include "core/text.hpp"
#include "package/errors.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kMaxText = 64;
constexpr std::size_t kMaxBoards = 32;
constexpr std::size_t kMaxAppManifest = std::size_t{64} << 10;
constexpr std::array<std::string_view, 3> kOsMeasurements = {"aspisd", "os", "trust-bundle"};
constexpr std::array<std::string_view, 1> kBoardMeasurements = {"board"};

Error Malformed(std::string_view field, std::string_view rule) {
  return Error(PackageErrc::kMalformed,
               "package manifest field \"" + std::string(field) + "\" " + std::string(rule));
}

bool IsToken(std::string_view s, std::string_view extra) {
  return text::IsToken(s, extra, kMaxText);
}

Expected<void> ValidateMeasurements(const Manifest& m) {
  std::span<const std::string_view> expected;
  if (m.kind == Kind::kOs) expected = kOsMeasurements;
  if (m.kind == Kind::kBoard) expected = kBoardMeasurements;
  const bool same =
      m.measurements.size() == expected.size() &&
      std::equal(expected.begin(), expected.end(), m.measurements.begin(),
                 [](std::string_view name, const auto& entry) { return name == entry.first; });
  if (same) return {};
  std::string names;
  for (const auto name : expected) names += (names.empty() ? "" : ", ") + std::string(name);
  return std::unexpected(Malformed(
      "measurements", expected.empty()
                          ? "is only for OS and board packages"
                          : "of a " + std::string(KindName(m.kind)) + " package must be " + names));
}

}  // namespace

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kApp:
      return "app";
    case Kind::kRtApp:
      return "rtapp";
    case Kind::kOs:
      return "os";
    case Kind::kBoard:
      return "board";
  }
  return "app";
}

std::optional<Kind> KindFromName(std::string_view name) {
  for (const Kind kind : {Kind::kApp, Kind::kRtApp, Kind::kOs, Kind::kBoard}) {
    if (KindName(kind) == name) return kind;
  }
  return std::nullopt;
}

std::string_view CompressionName(Compression compression) {
  return compression == Compression::kZstd ? "zstd" : "none";
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (dash ? c != '-' : !hex) return false;
  }
  return true;
}

Expected<void> Validate(const Manifest& m) {
  if (!IsUuid(m.image_id)) return std::unexpected(Malformed("image_id", "is not a lowercase UUID"));
  if (!IsUuid(m.component_id)) {
    return std::unexpected(Malformed("component_id", "is not a lowercase UUID"));
  }
  if (!IsToken(m.name, "._- ")) {
    return std::unexpected(
        Malformed("name", "must be 1-64 letters, digits, spaces, dots, dashes or underscores"));
  }
  if (!text::IsVersion(m.version)) {
    return std::unexpected(
        Malformed("version", "must be 1-64 letters, digits, dots, pluses, dashes or underscores"));
  }
  if (m.payload.size > kMaxPayloadSize || m.payload.unpacked_size > kMaxPayloadSize) {
    return Fail(PackageErrc::kTooLarge, "the payload is larger than 8 GiB");
  }
  if (m.payload.compression == Compression::kNone && m.payload.unpacked_size != m.payload.size) {
    return std::unexpected(Malformed("payload.unpacked_size", "must equal size when uncompressed"));
  }
  if (m.payload.format == PayloadFormat::kImage && m.kind != Kind::kOs) {
    return std::unexpected(Malformed("payload.format", "is image only for OS packages"));
  }
  if (m.target_boards.size() > kMaxBoards) {
    return Fail(PackageErrc::kTooLarge, "a package targets at most 32 boards");
  }
  std::set<std::string_view> boards;
  for (const auto& board : m.target_boards) {
    if (!IsToken(board, "._-")) {
      return std::unexpected(Malformed("target_boards", "names a board that is not a token"));
    }
    if (!boards.insert(board).second) {
      return std::unexpected(Malformed("target_boards", "names a board twice"));
    }
  }
  if (!IsApp(m.kind) && m.target_boards.empty()) {
    return std::unexpected(
        Malformed("target_boards", "must name a board for OS and board packages"));
  }
  if (IsApp(m.kind) != !m.app_manifest.empty()) {
    return std::unexpected(
        Malformed("app_manifest", IsApp(m.kind) ? "is required for apps" : "is only for apps"));
  }
  if (m.app_manifest.size() > kMaxAppManifest) {
    return Fail(PackageErrc::kTooLarge, "the app manifest is larger than 64 KiB");
  }
  if (IsApp(m.kind)) {
    auto app = json::Parse(m.app_manifest);
    if (!app || !app->is_object()) {
      return std::unexpected(Malformed("app_manifest", "is not a JSON object"));
    }
    auto component = json::GetString(*app, "ComponentId");
    if (component) {
      std::transform(component->begin(), component->end(), component->begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    }
    if (!component || *component != m.component_id) {
      return std::unexpected(
          Malformed("app_manifest", "has a ComponentId other than component_id"));
    }
  }
  return ValidateMeasurements(m);
}

Expected<std::string> Serialize(const Manifest& m) {
  if (auto ok = Validate(m); !ok) return std::unexpected(ok.error());
  json::Json measurements = json::Json::object();
  for (const auto& [name, digest] : m.measurements) measurements[name] = crypto::ToHex(digest);
  json::Json doc = {
      {"schema", kManifestSchema},
      {"image_id", m.image_id},
      {"component_id", m.component_id},
      {"name", m.name},
      {"kind", KindName(m.kind)},
      {"version", m.version},
      {"security_version", m.security_version},
      {"payload",
       {{"sha256", crypto::ToHex(m.payload.sha256)},
        {"size", m.payload.size},
        {"compression", CompressionName(m.payload.compression)},
        {"unpacked_size", m.payload.unpacked_size}}},
      {"target_boards", m.target_boards},
      {"measurements", measurements},
  };
  if (m.payload.format == PayloadFormat::kImage) doc["payload"]["format"] = "image";
  if (!m.app_manifest.empty()) doc["app_manifest"] = *json::Parse(m.app_manifest);
  return json::Dump(doc);
}

Expected<Manifest> ParseManifest(std::string_view text) {
  auto doc = json::Parse(text, 16);
  if (!doc || !doc->is_object()) {
    return Fail(PackageErrc::kMalformed, "the package manifest is not a JSON object");
  }
  static const std::set<std::string_view> kFields = {
      "schema",  "image_id",         "component_id",  "name",         "kind",        "version",
      "payload", "security_version", "target_boards", "measurements", "app_manifest"};
  for (const auto& [key, value] : doc->items()) {
    if (!kFields.contains(key)) return std::unexpected(Malformed(key, "is not a known field"));
  }
  auto malformed = [](const Error& e) { return Error(PackageErrc::kMalformed, e.message()); };
  auto schema = json::GetUint(*doc, "schema");
  if (!schema) return std::unexpected(malformed(schema.error()));
  if (*schema != kManifestSchema) {
    return std::unexpected(Malformed("schema", "is not 1 (a newer format?)"));
  }
  Manifest m;
  for (auto [key, out] :
       {std::pair{"image_id", &m.image_id}, std::pair{"component_id", &m.component_id},
        std::pair{"name", &m.name}, std::pair{"version", &m.version}}) {
    auto value = json::GetString(*doc, key);
    if (!value) return std::unexpected(malformed(value.error()));
    *out = std::move(*value);
  }
  auto kind_name = json::GetString(*doc, "kind");
  if (!kind_name) return std::unexpected(malformed(kind_name.error()));
  const auto kind = KindFromName(*kind_name);
  if (!kind) return std::unexpected(Malformed("kind", "is not app, rtapp, os or board"));
  m.kind = *kind;
  auto security_version = json::GetUint(*doc, "security_version");
  if (!security_version) return std::unexpected(malformed(security_version.error()));
  m.security_version = *security_version;

  auto payload = json::GetObject(*doc, "payload");
  if (!payload) return std::unexpected(malformed(payload.error()));
  auto sha256 = json::GetString(**payload, "sha256");
  auto size = json::GetUint(**payload, "size");
  auto compression = json::GetString(**payload, "compression");
  auto unpacked = json::GetUint(**payload, "unpacked_size");
  if (!sha256 || !size || !compression || !unpacked) {
    return std::unexpected(Malformed("payload", "needs sha256, size, compression, unpacked_size"));
  }
  auto digest = HexDecode(*sha256);
  if (!digest || digest->size() != m.payload.sha256.size()) {
    return std::unexpected(Malformed("payload.sha256", "is not a 64-digit hex SHA-256"));
  }
  std::copy(digest->begin(), digest->end(), m.payload.sha256.begin());
  m.payload.size = *size;
  m.payload.unpacked_size = *unpacked;
  if (*compression == "zstd") {
    m.payload.compression = Compression::kZstd;
  } else if (*compression == "none") {
    m.payload.compression = Compression::kNone;
  } else {
    return std::unexpected(Malformed("payload.compression", "is not zstd or none"));
  }
  if ((*payload)->contains("format")) {
    auto format = json::GetString(**payload, "format");
    if (!format || (*format != "image" && *format != "tar")) {
      return std::unexpected(Malformed("payload.format", "is not tar or image"));
    }
    m.payload.format = *format == "image" ? PayloadFormat::kImage : PayloadFormat::kTar;
  }

  auto boards = json::GetArray(*doc, "target_boards");
  if (!boards) return std::unexpected(malformed(boards.error()));
  if ((*boards)->size() > kMaxBoards) {
    return Fail(PackageErrc::kTooLarge, "a package targets at most 32 boards");
  }
  for (const auto& board : **boards) {
    if (!board.is_string())
      return std::unexpected(Malformed("target_boards", "holds a non-string"));
    m.target_boards.push_back(board.get<std::string>());
  }
  auto measurements = json::GetObject(*doc, "measurements");
  if (!measurements) return std::unexpected(malformed(measurements.error()));
  for (const auto& [name, value] : (*measurements)->items()) {
    auto bytes = value.is_string() ? HexDecode(value.get<std::string>())
                                   : Expected<Bytes>(Fail(CoreErrc::kParse, "not a string"));
    crypto::Digest measured{};
    if (!bytes || bytes->size() != measured.size()) {
      return std::unexpected(Malformed("measurements", "holds a value that is not a SHA-256"));
    }
    std::copy(bytes->begin(), bytes->end(), measured.begin());
    m.measurements.emplace(name, measured);
  }
  if (const auto app = doc->find("app_manifest"); app != doc->end()) {
    if (!app->is_object()) return std::unexpected(Malformed("app_manifest", "is not an object"));
    m.app_manifest = json::Dump(*app);
  }
  if (auto ok = Validate(m); !ok) return std::unexpected(ok.error());
  return m;
}

}  // namespace aspis::package
