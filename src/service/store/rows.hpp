#pragma once

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "service/store/database.hpp"

// Reading rows, for the store's own sources only.
namespace aspis::service::store::rows {

inline std::string Text(const Row& row, std::size_t i) { return row.at(i).value_or(""); }

inline std::int64_t Number(const Row& row, std::size_t i) {
  const std::string text = Text(row, i);
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

inline Expected<void> Discard(Expected<std::vector<Row>> result) {
  if (!result) return std::unexpected(result.error());
  return {};
}

template <class T, class Convert>
Expected<std::vector<T>> Map(Expected<std::vector<Row>> rows, Convert convert) {
  if (!rows) return std::unexpected(rows.error());
  std::vector<T> out;
  out.reserve(rows->size());
  for (const Row& row : *rows) out.push_back(convert(row));
  return out;
}

template <class T>
Expected<T> Single(Expected<std::vector<T>> items, std::string_view what) {
  if (!items) return std::unexpected(items.error());
  if (items->empty()) return Fail(StoreErrc::kNotFound, std::string(what) + " not found");
  return std::move(items->front());
}

// A change that must touch exactly one row; kNotFound otherwise.
inline Expected<void> One(Expected<std::vector<Row>> rows, std::string_view what) {
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return Fail(StoreErrc::kNotFound, std::string(what) + " not found");
  return {};
}

}  // namespace aspis::service::store::rows
