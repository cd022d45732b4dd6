#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "support/process.hpp"

// Coprocessor firmware for tests: a real ELF file (a copy of /bin/true) carrying, when given, a
// ".resource_table" section that objcopy adds, laid out as Linux's remoteproc reads it.
namespace aspis::testing {

inline void PutWord(Bytes& out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// One entry: its type, then `words`, then `tail` zero bytes (names, configuration).
inline Bytes Resource(std::uint32_t type, const std::vector<std::uint32_t>& words,
                      std::size_t tail = 0) {
  Bytes entry;
  PutWord(entry, type);
  for (const std::uint32_t word : words) PutWord(entry, word);
  entry.insert(entry.end(), tail, 0);
  return entry;
}

inline Bytes Carveout(std::uint32_t length) {
  return Resource(0, {0x10000000, 0xffffffff, length, 0, 0}, 32);
}
inline Bytes Devmem() { return Resource(1, {0x20000000, 0x40000000, 0x1000, 0, 0}, 32); }
inline Bytes Trace() { return Resource(2, {0x10008000, 0x1000, 0}, 32); }

// A virtio device of type `id` (7: RPMsg) with two virtqueues of `buffers` buffers each.
inline Bytes Vdev(std::uint32_t id = 7, std::uint32_t buffers = 256) {
  Bytes entry = Resource(3, {id, 0, 1, 0, 0});
  entry.insert(entry.end(), {0, 2, 0, 0});  // status, num_of_vrings, reserved
  for (std::uint32_t v = 0; v < 2; ++v) {
    for (const std::uint32_t word : {0xffffffffU, 4096U, buffers, v + 1, 0U}) PutWord(entry, word);
  }
  return entry;
}

inline Bytes ResourceTable(const std::vector<Bytes>& entries) {
  Bytes table;
  PutWord(table, 1);
  PutWord(table, static_cast<std::uint32_t>(entries.size()));
  PutWord(table, 0);
  PutWord(table, 0);
  std::size_t at = table.size() + 4 * entries.size();
  for (const Bytes& entry : entries) {
    PutWord(table, static_cast<std::uint32_t>(at));
    at += entry.size();
  }
  for (const Bytes& entry : entries) table.insert(table.end(), entry.begin(), entry.end());
  return table;
}

// Writes the firmware image `path` (with `table` as its resource table) and returns its bytes.
inline std::string FirmwareImage(const std::filesystem::path& path,
                                 const std::optional<Bytes>& table) {
  std::filesystem::copy_file("/bin/true", path, std::filesystem::copy_options::overwrite_existing);
  if (table) {
    const std::filesystem::path section = path.string() + ".table";
    std::ofstream(section, std::ios::binary)
        .write(reinterpret_cast<const char*>(table->data()),
               static_cast<std::streamsize>(table->size()));
    const auto added = RunProcess(
        {"objcopy", "--add-section", ".resource_table=" + section.string(), path.string()});
    EXPECT_EQ(added.exit_code, 0) << added.output;
    std::filesystem::remove(section);
  }
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace aspis::testing
