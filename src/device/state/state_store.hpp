#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/json.hpp"

// The device's durable state: small named JSON records in one directory, each replaced atomically
// through the Env's file system, so a power cut at any instant leaves every record either as it
// was or as it was last put, never torn. Not thread-safe: one owner at a time.
namespace aspis::device::state {

inline constexpr std::size_t kMaxRecordSize = std::size_t{64} << 10;

class StateStore {
 public:
  StateStore(file::FileSystem& fs, std::filesystem::path dir) : fs_(fs), dir_(std::move(dir)) {}

  // The record `name` (lowercase letters, digits and '-'), or nullopt when there is none. Errors:
  // kCorrupt for a record that is not a JSON object or larger than kMaxRecordSize; kIo.
  Expected<std::optional<json::Json>> Get(std::string_view name) const;
  // Replaces the record durably: once this returns, a power cut does not lose it.
  Expected<void> Put(std::string_view name, const json::Json& record);
  // Removes the record durably.
  Expected<void> Erase(std::string_view name);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  Expected<std::filesystem::path> PathOf(std::string_view name) const;

  file::FileSystem& fs_;
  std::filesystem::path dir_;
};

}  // namespace aspis::device::state
