#include "device/measure/measured_launch.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "package/measure.hpp"

namespace aspis::device::measure {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxLog = std::size_t{64} * 1024;

Bytes EncodeLog(const std::vector<wire::MeasurementEvent>& events) {
  json::Json list = json::Json::array();
  for (const auto& e : events) {
    list.push_back({{"component", e.component}, {"digest", crypto::ToHex(e.digest)}});
  }
  return ToBytes(json::Json{{"events", list}}.dump(2) + "\n");
}

Expected<std::vector<wire::MeasurementEvent>> DecodeLog(const fs::path& path, ByteView text) {
  auto damaged = [&](std::string_view why) {
    return Fail(CoreErrc::kCorrupt, fmt::format("measurement log {} {}", path.string(), why));
  };
  auto doc = json::Parse(AsString(text));
  if (!doc) return damaged("is not JSON");
  auto list = json::GetArray(*doc, "events");
  if (!list) return damaged("has no events");
  std::vector<wire::MeasurementEvent> events;
  for (const auto& item : **list) {
    auto component = json::GetString(item, "component");
    auto hex = json::GetString(item, "digest");
    auto digest = hex ? HexDecode(*hex) : Expected<Bytes>(std::unexpected(hex.error()));
    if (!component || !digest || digest->size() != 32) return damaged("holds a malformed event");
    wire::MeasurementEvent event{*component, {}};
    std::copy(digest->begin(), digest->end(), event.digest.begin());
    events.push_back(std::move(event));
  }
  return events;
}

Expected<void> ExtendFrom(rot::RootOfTrust& rot, const std::vector<wire::MeasurementEvent>& events,
                          std::size_t first) {
  for (std::size_t i = first; i < events.size(); ++i) {
    if (auto ok = rot.Extend(events[i].digest); !ok) {
      return std::unexpected(
          std::move(ok.error()).WithContext("measuring \"" + events[i].component + "\""));
    }
    log::Info("measured {} {}", events[i].component, crypto::ToHex(events[i].digest));
  }
  return {};
}

}  // namespace

std::vector<Component> LaunchComponents(const fs::path& os_image, const fs::path& aspisd_binary,
                                        const fs::path& board, const fs::path& trust_bundle,
                                        std::optional<std::uint64_t> os_length) {
  return {{"os", os_image, os_length},
          {"aspisd", aspisd_binary, {}},
          {"board", board, {}},
          {"trust-bundle", trust_bundle, {}}};
}

Expected<std::vector<wire::MeasurementEvent>> MeasureLaunch(
    rot::RootOfTrust& rot, const std::vector<Component>& components, const fs::path& log_path,
    file::FileSystem& files) {
  auto current = rot.ReadRegister();
  if (!current) return std::unexpected(current.error());

  if (*current == crypto::Digest{}) {
    std::vector<wire::MeasurementEvent> events;
    for (const auto& component : components) {
      auto digest = component.length ? package::MeasurePrefix(component.path, *component.length)
                                     : package::MeasurePath(component.path);
      if (!digest) {
        return std::unexpected(
            std::move(digest.error()).WithContext("measuring \"" + component.name + "\""));
      }
      events.push_back({component.name, *digest});
    }
    // The log is written before the register moves: a crash in between leaves a log whose
    // prefix explains the register, which the next start completes.
    if (auto ok = file::WriteDurably(files, log_path, EncodeLog(events), 0600); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = ExtendFrom(rot, events, 0); !ok) return std::unexpected(ok.error());
    return events;
  }

  auto text = files.Read(log_path, kMaxLog);
  if (!text) {
    return std::unexpected(std::move(text.error())
                               .WithContext("the register was extended but the measurement log "
                                            "cannot be read"));
  }
  auto events = DecodeLog(log_path, *text);
  if (!events) return events;
  for (std::size_t k = events->size() + 1; k-- > 0;) {
    const std::vector<wire::MeasurementEvent> prefix(events->begin(),
                                                     events->begin() + static_cast<long>(k));
    auto replayed = wire::ReplayEventLog(prefix);
    if (!replayed) return std::unexpected(replayed.error());
    if (*replayed != *current) continue;
    if (k < events->size()) {
      log::Info("completing measured launch from event {} of {}", k, events->size());
    }
    if (auto ok = ExtendFrom(rot, *events, k); !ok) return std::unexpected(ok.error());
    return events;
  }
  return Fail(CoreErrc::kCorrupt,
              "the measurement register holds a value that the log " + log_path.string() +
                  " does not explain (something else extended it, or the log was replaced); "
                  "reboot the device to measure it afresh");
}

}  // namespace aspis::device::measure
