#include <pqxx/pqxx>

#include <condition_variable>
#include <mutex>

#include "core/log.hpp"
#include "service/store/database.hpp"
#include "service/store/engines.hpp"

namespace aspis::service::store {

namespace {

using Connection = std::unique_ptr<pqxx::connection>;

Expected<Connection> Connect(const std::string& uri) {
  try {
    return std::make_unique<pqxx::connection>(uri);
  } catch (const std::exception& e) {
    return Fail(StoreErrc::kUnavailable, std::string("cannot connect to PostgreSQL: ") + e.what());
  }
}

// A pool of connections, opened as demand grows up to a limit. A Transaction holds one connection
// for the calling thread while its body runs, and the body's queries (on that thread) go to it;
// every other query borrows an idle connection for one statement. A connection found broken is
// dropped and replaced on a later call, so the service recovers when PostgreSQL comes back. libpqxx
// reports failures as exceptions; they stop here and become Errors.
class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::string uri, Connection first, std::size_t max_connections)
      : uri_(std::move(uri)), max_connections_(std::max<std::size_t>(max_connections, 1)) {
    idle_.push_back(std::move(first));
    open_ = 1;
  }

  std::string_view Dialect() const override { return "postgresql"; }

  Expected<std::vector<Row>> Query(std::string_view sql,
                                   const std::vector<Value>& params) override {
    if (current_.owner == this)
      return Guarded<std::vector<Row>>([&] { return Run(*current_.work, sql, params); });
    auto lease = Acquire();
    if (!lease) return std::unexpected(lease.error());
    return Guarded<std::vector<Row>>([&] {
      pqxx::nontransaction work(**lease);
      return Run(work, sql, params);
    });
  }

  Expected<void> Transaction(const std::function<Expected<void>()>& body) override {
    auto lease = Acquire();
    if (!lease) return std::unexpected(lease.error());
    const Current outer = current_;
    auto result = Guarded<void>([&]() -> Expected<void> {
      pqxx::work work(**lease);
      current_ = {this, &work};
      auto ok = body();
      current_ = outer;
      if (!ok) return ok;  // pqxx::work rolls back on destruction
      work.commit();
      return {};
    });
    current_ = outer;
    return result;
  }

 private:
  // A borrowed connection, returned to the pool (or dropped when broken) on destruction.
  class Lease {
   public:
    Lease(PostgresDatabase* pool, Connection connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (pool_ != nullptr && connection_ != nullptr) pool_->Release(std::move(connection_));
    }
    pqxx::connection& operator*() const { return *connection_; }

   private:
    PostgresDatabase* pool_;
    Connection connection_;
  };

  // The transaction the calling thread is running on this database, if any.
  struct Current {
    const PostgresDatabase* owner = nullptr;
    pqxx::transaction_base* work = nullptr;
  };
  static thread_local Current current_;

  Expected<Lease> Acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < max_connections_; });
    if (!idle_.empty()) {
      Connection connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(connection));
    }
    ++open_;
    lock.unlock();
    auto connection = Connect(uri_);
    if (!connection) {
      Forget();
      return std::unexpected(connection.error());
    }
    return Lease(this, std::move(*connection));
  }

  void Release(Connection connection) {
    if (!connection->is_open()) {
      log::Warning("dropping a broken PostgreSQL connection");
      Forget();
      return;
    }
    const std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
    available_.notify_one();
  }

  void Forget() {
    const std::lock_guard lock(mutex_);
    --open_;
    available_.notify_one();
  }

  template <typename T, typename F>
  static Expected<T> Guarded(F&& f) {
    try {
      return f();
    } catch (const pqxx::unique_violation& e) {
      return Fail(StoreErrc::kConflict, e.what());
    } catch (const pqxx::broken_connection& e) {
      return Fail(StoreErrc::kUnavailable, std::string("PostgreSQL connection lost: ") + e.what());
    } catch (const std::exception& e) {
      return Fail(StoreErrc::kQuery, e.what());
    }
  }

  static std::vector<Row> Run(pqxx::transaction_base& work, std::string_view sql,
                              const std::vector<Value>& params) {
    // Parameters go as text; a null pointer is SQL NULL.
    std::vector<std::string> texts;
    texts.reserve(params.size());
    std::vector<const char*> pointers;
    for (const Value& value : params) {
      if (std::holds_alternative<std::nullptr_t>(value)) {
        pointers.push_back(nullptr);
        continue;
      }
      const auto* number = std::get_if<std::int64_t>(&value);
      texts.push_back(number != nullptr ? std::to_string(*number) : std::get<std::string>(value));
      pointers.push_back(texts.back().c_str());
    }
    const pqxx::result result =
        work.exec_params(std::string(sql), pqxx::prepare::make_dynamic_params(pointers));
    std::vector<Row> rows;
    rows.reserve(result.size());
    for (const auto& tuple : result) {
      Row row;
      for (const auto& field : tuple) {
        row.emplace_back(field.is_null() ? std::nullopt
                                         : std::optional<std::string>(field.c_str()));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  const std::string uri_;
  const std::size_t max_connections_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<Connection> idle_;
  std::size_t open_ = 0;  // idle plus leased
};

thread_local PostgresDatabase::Current PostgresDatabase::current_;

}  // namespace

Expected<std::unique_ptr<Database>> OpenPostgres(const std::string& uri,
                                                 std::size_t max_connections) {
  auto first = Connect(uri);
  if (!first) return std::unexpected(first.error());
  return std::make_unique<PostgresDatabase>(uri, std::move(*first), max_connections);
}

}  // namespace aspis::service::store
