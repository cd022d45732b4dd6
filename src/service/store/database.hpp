#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "core/error.hpp"

// A narrow SQL interface with one implementation per engine (SQLite, PostgreSQL), so the store's
// queries are written once. Statements use $1, $2, ... placeholders, which both engines accept.
namespace aspis::service::store {

enum class StoreErrc {
  kNotFound = 1,
  kConflict,     // a unique key already exists
  kUnavailable,  // cannot reach or open the database
  kQuery,        // the engine rejected a statement (a bug, or a damaged database)
};

const std::error_category& StoreCategory();
inline std::error_code make_error_code(StoreErrc e) {
  return {static_cast<int>(e), StoreCategory()};
}

using Value = std::variant<std::nullptr_t, std::int64_t, std::string>;
// Cells as text (NULL as nullopt), whatever the engine's type.
using Row = std::vector<std::optional<std::string>>;

// A database handle, shared by threads. SQLite: one connection, calls serialized. PostgreSQL: a
// pool of connections, so calls from different threads run side by side.
class Database {
 public:
  virtual ~Database() = default;

  // "sqlite" or "postgresql": selects the migrations.
  virtual std::string_view Dialect() const = 0;
  // Runs one statement; returns its rows (empty for statements without results).
  virtual Expected<std::vector<Row>> Query(std::string_view sql,
                                           const std::vector<Value>& params = {}) = 0;
  // Runs `body` in a transaction: committed when it returns a value, rolled back otherwise.
  // Queries that `body` makes through this Database on the calling thread join the transaction;
  // `body` must not hand work to other threads. Not reentrant.
  virtual Expected<void> Transaction(const std::function<Expected<void>()>& body) = 0;
};

inline constexpr std::size_t kDefaultConnections = 8;

// "sqlite:PATH" (created if missing; WAL mode) or "postgresql://..." (a libpq URI; at most
// `max_connections` connections, one opened now so that a bad URL fails here).
Expected<std::unique_ptr<Database>> OpenDatabase(std::string_view url,
                                                 std::size_t max_connections = kDefaultConnections);

}  // namespace aspis::service::store

template <>
struct std::is_error_code_enum<aspis::service::store::StoreErrc> : std::true_type {};
