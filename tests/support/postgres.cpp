#include "support/postgres.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <stdexcept>
#include <thread>

namespace aspis::testing {

namespace {

std::filesystem::path PostgresBin() {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(entry.path() / "bin/initdb")) found.push_back(entry.path() / "bin");
  }
  if (found.empty())
    throw std::runtime_error("PostgreSQL is not installed (run scripts/bootstrap)");
  std::sort(found.begin(), found.end());
  return found.back();
}

std::optional<RunAs> Account(const std::filesystem::path& dir) {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) throw std::runtime_error("running as root, but there is no postgres account");
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error("cannot hand " + dir.string() + " to the postgres account");
  }
  return RunAs{pw->pw_uid, pw->pw_gid};
}

}  // namespace

PostgresServer::PostgresServer() : port_(FreePort()) {
  const auto bin = PostgresBin();
  const auto run_as = Account(dir_.path());
  const auto data = dir_ / "data";
  auto init = RunProcess({(bin / "initdb").string(), "-D", data.string(), "-U", "postgres",
                          "--auth=trust", "--no-sync", "-E", "UTF8"},
                         {}, run_as);
  if (init.exit_code != 0) throw std::runtime_error("initdb failed: " + init.output);
  process_ = std::make_unique<BackgroundProcess>(
      std::vector<std::string>{(bin / "postgres").string(), "-D", data.string(), "-p",
                               std::to_string(port_), "-h", "127.0.0.1", "-k", dir_.path().string(),
                               "-c", "fsync=off", "-c", "full_page_writes=off"},
      run_as, SIGINT /* fast shutdown: does not wait for clients to leave */);
  // The port opens before the server accepts sessions; pg_isready tells when it does.
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (RunProcess(
            {(bin / "pg_isready").string(), "-q", "-h", "127.0.0.1", "-p", std::to_string(port_)})
            .exit_code == 0) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("PostgreSQL did not become ready on port " + std::to_string(port_));
}

std::string PostgresServer::Url() const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

}  // namespace aspis::testing
