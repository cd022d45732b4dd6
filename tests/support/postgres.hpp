#pragma once

#include <memory>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace aspis::testing {

// A real PostgreSQL server (Debian's postgresql package) in a fresh cluster under a temporary
// directory, on a free 127.0.0.1 port, with trust authentication for the "postgres" superuser;
// stopped on destruction. As root it runs as the postgres account (PostgreSQL refuses root).
// Throws when it cannot start: the package is a bootstrap dependency, so the test then fails.
class PostgresServer {
 public:
  PostgresServer();

  // A libpq URI for the "postgres" database.
  std::string Url() const;

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace aspis::testing
