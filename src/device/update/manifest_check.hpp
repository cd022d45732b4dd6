#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/x509.hpp"
#include "wire/check_in.hpp"

// The device's checks on an update manifest (DESIGN section 5), before anything acts on it.
namespace aspis::device::update {

struct ManifestExpectations {
  std::string device_id;
  std::string tenant;
  std::uint64_t last_sequence = 0;         // the highest sequence accepted so far
  std::vector<crypto::Certificate> roots;  // the pinned platform root(s)
  Clock::TimePoint now;
};

// Accepts the manifest only when: the deployment certificate carries the deployment policy OID,
// names `tenant`, and chains to a pinned root through a CA of that tenant (so neither a device's
// own certificate nor another tenant's key can sign for it); the envelope has the manifest type
// and that key's valid signature; the manifest names this device (mix-and-match); its sequence
// is above `last_sequence` (replay); and it has not expired (freeze). Errors: kUntrusted for a
// manifest that fails a check, with the reason; kParse for malformed input.
Expected<wire::UpdateManifest> VerifyUpdateManifest(const wire::CheckInResponse& response,
                                                    const ManifestExpectations& expected);

}  // namespace aspis::device::update
