#pragma once

#include <filesystem>

#include "core/error.hpp"
#include "device/board/board_definition.hpp"

// Whether an unpacked app version can run on this device: the app agent asks it of a version on
// trial before committing it, and reverts a version it refuses (with its reason, which reaches
// the operator). Until the app manager runs apps in their sandbox and reports whether each came
// up, this check is static: it refuses what could never start here.
namespace aspis::device::update {

// The version directory holds `app_manifest.json`; its `EntryPoint` names a regular file inside
// the directory, reached without symbolic links, executable by its owner, and either an ELF
// executable or shared object for this machine (class, byte order and architecture) or a script
// whose `#!` interpreter is an executable on the device. Errors: kUnhealthy, naming what is wrong.
Expected<void> CheckAppRunsHere(const std::filesystem::path& version_dir);

// The peripherals the manifest of the version at `version_dir` (<apps>/<component>/<image ID>)
// lists are ones `board` has, no two of them share a pin, and none uses a pin that another app
// installed in <apps> (its `current` version) holds. Errors: kUnhealthy with the reason.
Expected<void> CheckAppFitsBoard(const board::BoardDefinition& board,
                                 const std::filesystem::path& version_dir);

}  // namespace aspis::device::update
