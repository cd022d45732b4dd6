#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/file.hpp"
#include "crypto/sha256.hpp"
#include "rot/root_of_trust.hpp"
#include "wire/attestation.hpp"

// Measured launch (DESIGN section 4): aspisd extends the root of trust's register with each
// component it trusts, in order, and keeps the event log that explains the register's value.
namespace aspis::device::measure {

// A component measured at launch: "os" (the OS slot image), "aspisd", "board", "trust-bundle".
struct Component {
  std::string name;
  std::filesystem::path path;
  // Measure only the first `length` bytes (an OS image in a larger partition); all when empty.
  std::optional<std::uint64_t> length;
};

// What aspisd measures at launch, in order: the OS slot image (its first `os_length` bytes when
// given), itself, the board definition and the trust bundle.
std::vector<Component> LaunchComponents(const std::filesystem::path& os_image,
                                        const std::filesystem::path& aspisd_binary,
                                        const std::filesystem::path& board,
                                        const std::filesystem::path& trust_bundle,
                                        std::optional<std::uint64_t> os_length = {});

// Brings the register and the event log at `log_path` into agreement, extending each component
// at most once per boot:
//  - register zero (a fresh boot): measures `components` now, writes the log durably, then
//    extends the register in order;
//  - register equal to the replay of the stored log's first k events (aspisd restarted without a
//    reboot, or stopped part-way through extending): extends the rest of the stored log and
//    measures nothing again, so a file changed since boot is not reported as if it were running;
//  - anything else: kCorrupt (something outside aspisd extended the register, or the log was
//    damaged); attestation would fail, so this is reported rather than papered over.
// Returns the event log, which replays to the register's value. The log is read and written
// through `fs` (the device's Env).
Expected<std::vector<wire::MeasurementEvent>> MeasureLaunch(
    rot::RootOfTrust& rot, const std::vector<Component>& components,
    const std::filesystem::path& log_path, file::FileSystem& files = file::RealFileSystem());

}  // namespace aspis::device::measure
