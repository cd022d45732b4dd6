#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "package/package.hpp"

// A forward-only reader of tar archives (ustar, pax and GNU long names) that reports where each
// entry's headers and data lie in the archive's bytes, which libarchive does not. Deltas use it
// to cut a payload's tar into the bytes that must travel and the file contents a device already
// has. Memory is bounded: one 512-byte block, and a pax header or long name of at most 1 MiB.
namespace aspis::package {

struct TarEntry {
  std::string path;                 // as stored (pax `path`, GNU long name, or prefix/name)
  char type = '0';                  // the ustar type flag: '0' a regular file, '5' a directory...
  std::uint64_t header_offset = 0;  // where the entry's first header block starts (pax, long name)
  std::uint64_t data_offset = 0;    // where its data starts, after its last header block
  std::uint64_t size = 0;           // bytes of data (zero for links and directories)

  bool regular() const { return type == '0' || type == '\0' || type == '7'; }
};

// Reads entries one after another from `source` (which it does not own and which must outlive
// it). Not thread-safe.
class TarScanner {
 public:
  explicit TarScanner(Source& source) : source_(&source) {}

  // The next entry, skipping whatever is left of the current one's data and padding; nullopt at
  // the end-of-archive block. Errors: kMalformed (a bad checksum, a size that is not a number, an
  // archive that ends inside an entry, an oversized pax header), or the source's.
  Expected<std::optional<TarEntry>> Next();
  // Reads up to buffer.size() of the current entry's data; 0 at its end. Errors: kMalformed (the
  // archive ends early), or the source's.
  Expected<std::size_t> ReadData(std::span<std::uint8_t> buffer);
  // Bytes of the archive consumed so far.
  std::uint64_t offset() const { return offset_; }

 private:
  Expected<void> ReadExactly(std::span<std::uint8_t> buffer);
  Expected<void> Skip(std::uint64_t bytes);
  Expected<std::string> ReadText(std::uint64_t size);

  Source* source_;
  std::uint64_t offset_ = 0;
  std::uint64_t data_left_ = 0;  // of the current entry
  std::uint64_t padding_ = 0;    // after the current entry's data
  bool ended_ = false;
};

}  // namespace aspis::package
