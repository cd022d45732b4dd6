#pragma once

#include <filesystem>
#include <memory>

#include "rot/root_of_trust.hpp"

namespace aspis::rot::software {

// A root of trust kept in files under `state_dir`: the identity key (0600; refused when group or
// world can read it), the register, the counters and the sealing key, each written durably.
// For development and the simulator: it offers no hardware protection, and says so in the log.
// With `create`, missing state is made; otherwise missing or damaged state is kBadState.
// The register starts from zero on each boot (the ID in `boot_id_file` differs from the one
// recorded beside the register), like a TPM PCR; everything else persists across reboots.
Expected<std::unique_ptr<RootOfTrust>> Open(const std::filesystem::path& state_dir, bool create,
                                            const std::filesystem::path& boot_id_file);

}  // namespace aspis::rot::software
