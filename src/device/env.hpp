#pragma once

#include "core/clock.hpp"
#include "core/file.hpp"
#include "device/attest/renewal.hpp"

// What aspisd needs of the machine it runs on (LevelDB's Env): the file system its durable state
// goes through, a clock it sleeps on, and randomness for jitter. Tests pass a fault-injecting file
// system and a simulated clock.
namespace aspis::device {

struct Env {
  file::FileSystem& fs;
  const WaitableClock& clock;
  attest::Uniform uniform;  // uniform in [0, 1)
};

// The real machine: the operating system's file system and clock.
inline Env SystemEnv() {
  return {file::RealFileSystem(), SystemClock::Instance(), attest::SystemUniform()};
}

}  // namespace aspis::device
