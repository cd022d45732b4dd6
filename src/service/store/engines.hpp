#pragma once

#include <memory>
#include <string>

#include "service/store/database.hpp"

// Internal to src/service/store: the engine constructors behind OpenDatabase.
namespace aspis::service::store {

Expected<std::unique_ptr<Database>> OpenSqlite(const std::string& path);
Expected<std::unique_ptr<Database>> OpenPostgres(const std::string& uri,
                                                 std::size_t max_connections);

}  // namespace aspis::service::store
