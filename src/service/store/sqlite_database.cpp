#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <mutex>
#include <thread>

#include "core/log.hpp"
#include "service/store/database.hpp"
#include "service/store/engines.hpp"

namespace aspis::service::store {

namespace {

constexpr std::chrono::milliseconds kBusyTimeout{5000};

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStatement {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, CloseDb>;
using StatementPtr = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(DbPtr db) : db_(std::move(db)) {}

  std::string_view Dialect() const override { return "sqlite"; }

  Expected<std::vector<Row>> Query(std::string_view sql,
                                   const std::vector<Value>& params) override {
    const std::lock_guard lock(mutex_);
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, nullptr) !=
        SQLITE_OK) {
      return std::unexpected(EngineError("preparing statement"));
    }
    StatementPtr statement(raw);
    // SQLite numbers "$N" parameters by first appearance; look each up by name so that $N is
    // always params[N-1], as in PostgreSQL.
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string name = "$" + std::to_string(i + 1);
      const int index = sqlite3_bind_parameter_index(statement.get(), name.c_str());
      if (index == 0) continue;
      if (auto ok = Bind(statement.get(), index, params[i]); !ok) {
        return std::unexpected(ok.error());
      }
    }
    std::vector<Row> rows;
    for (;;) {
      const int rc = sqlite3_step(statement.get());
      if (rc == SQLITE_DONE) return rows;
      if (rc != SQLITE_ROW) return std::unexpected(EngineError("running statement"));
      Row row;
      const int columns = sqlite3_column_count(statement.get());
      for (int c = 0; c < columns; ++c) {
        if (sqlite3_column_type(statement.get(), c) == SQLITE_NULL) {
          row.emplace_back(std::nullopt);
        } else {
          const auto* text = sqlite3_column_text(statement.get(), c);
          row.emplace_back(
              std::string(reinterpret_cast<const char*>(text),
                          static_cast<std::size_t>(sqlite3_column_bytes(statement.get(), c))));
        }
      }
      rows.push_back(std::move(row));
    }
  }

  Expected<void> Transaction(const std::function<Expected<void>()>& body) override {
    const std::lock_guard lock(mutex_);
    if (auto begun = Query("BEGIN IMMEDIATE", {}); !begun) return std::unexpected(begun.error());
    auto result = body();
    if (!result) {
      Rollback();
      return result;
    }
    if (auto committed = Query("COMMIT", {}); !committed) {
      Rollback();
      return std::unexpected(committed.error());
    }
    return {};
  }

 private:
  void Rollback() {
    if (auto rolled_back = Query("ROLLBACK", {}); !rolled_back) {
      log::Error("rolling back a SQLite transaction failed: {}", rolled_back.error().message());
    }
  }

  Error EngineError(std::string_view what) const {
    const int code = sqlite3_extended_errcode(db_.get());
    const bool conflict = code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE;
    const bool busy = (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED;
    return Error(conflict ? StoreErrc::kConflict
                 : busy   ? StoreErrc::kUnavailable
                          : StoreErrc::kQuery,
                 std::string(what) + ": " + sqlite3_errmsg(db_.get()));
  }

  Expected<void> Bind(sqlite3_stmt* statement, int index, const Value& value) const {
    int rc = SQLITE_OK;
    if (std::holds_alternative<std::nullptr_t>(value)) {
      rc = sqlite3_bind_null(statement, index);
    } else if (const auto* number = std::get_if<std::int64_t>(&value)) {
      rc = sqlite3_bind_int64(statement, index, *number);
    } else {
      const auto& text = std::get<std::string>(value);
      rc = sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()),
                             SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) return std::unexpected(EngineError("binding parameter"));
    return {};
  }

  DbPtr db_;
  std::recursive_mutex mutex_;
};

}  // namespace

Expected<std::unique_ptr<Database>> OpenSqlite(const std::string& path) {
  // The database holds token hashes and sealed keys: owner-only from the start (SQLite gives its
  // -wal and -shm files the same mode).
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Fail(StoreErrc::kUnavailable, "cannot open SQLite database " + path + ": " +
                                             std::generic_category().message(errno));
  }
  ::close(fd);
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return Fail(StoreErrc::kUnavailable, "cannot open SQLite database " + path + ": " +
                                             (db ? sqlite3_errmsg(db.get()) : "out of memory"));
  }
  sqlite3_busy_timeout(db.get(), static_cast<int>(kBusyTimeout.count()));
  auto database = std::make_unique<SqliteDatabase>(std::move(db));
  // Switching a fresh file to WAL needs it to itself, and SQLite returns SQLITE_BUSY for that
  // without calling the busy handler; instances opening one file together wait their turn here,
  // as they wait on PostgreSQL's advisory lock.
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    for (;;) {
      auto ok = database->Query(pragma, {});
      if (ok) break;
      if (ok.error() != StoreErrc::kUnavailable || std::chrono::steady_clock::now() > deadline) {
        return std::unexpected(std::move(ok.error()).WithContext("configuring " + path));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return database;
}

}  // namespace aspis::service::store
