#include "device/update/boot/simulated_bootloader.hpp"

#include "core/json.hpp"
#include "device/update/errors.hpp"

namespace aspis::device::update {

namespace {

constexpr char kEnvFile[] = "boot-env.json";

}  // namespace

Expected<Slot> ParseSlot(std::string_view name) {
  if (name == "A") return Slot::kA;
  if (name == "B") return Slot::kB;
  return Fail(CoreErrc::kParse, "\"" + std::string(name.substr(0, 8)) + "\" is not slot A or B");
}

Expected<SimulatedBootloader> SimulatedBootloader::Open(file::FileSystem& fs,
                                                        std::filesystem::path dir) {
  SimulatedBootloader boot(fs, std::move(dir));
  auto text = fs.Read(boot.dir_ / kEnvFile, file::kSmallFileLimit);
  if (!text) {
    if (text.error() == CoreErrc::kNotFound) return boot;
    return std::unexpected(text.error());
  }
  const auto corrupt = [&] {
    return Fail(CoreErrc::kCorrupt,
                "the boot environment " + (boot.dir_ / kEnvFile).string() + " is damaged");
  };
  auto doc = json::Parse(AsString(*text));
  if (!doc || !doc->is_object()) return corrupt();
  auto first = json::GetString(*doc, "first");
  auto slot = first ? ParseSlot(*first) : Expected<Slot>(std::unexpected(first.error()));
  auto booted = json::GetString(*doc, "booted");
  auto boot_id = json::GetString(*doc, "boot_id");
  auto tries_a = json::GetUint(*doc, "tries_a");
  auto tries_b = json::GetUint(*doc, "tries_b");
  if (!slot || !booted || !boot_id || !tries_a || !tries_b || *tries_a > kBootTries ||
      *tries_b > kBootTries || (!booted->empty() && !ParseSlot(*booted))) {
    return corrupt();
  }
  boot.first_ = *slot;
  boot.tries_[0] = static_cast<int>(*tries_a);
  boot.tries_[1] = static_cast<int>(*tries_b);
  boot.booted_ = *booted;
  boot.boot_id_ = *boot_id;
  return boot;
}

Expected<void> SimulatedBootloader::Save() {
  const json::Json doc{{"first", SlotName(first_)},
                       {"tries_a", tries_[0]},
                       {"tries_b", tries_[1]},
                       {"booted", booted_},
                       {"boot_id", boot_id_}};
  return file::WriteDurably(*fs_, dir_ / kEnvFile, AsBytes(doc.dump()), 0600);
}

Expected<Slot> SimulatedBootloader::Boot(std::string_view boot_id) {
  if (boot_id.empty()) return Fail(CoreErrc::kInvalidArgument, "an empty boot ID");
  if (boot_id == boot_id_ && !booted_.empty()) return ParseSlot(booted_);
  Slot chosen = first_;
  if (tries_[Index(first_)] == 0 && tries_[Index(Other(first_))] > 0) chosen = Other(first_);
  if (tries_[Index(chosen)] > 0) --tries_[Index(chosen)];
  booted_ = std::string(SlotName(chosen));
  boot_id_ = std::string(boot_id);
  if (auto ok = Save(); !ok) return std::unexpected(ok.error());
  return chosen;
}

std::filesystem::path SimulatedBootloader::SlotDir(Slot slot) const {
  return dir_ / (slot == Slot::kA ? "a" : "b");
}

Expected<Slot> SimulatedBootloader::Booted() {
  if (booted_.empty()) return Fail(UpdateErrc::kBadState, "the simulated board has not booted");
  return ParseSlot(booted_);
}

Expected<void> SimulatedBootloader::TryNext(Slot slot) {
  first_ = slot;
  tries_[Index(slot)] = kBootTries;
  return Save();
}

Expected<void> SimulatedBootloader::MarkGood(Slot slot) {
  first_ = slot;
  tries_[Index(slot)] = kBootTries;
  return Save();
}

Expected<void> SimulatedBootloader::MarkBad(Slot slot) {
  tries_[Index(slot)] = 0;
  if (first_ == slot) first_ = Other(slot);
  return Save();
}

}  // namespace aspis::device::update
