#pragma once

#include <string>
#include <vector>

#include "core/verdict.hpp"
#include "service/store/store.hpp"
#include "wire/attestation.hpp"

// The reference values side of the verifier: is an event log a complete launch of one OS release?
namespace aspis::service::attest {

struct LaunchVerdict {
  Verdict verdict;
  std::string release;  // the OS release the launch matched, when it matched one
};

// Valid when `events` begins with exactly the components of wire::kLaunchComponents, in that
// order, each once, every digest from the *same* registered OS release, and that release is not
// retired; each event after the launch is "app:<component ID>" with the SHA-256 of a package of
// that component in the current or previous deployment of `device`'s group. Reasons name what is
// wrong ("component aspisd is from release 1.0, os from 1.1"). A store failure is "could not
// check".
LaunchVerdict CheckLaunch(const std::vector<wire::MeasurementEvent>& events, store::Store& store,
                          const store::Device& device);

}  // namespace aspis::service::attest
