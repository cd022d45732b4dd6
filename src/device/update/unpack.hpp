#pragma once

#include <filesystem>

#include "core/error.hpp"
#include "package/archive.hpp"
#include "package/package.hpp"

namespace aspis::device::update {

// Unpacks the payload of a package whose envelope `reader` verified into `target` (which must not
// exist): the payload is streamed to a file beside `target` while its digest is checked, then
// unpacked by `rules`, then flushed to disk (syncfs). On error nothing of `target` is left.
// Errors: those of the package reader and of package::UnpackArchive, and kInstall.
Expected<void> UnpackPayload(package::Reader& reader, const std::filesystem::path& target,
                             package::TreeRules rules);

// Flushes the file system holding `dir`. Errors: kInstall.
Expected<void> SyncTree(const std::filesystem::path& dir);

}  // namespace aspis::device::update
