#include <pqxx/pqxx>

#include <mutex>

#include "core/log.hpp"
#include "service/store/database.hpp"
#include "service/store/engines.hpp"

namespace aspis::service::store {

namespace {

// libpqxx reports failures as exceptions; they stop here and become Errors.
class PostgresDatabase final : public Database {
 public:
  explicit PostgresDatabase(std::unique_ptr<pqxx::connection> connection)
      : connection_(std::move(connection)) {}

  std::string_view Dialect() const override { return "postgresql"; }

  Expected<std::vector<Row>> Query(std::string_view sql,
                                   const std::vector<Value>& params) override {
    const std::lock_guard lock(mutex_);
    try {
      if (transaction_ != nullptr) return Run(*transaction_, sql, params);
      pqxx::nontransaction work(*connection_);
      return Run(work, sql, params);
    } catch (const pqxx::unique_violation& e) {
      return Fail(StoreErrc::kConflict, e.what());
    } catch (const pqxx::broken_connection& e) {
      return Fail(StoreErrc::kUnavailable, std::string("PostgreSQL connection lost: ") + e.what());
    } catch (const std::exception& e) {
      return Fail(StoreErrc::kQuery, e.what());
    }
  }

  Expected<void> Transaction(const std::function<Expected<void>()>& body) override {
    const std::lock_guard lock(mutex_);
    try {
      pqxx::work work(*connection_);
      transaction_ = &work;
      auto result = body();
      transaction_ = nullptr;
      if (!result) return result;  // pqxx::work rolls back on destruction
      work.commit();
      return {};
    } catch (const pqxx::broken_connection& e) {
      transaction_ = nullptr;
      return Fail(StoreErrc::kUnavailable, std::string("PostgreSQL connection lost: ") + e.what());
    } catch (const std::exception& e) {
      transaction_ = nullptr;
      return Fail(StoreErrc::kQuery, e.what());
    }
  }

 private:
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

  std::unique_ptr<pqxx::connection> connection_;
  std::recursive_mutex mutex_;
  pqxx::transaction_base* transaction_ = nullptr;  // while Transaction runs its body
};

}  // namespace

Expected<std::unique_ptr<Database>> OpenPostgres(const std::string& uri) {
  try {
    return std::make_unique<PostgresDatabase>(std::make_unique<pqxx::connection>(uri));
  } catch (const std::exception& e) {
    return Fail(StoreErrc::kUnavailable, std::string("cannot connect to PostgreSQL: ") + e.what());
  }
}

}  // namespace aspis::service::store
